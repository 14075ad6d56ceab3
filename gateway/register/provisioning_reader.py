"""Reading a provisioning file: YAML text to a node tree that keeps line numbers, duplicate
keys and each scalar's text as written, and records read field by field with every problem
collected (nothing raised) so that the whole file is reported at once."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from enum import StrEnum
from typing import Any, TypeVar

import yaml
from yaml.constructor import SafeConstructor

from gateway.register.phones import normalize_phone
from gateway.register.provisioning_schema import ProvisioningIssue

__all__ = [
    "Issues",
    "Record",
    "compose",
    "describe",
    "item_path",
    "join_path",
    "loc_path",
    "locate",
    "lookup",
    "node_line",
    "plain_scalar",
    "present",
]


#: libyaml's parser where PyYAML was built with it: the same node tree (marks, duplicate
#: keys, scalars as written) about ten times faster, which a county's file of 30,000
#: persons needs (the pure-Python scanner was most of a provisioning run).
_LOADER: type[yaml.SafeLoader] | type[yaml.CSafeLoader] = (
    yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader
)
_NULL_TAG = "tag:yaml.org,2002:null"
_NUMBER_TAGS = ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")

_E = TypeVar("_E", bound=StrEnum)


def node_line(node: yaml.Node) -> int:
    mark = node.start_mark
    return mark.line + 1 if mark is not None else 1


def _is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == _NULL_TAG


def describe(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return "a single value"


class Issues:
    """Collects problems; nothing is raised until the whole file has been read."""

    def __init__(self) -> None:
        self.items: list[ProvisioningIssue] = []

    def add(self, line: int, path: str, message: str) -> None:
        self.items.append(ProvisioningIssue(line=line, path=path, message=message))


def join_path(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


class Record:
    """One YAML mapping read field by field, with its unknown and duplicate keys reported."""

    def __init__(
        self,
        node: yaml.MappingNode,
        path: str,
        issues: Issues,
        known: tuple[str, ...],
        *,
        label_key: str | None = None,
        hints: Mapping[str, str] | None = None,
    ) -> None:
        self.node = node
        self.issues = issues
        self.fields: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        pairs: list[tuple[yaml.Node, yaml.Node]] = node.value
        label = _peek_label(pairs, label_key) if label_key else None
        self.path = f"{path} ({label})" if label else path
        first_seen: dict[str, yaml.Node] = {}
        for key, value in pairs:
            if not isinstance(key, yaml.ScalarNode):
                issues.add(node_line(key), self.path, "keys must be plain names")
                continue
            name: str = key.value
            where = join_path(self.path, name)
            if name == "<<":
                issues.add(node_line(key), where, "YAML merge keys (<<) are not supported here")
            elif name in first_seen:
                issues.add(
                    node_line(key),
                    where,
                    f"given twice (first on line {node_line(first_seen[name])})",
                )
            elif name not in known:
                issues.add(node_line(key), where, _unknown_key_message(name, known, hints))
            else:
                self.fields[name] = (key, value)
            first_seen.setdefault(name, key)

    @property
    def line(self) -> int:
        return node_line(self.node)

    def path_of(self, name: str) -> str:
        return join_path(self.path, name)

    def has(self, name: str) -> bool:
        pair = self.fields.get(name)
        return pair is not None and not _is_null(pair[1])

    def value_node(self, name: str) -> yaml.Node | None:
        """The field's value node, or None when it is absent or written as null."""
        pair = self.fields.get(name)
        if pair is None or _is_null(pair[1]):
            return None
        return pair[1]

    def line_of(self, name: str) -> int:
        """The field's line (its key's), or the record's line when the field is absent."""
        pair = self.fields.get(name)
        return node_line(pair[0]) if pair is not None else self.line

    def error(self, name: str, message: str, node: yaml.Node | None = None) -> None:
        line = node_line(node) if node is not None else self.line_of(name)
        self.issues.add(line, self.path_of(name), message)

    def text(self, name: str, *, required: bool) -> str | None:
        """The field's text, stripped; None when absent (reported if required) or invalid."""
        node = self.value_node(name)
        if node is None:
            if required:
                self.error(name, "is required")
            return None
        if not isinstance(node, yaml.ScalarNode):
            self.error(name, f"must be a single value, not {describe(node)}", node)
            return None
        value: str = node.value.strip()
        if required and not value:
            self.error(name, "must not be empty", node)
            return None
        return value

    def optional_text(self, name: str) -> str:
        return self.text(name, required=False) or ""

    def phone(self, name: str, *, required: bool) -> str | None:
        """The field as an E.164 number; None when absent (reported if required) or invalid."""
        value = self.text(name, required=required)
        if not value:
            return None
        try:
            return normalize_phone(value)
        except ValueError as exc:
            self.error(name, str(exc), self.value_node(name))
            return None

    def choice(
        self, name: str, enum: type[_E], aliases: Mapping[str, _E] | None = None
    ) -> _E | None:
        """A required enumerated field, by code (or by one of ``aliases``)."""
        value = self.text(name, required=True)
        if value is None:
            return None
        found = lookup(value, enum, aliases)
        if found is None:
            self.error(name, _choice_message(value, enum), self.value_node(name))
        return found

    def items(self, name: str) -> list[yaml.Node]:
        """The field's list items; an absent or null field is an empty list."""
        node = self.value_node(name)
        if node is None:
            return []
        if not isinstance(node, yaml.SequenceNode):
            self.error(name, f"must be a list, not {describe(node)}", node)
            return []
        items: list[yaml.Node] = node.value
        return items


def _peek_label(pairs: list[tuple[yaml.Node, yaml.Node]], label_key: str) -> str | None:
    for key, value in pairs:
        if isinstance(key, yaml.ScalarNode) and key.value == label_key:
            if isinstance(value, yaml.ScalarNode) and not _is_null(value):
                label: str = value.value.strip()
                return label or None
            return None
    return None


def _unknown_key_message(name: str, known: tuple[str, ...], hints: Mapping[str, str] | None) -> str:
    if hints and name in hints:
        return f"unknown field {name!r}: {hints[name]}"
    close = difflib.get_close_matches(name, known, n=1)
    if close:
        return f"unknown field {name!r} (did you mean {close[0]!r}?)"
    return f"unknown field {name!r} (expected one of: {', '.join(known)})"


def lookup(value: str, enum: type[_E], aliases: Mapping[str, _E] | None) -> _E | None:
    if aliases is not None:
        return aliases.get(value) or aliases.get(value.lower())
    folded = value.lower()
    for member in enum:
        if member.value.lower() == folded:
            return member
    return None


def _choice_message(value: str, enum: type[StrEnum]) -> str:
    codes = [member.value for member in enum]
    return f"{value!r} is not one of: {', '.join(codes)}"


def item_path(path: str, index: int) -> str:
    return f"{path}[{index}]"


def plain_scalar(node: yaml.ScalarNode) -> Any:
    # Times of day such as 22:00 are YAML 1.1 base-60 integers; keep the text the author meant.
    if node.tag in _NUMBER_TAGS and ":" in node.value:
        return node.value
    return SafeConstructor().construct_object(node)


def locate(node: yaml.Node, loc: tuple[int | str, ...]) -> yaml.Node:
    """The node a pydantic error location points at, or its nearest existing ancestor.

    A mapping step answers with the key node: that is the line the field is written on,
    even when its value is a block that starts on the next line.
    """
    current, anchor = node, node
    for part in loc:
        if isinstance(current, yaml.MappingNode) and isinstance(part, str):
            for key, value in current.value:
                if isinstance(key, yaml.ScalarNode) and key.value == part:
                    current, anchor = value, key
                    break
            else:
                return anchor
        elif isinstance(current, yaml.SequenceNode) and isinstance(part, int):
            if not 0 <= part < len(current.value):
                return anchor
            current = anchor = current.value[part]
        else:
            return anchor
    return anchor


def loc_path(path: str, loc: tuple[int | str, ...]) -> str:
    for part in loc:
        path = item_path(path, part) if isinstance(part, int) else join_path(path, part)
    return path


_T = TypeVar("_T")


def present(values: list[_T | None]) -> tuple[_T, ...]:
    return tuple(value for value in values if value is not None)


# --- The parser --------------------------------------------------------------------------------


def compose(text: str, issues: Issues) -> yaml.MappingNode | None:
    try:
        node = yaml.compose(text, Loader=_LOADER)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        message = f"YAML syntax error: {exc.problem or exc.context or 'unreadable'}"
        if exc.problem and exc.context and exc.context_mark is not None:
            message += f" ({exc.context} on line {exc.context_mark.line + 1})"
        issues.add(mark.line + 1 if mark is not None else 1, "", message)
        return None
    except yaml.YAMLError as exc:
        # ReaderError (a control character YAML does not allow) has a position, not a mark.
        position = getattr(exc, "position", None)
        line = text.count("\n", 0, position) + 1 if isinstance(position, int) else 1
        issues.add(line, "", f"not readable as YAML: {exc}")
        return None
    if node is None:
        issues.add(1, "", "the file is empty")
        return None
    if not isinstance(node, yaml.MappingNode):
        issues.add(
            node_line(node),
            "",
            f"the file must be a mapping (town, town_duty, villages, helpers, persons, users), "
            f"not {describe(node)}",
        )
        return None
    return node
