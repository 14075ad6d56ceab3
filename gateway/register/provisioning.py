"""The provisioning file (SPEC §4): YAML in, a fully validated :class:`ProvisioningDoc` out.

Pure: no database, no I/O besides reading ``env`` for ``password_env``. The storage layer
upserts what :func:`parse_provisioning` returns; this module's only job is to make sure that
nothing half-valid ever reaches it. The whole file is refused when any record is invalid,
and every problem is reported at once, each with the 1-based line of the YAML it concerns
and a path such as ``persons[2] (张三).id_number`` (list indexes count from 0, the name in
brackets is there so that an operator does not have to count).

The YAML is read with PyYAML's compose API rather than ``safe_load`` because the node tree
keeps line numbers, keeps duplicate keys visible (``safe_load`` silently keeps the last),
and keeps each scalar's text as written: an unquoted ``02376000000`` would otherwise become
the octal integer 2560000 and an unquoted ``22:00`` the sexagesimal integer 1320.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

import yaml
from pydantic import ValidationError
from yaml.constructor import SafeConstructor

from gateway.config import RulesConfig
from gateway.devices import default_topic
from gateway.devices.vocabulary import DeviceKind, Protocol
from gateway.register.idnumber import describe_problem
from gateway.register.phones import normalize_phone
from gateway.register.vocabulary import (
    CARE_LEVEL_LABELS,
    CATEGORY_LABELS,
    CareLevel,
    Category,
    Gender,
    Role,
)

__all__ = [
    "DeviceEntry",
    "DutyLine",
    "HelperSpec",
    "PersonSpec",
    "ProvisioningDoc",
    "ProvisioningError",
    "ProvisioningIssue",
    "TeamMemberSpec",
    "TeamRobotSpec",
    "UserSpec",
    "VillageSpec",
    "merge_rules",
    "parse_provisioning",
]


# --- What the storage layer receives --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DutyLine:
    """The town's duty line (民政办值班): the last escalation step for every village."""

    name: str
    phone: str  # E.164


@dataclass(frozen=True, slots=True)
class TeamMemberSpec:
    """A member of a village's 应急救助志愿服务队."""

    name: str
    phone: str  # E.164
    role: str  # e.g. 队长; "" when not given


@dataclass(frozen=True, slots=True)
class TeamRobotSpec:
    """A village team's group robot (SPEC §11); URL and secret stay in the environment."""

    provider: str  # dingtalk | wecom
    url_env: str
    secret_env: str | None = None

    def as_json(self) -> dict[str, str]:
        stored = {"provider": self.provider, "url_env": self.url_env}
        if self.secret_env:
            stored["secret_env"] = self.secret_env
        return stored


@dataclass(frozen=True, slots=True)
class VillageSpec:
    """A village (村/居) and its emergency team, in file order."""

    name: str
    emergency_team: tuple[TeamMemberSpec, ...] = ()
    team_robot: TeamRobotSpec | None = None


@dataclass(frozen=True, slots=True)
class HelperSpec:
    """A 帮扶责任人. The phone is the helper's identity across files and in ``persons``."""

    name: str
    phone: str  # E.164
    title: str  # 职务, e.g. 村支书; "" when not given
    village: str


@dataclass(frozen=True, slots=True)
class DeviceEntry:
    """A device in a person's home."""

    uid: str
    kind: DeviceKind
    protocol: Protocol
    #: Base MQTT topic as written in the file; None means "the protocol's default for this
    #: uid", which the gateway's device package fills in (it owns the configurable prefix).
    topic: str | None = None
    model: str | None = None


@dataclass(frozen=True, slots=True)
class PersonSpec:
    """A 关爱对象 with everything the 台账 and the rules need."""

    name: str
    gender: Gender
    id_number: str  # 18 characters, check character upper-case
    village: str
    categories: tuple[Category, ...]  # at least one, no repeats, in file order
    care_level: CareLevel
    helper_phone: str  # E.164, always one of ProvisioningDoc.helpers
    measures: str = ""  # 帮扶措施
    phone: str | None = None  # E.164
    notes: str = ""
    address: str = ""
    guardian_name: str | None = None  # 监护人/赡养人
    guardian_phone: str | None = None  # E.164
    #: The person's ``rules:`` section as written (already validated against RulesConfig);
    #: empty when the person follows the gateway's rules. Kept raw rather than merged so
    #: that a later change of the gateway-wide rules still reaches this person.
    rules_override: dict[str, Any] = field(default_factory=dict, hash=False)
    devices: tuple[DeviceEntry, ...] = ()


@dataclass(frozen=True, slots=True)
class UserSpec:
    """A dashboard/API login. ``password`` is None when the file names no ``password_env``."""

    username: str
    role: Role
    village: str | None = None  # village_officer only
    phone: str | None = None  # E.164; a helper user's phone is a helper's phone
    password: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class ProvisioningDoc:
    """A whole, valid provisioning file."""

    town: str
    town_duty: DutyLine
    villages: tuple[VillageSpec, ...] = ()
    helpers: tuple[HelperSpec, ...] = ()
    persons: tuple[PersonSpec, ...] = ()
    users: tuple[UserSpec, ...] = ()


@dataclass(frozen=True, slots=True)
class ProvisioningIssue:
    """One problem in the file: where (1-based line, record path) and what."""

    line: int
    path: str
    message: str

    def format(self, source: str) -> str:
        """``FILE:LINE: path: message``, the shape editors and CI logs link to."""
        if self.path:
            return f"{source}:{self.line}: {self.path}: {self.message}"
        return f"{source}:{self.line}: {self.message}"


class ProvisioningError(ValueError):
    """The file is refused; ``errors`` lists every problem found, ordered by line."""

    def __init__(self, errors: list[ProvisioningIssue], source: str = "<input>") -> None:
        self.errors = errors
        self.source = source
        super().__init__("\n".join(issue.format(source) for issue in errors))


def merge_rules(defaults: RulesConfig, override: Mapping[str, Any]) -> RulesConfig:
    """A person's effective rules: ``override`` deep-merged over ``defaults``.

    ``defaults`` is normally ``Settings.rules`` (which may differ from the built-in
    defaults the override was checked against when the file was provisioned).
    """
    # Python mode, not JSON: config's time-of-day parser takes time objects but not the
    # "HH:MM:SS" strings that JSON mode would produce.
    merged = _deep_merge(defaults.model_dump(), override)
    return RulesConfig.model_validate(merged)


def _deep_merge(base: Mapping[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in top.items():
        below = merged.get(key)
        if isinstance(below, Mapping) and isinstance(value, Mapping):
            merged[key] = _deep_merge(below, value)
        else:
            merged[key] = value
    return merged


# --- Vocabulary accepted in the file ---------------------------------------------------------

_TOP_KEYS = ("town", "town_duty", "villages", "helpers", "persons", "users")
_DUTY_KEYS = ("name", "phone")
_VILLAGE_KEYS = ("name", "emergency_team", "team_robot")
_ROBOT_KEYS = ("provider", "url_env", "secret_env")
_ROBOT_PROVIDERS = ("dingtalk", "wecom")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TEAM_KEYS = ("name", "phone", "role")
_HELPER_KEYS = ("name", "phone", "title", "village")
_PERSON_KEYS = (
    "name",
    "gender",
    "id_number",
    "village",
    "categories",
    "care_level",
    "helper",
    "measures",
    "phone",
    "notes",
    "address",
    "guardian",
    "guardian_name",
    "guardian_phone",
    "rules",
    "devices",
)
_GUARDIAN_KEYS = ("name", "phone")
_DEVICE_KEYS = ("uid", "kind", "protocol", "topic", "model")
_USER_KEYS = ("username", "role", "village", "phone", "password_env")
_USER_HINTS = {
    "password": "passwords do not belong in the file: put it in an environment variable "
    "and name that variable with password_env",
}

# Operators copy categories from the notice or an old 台账, so the Chinese labels (and their
# short forms without the parenthetical) are accepted besides the codes.
_CATEGORY_ALIASES: dict[str, Category] = {
    **{category.value: category for category in Category},
    **{label: category for category, label in CATEGORY_LABELS.items()},
    **{label.split("（")[0]: category for category, label in CATEGORY_LABELS.items()},
    "留守老人": Category.LEFT_BEHIND,
    "留守儿童": Category.LEFT_BEHIND,
    "留守妇女": Category.LEFT_BEHIND,
}
_CARE_LEVEL_ALIASES: dict[str, CareLevel] = {
    **{level.value: level for level in CareLevel},
    **{label: level for level, label in CARE_LEVEL_LABELS.items()},
}

# A uid becomes part of MQTT topics (``homewatch/<uid>/event``): no level separator,
# wildcard or whitespace in it.
_UID_FORBIDDEN = re.compile(r"[\s/+#]")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

_NULL_TAG = "tag:yaml.org,2002:null"
_NUMBER_TAGS = ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")

_E = TypeVar("_E", bound=StrEnum)


def _line(node: yaml.Node) -> int:
    mark = node.start_mark
    return mark.line + 1 if mark is not None else 1


def _is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == _NULL_TAG


def _describe(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return "a single value"


class _Issues:
    """Collects problems; nothing is raised until the whole file has been read."""

    def __init__(self) -> None:
        self.items: list[ProvisioningIssue] = []

    def add(self, line: int, path: str, message: str) -> None:
        self.items.append(ProvisioningIssue(line=line, path=path, message=message))


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


class _Record:
    """One YAML mapping read field by field, with its unknown and duplicate keys reported."""

    def __init__(
        self,
        node: yaml.MappingNode,
        path: str,
        issues: _Issues,
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
                issues.add(_line(key), self.path, "keys must be plain names")
                continue
            name: str = key.value
            where = _join(self.path, name)
            if name == "<<":
                issues.add(_line(key), where, "YAML merge keys (<<) are not supported here")
            elif name in first_seen:
                issues.add(
                    _line(key), where, f"given twice (first on line {_line(first_seen[name])})"
                )
            elif name not in known:
                issues.add(_line(key), where, _unknown_key_message(name, known, hints))
            else:
                self.fields[name] = (key, value)
            first_seen.setdefault(name, key)

    @property
    def line(self) -> int:
        return _line(self.node)

    def path_of(self, name: str) -> str:
        return _join(self.path, name)

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
        return _line(pair[0]) if pair is not None else self.line

    def error(self, name: str, message: str, node: yaml.Node | None = None) -> None:
        line = _line(node) if node is not None else self.line_of(name)
        self.issues.add(line, self.path_of(name), message)

    def text(self, name: str, *, required: bool) -> str | None:
        """The field's text, stripped; None when absent (reported if required) or invalid."""
        node = self.value_node(name)
        if node is None:
            if required:
                self.error(name, "is required")
            return None
        if not isinstance(node, yaml.ScalarNode):
            self.error(name, f"must be a single value, not {_describe(node)}", node)
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
        found = _lookup(value, enum, aliases)
        if found is None:
            self.error(name, _choice_message(value, enum), self.value_node(name))
        return found

    def items(self, name: str) -> list[yaml.Node]:
        """The field's list items; an absent or null field is an empty list."""
        node = self.value_node(name)
        if node is None:
            return []
        if not isinstance(node, yaml.SequenceNode):
            self.error(name, f"must be a list, not {_describe(node)}", node)
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


def _lookup(value: str, enum: type[_E], aliases: Mapping[str, _E] | None) -> _E | None:
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


def _item_path(path: str, index: int) -> str:
    return f"{path}[{index}]"


def _plain_scalar(node: yaml.ScalarNode) -> Any:
    # Times of day such as 22:00 are YAML 1.1 base-60 integers; keep the text the author meant.
    if node.tag in _NUMBER_TAGS and ":" in node.value:
        return node.value
    return SafeConstructor().construct_object(node)


def _locate(node: yaml.Node, loc: tuple[int | str, ...]) -> yaml.Node:
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


def _loc_path(path: str, loc: tuple[int | str, ...]) -> str:
    for part in loc:
        path = _item_path(path, part) if isinstance(part, int) else _join(path, part)
    return path


_T = TypeVar("_T")


def _present(values: list[_T | None]) -> tuple[_T, ...]:
    return tuple(value for value in values if value is not None)


# --- The parser --------------------------------------------------------------------------------


class _Parser:
    """Walks the document once, remembering what later records may reference."""

    def __init__(self, issues: _Issues, env: Mapping[str, str]) -> None:
        self.issues = issues
        self.env = env
        self.villages: dict[str, int] = {}  # name -> line
        self.helper_phones: dict[str, int] = {}  # E.164 -> line
        self.id_numbers: dict[str, int] = {}  # upper-cased -> line
        self.device_uids: dict[str, int] = {}
        self.topics: dict[str, tuple[str, int]] = {}  # effective topic -> (uid, line)
        self.usernames: dict[str, int] = {}  # lower-cased -> line

    def document(self, root: yaml.MappingNode) -> ProvisioningDoc | None:
        top = _Record(root, "", self.issues, _TOP_KEYS)
        town = top.text("town", required=True)
        duty = self._duty(top)
        # Sections are read villages -> helpers -> persons -> users whatever their order in
        # the file, so that every reference can be checked in this single pass.
        villages = _present(
            [self._village(r) for r in self._records(top, "villages", "name", _VILLAGE_KEYS)]
        )
        helpers = _present(
            [self._helper(r) for r in self._records(top, "helpers", "name", _HELPER_KEYS)]
        )
        persons = _present(
            [self._person(r) for r in self._records(top, "persons", "name", _PERSON_KEYS)]
        )
        users = _present(
            [
                self._user(r)
                for r in self._records(top, "users", "username", _USER_KEYS, _USER_HINTS)
            ]
        )
        if town is None or duty is None:
            return None
        return ProvisioningDoc(
            town=town,
            town_duty=duty,
            villages=villages,
            helpers=helpers,
            persons=persons,
            users=users,
        )

    def _records(
        self,
        parent: _Record,
        name: str,
        label_key: str,
        known: tuple[str, ...],
        hints: Mapping[str, str] | None = None,
    ) -> list[_Record]:
        records = []
        for index, node in enumerate(parent.items(name)):
            path = _item_path(parent.path_of(name), index)
            if not isinstance(node, yaml.MappingNode):
                self.issues.add(
                    _line(node), path, f"must be a mapping of fields, not {_describe(node)}"
                )
                continue
            records.append(
                _Record(node, path, self.issues, known, label_key=label_key, hints=hints)
            )
        return records

    def _sub_record(
        self, parent: _Record, name: str, known: tuple[str, ...], shape: str
    ) -> _Record | None:
        """A field whose value is itself a small mapping (``town_duty``, ``guardian``)."""
        node = parent.value_node(name)
        if node is None:
            return None
        if not isinstance(node, yaml.MappingNode):
            parent.error(name, f"must be a mapping {shape}, not {_describe(node)}", node)
            return None
        return _Record(node, parent.path_of(name), self.issues, known)

    def _duty(self, top: _Record) -> DutyLine | None:
        if not top.has("town_duty"):
            top.error("town_duty", "is required (the town's duty line: {name, phone})")
            return None
        record = self._sub_record(top, "town_duty", _DUTY_KEYS, "{name, phone}")
        if record is None:
            return None
        name = record.text("name", required=True)
        phone = record.phone("phone", required=True)
        if name is None or phone is None:
            return None
        return DutyLine(name=name, phone=phone)

    def _village_ref(self, record: _Record, name: str) -> str | None:
        village = record.text(name, required=True)
        if village is not None and village not in self.villages:
            record.error(
                name, f"village {village!r} is not defined under villages", record.value_node(name)
            )
            return None
        return village

    def _village(self, record: _Record) -> VillageSpec | None:
        name = record.text("name", required=True)
        if name is not None:
            if name in self.villages:
                record.error(
                    "name", f"village {name!r} is already defined on line {self.villages[name]}"
                )
            else:
                self.villages[name] = record.line_of("name")
        team: list[TeamMemberSpec | None] = []
        phones: dict[str, int] = {}
        for member in self._records(record, "emergency_team", "name", _TEAM_KEYS):
            member_name = member.text("name", required=True)
            phone = member.phone("phone", required=True)
            role = member.optional_text("role")
            if phone is not None:
                if phone in phones:
                    member.error("phone", f"{phone} is already in this team (line {phones[phone]})")
                phones.setdefault(phone, member.line_of("phone"))
            if member_name is not None and phone is not None:
                team.append(TeamMemberSpec(name=member_name, phone=phone, role=role))
        robot = self._team_robot(record)
        if name is None:
            return None
        return VillageSpec(name=name, emergency_team=_present(team), team_robot=robot)

    def _team_robot(self, village: _Record) -> TeamRobotSpec | None:
        record = self._sub_record(
            village, "team_robot", _ROBOT_KEYS, "{provider, url_env, secret_env}"
        )
        if record is None:
            return None
        provider = record.text("provider", required=True)
        if provider is not None and provider not in _ROBOT_PROVIDERS:
            record.error(
                "provider",
                f"{provider!r} is not one of: {', '.join(_ROBOT_PROVIDERS)}",
                record.value_node("provider"),
            )
            provider = None
        names: dict[str, str | None] = {}
        for key in ("url_env", "secret_env"):
            value = record.text(key, required=key == "url_env")
            if value and not _ENV_NAME.match(value):
                record.error(
                    key,
                    f"{value!r} is not an environment variable name (the URL and secret "
                    "stay out of the register: name the variable that holds them)",
                    record.value_node(key),
                )
                value = None
            names[key] = value
        if provider == "dingtalk" and not record.has("secret_env"):
            record.error("secret_env", "is required for a dingtalk robot (signed posts, 加签)")
            return None
        if provider == "wecom" and record.has("secret_env"):
            record.error("secret_env", "a wecom robot is not signed: its key is in the URL")
            return None
        url_env = names["url_env"]
        if provider is None or url_env is None:
            return None
        return TeamRobotSpec(provider=provider, url_env=url_env, secret_env=names["secret_env"])

    def _helper(self, record: _Record) -> HelperSpec | None:
        name = record.text("name", required=True)
        phone = record.phone("phone", required=True)
        title = record.optional_text("title")
        village = self._village_ref(record, "village")
        if phone is not None:
            if phone in self.helper_phones:
                record.error(
                    "phone",
                    f"another helper already has phone {phone} (line {self.helper_phones[phone]})",
                )
            else:
                self.helper_phones[phone] = record.line_of("phone")
        if name is None or phone is None or village is None:
            return None
        return HelperSpec(name=name, phone=phone, title=title, village=village)

    def _person(self, record: _Record) -> PersonSpec | None:
        name = record.text("name", required=True)
        gender = record.choice("gender", Gender)
        id_number = self._id_number(record, gender)
        village = self._village_ref(record, "village")
        categories = self._categories(record)
        care_level = record.choice("care_level", CareLevel, _CARE_LEVEL_ALIASES)
        helper = record.phone("helper", required=True)
        if helper is not None and helper not in self.helper_phones:
            record.error(
                "helper",
                f"{helper} is not the phone of any helper under helpers",
                record.value_node("helper"),
            )
        measures = record.optional_text("measures")
        phone = record.phone("phone", required=False)
        notes = record.optional_text("notes")
        address = record.optional_text("address")
        guardian_name, guardian_phone = self._guardian(record)
        uids: set[str] = set()
        devices = _present(
            [
                self._device(device, uids)
                for device in self._records(record, "devices", "uid", _DEVICE_KEYS)
            ]
        )
        rules = self._rules(record, uids)
        if (
            name is None
            or gender is None
            or id_number is None
            or village is None
            or categories is None
            or care_level is None
            or helper is None
        ):
            return None
        return PersonSpec(
            name=name,
            gender=gender,
            id_number=id_number,
            village=village,
            categories=categories,
            care_level=care_level,
            helper_phone=helper,
            measures=measures,
            phone=phone,
            notes=notes,
            address=address,
            guardian_name=guardian_name,
            guardian_phone=guardian_phone,
            rules_override=rules,
            devices=devices,
        )

    def _id_number(self, record: _Record, gender: Gender | None) -> str | None:
        raw = record.text("id_number", required=True)
        if raw is None:
            return None
        # Numbers pasted from a spreadsheet often carry spaces; the check character is
        # stored upper-case so that the duplicate check (and the database) see one spelling.
        number = re.sub(r"\s+", "", raw).upper()
        node = record.value_node("id_number")
        problem = describe_problem(number, gender.value if gender is not None else None)
        if problem is not None:
            record.error("id_number", problem, node)
            return None
        if number in self.id_numbers:
            record.error(
                "id_number",
                f"the same ID number is already given on line {self.id_numbers[number]}",
                node,
            )
            return None
        self.id_numbers[number] = record.line_of("id_number")
        return number

    def _categories(self, record: _Record) -> tuple[Category, ...] | None:
        node = record.value_node("categories")
        codes = ", ".join(category.value for category in Category)
        if node is None:
            record.error("categories", f"is required (one or more of: {codes})")
            return None
        path = record.path_of("categories")
        items: list[tuple[yaml.Node, str]]
        if isinstance(node, yaml.SequenceNode):
            items = [(item, _item_path(path, index)) for index, item in enumerate(node.value)]
        elif isinstance(node, yaml.ScalarNode):
            items = [(node, path)]  # a single category written without brackets
        else:
            record.error("categories", f"must be a list of categories, not {_describe(node)}", node)
            return None
        if not items:
            record.error("categories", f"needs at least one category ({codes})", node)
            return None
        found: list[Category] = []
        valid = True
        for item, item_path in items:
            value = item.value.strip() if isinstance(item, yaml.ScalarNode) else ""
            category = _lookup(value, Category, _CATEGORY_ALIASES) if value else None
            if category is None:
                shown = repr(value) if value else _describe(item)
                self.issues.add(_line(item), item_path, f"{shown} is not one of: {codes}")
                valid = False
            elif category in found:
                self.issues.add(_line(item), item_path, f"{category.value} is listed twice")
                valid = False
            else:
                found.append(category)
        return tuple(found) if valid else None

    def _guardian(self, record: _Record) -> tuple[str | None, str | None]:
        if record.has("guardian"):
            if record.has("guardian_name") or record.has("guardian_phone"):
                record.error(
                    "guardian",
                    "write either guardian: {name, phone} or guardian_name/guardian_phone, "
                    "not both",
                )
            guardian = self._sub_record(record, "guardian", _GUARDIAN_KEYS, "{name, phone}")
            if guardian is None:
                return None, None
            return guardian.text("name", required=True), guardian.phone("phone", required=False)
        name = record.text("guardian_name", required=False) or None
        phone = record.phone("guardian_phone", required=False)
        if phone is not None and name is None:
            record.error("guardian_phone", "needs guardian_name as well")
        return name, phone

    def _device(self, record: _Record, person_uids: set[str]) -> DeviceEntry | None:
        uid = record.text("uid", required=True)
        uid_ok = False
        if uid is not None:
            person_uids.add(uid)
            if _UID_FORBIDDEN.search(uid):
                record.error(
                    "uid",
                    "must not contain whitespace, '/', '+' or '#' (it becomes part of MQTT topics)",
                    record.value_node("uid"),
                )
            elif uid in self.device_uids:
                record.error(
                    "uid",
                    f"device uid {uid!r} is already used on line {self.device_uids[uid]}",
                    record.value_node("uid"),
                )
            else:
                self.device_uids[uid] = record.line_of("uid")
                uid_ok = True
        kind = record.choice("kind", DeviceKind)
        protocol = record.choice("protocol", Protocol)
        topic = self._topic(record)
        model = record.text("model", required=False) or None
        effective = topic
        if effective is None and uid_ok and protocol is not None and uid is not None:
            effective = default_topic(uid, protocol)
        if effective is not None:
            line = record.line_of("topic" if topic is not None else "uid")
            if effective in self.topics:
                other_uid, other_line = self.topics[effective]
                record.error(
                    "topic" if topic is not None else "uid",
                    f"MQTT topic {effective!r} is already used by device {other_uid!r} "
                    f"(line {other_line})",
                )
            else:
                self.topics[effective] = (uid or "?", line)
        if not uid_ok or uid is None or kind is None or protocol is None:
            return None
        return DeviceEntry(uid=uid, kind=kind, protocol=protocol, topic=topic, model=model)

    def _topic(self, record: _Record) -> str | None:
        topic = record.text("topic", required=False)
        if topic is None:
            return None
        node = record.value_node("topic")
        if not topic:
            record.error("topic", "is empty (leave it out to use the protocol's default)", node)
        elif "+" in topic or "#" in topic:
            record.error("topic", "must not contain the MQTT wildcards '+' or '#'", node)
        elif topic.startswith(("/", "$")) or topic.endswith("/"):
            record.error("topic", "must not start with '/' or '$' or end with '/'", node)
        else:
            return topic
        return None

    def _rules(self, record: _Record, person_uids: set[str]) -> dict[str, Any]:
        node = record.value_node("rules")
        if node is None:
            return {}
        path = record.path_of("rules")
        if not isinstance(node, yaml.MappingNode):
            record.error(
                "rules", f"must be a mapping of rule settings, not {_describe(node)}", node
            )
            return {}
        data = self._plain(node, path)
        try:
            # Every RulesConfig field has a default, so validating the partial mapping is
            # validating it deep-merged over the built-in defaults.
            rules = RulesConfig.model_validate(data)
        except ValidationError as exc:
            for error in exc.errors():
                error_loc = tuple(error["loc"])
                if error["type"] == "extra_forbidden":
                    message = "unknown setting"
                else:
                    message = error["msg"].removeprefix("Value error, ")
                self.issues.add(
                    _line(_locate(node, error_loc)), _loc_path(path, error_loc), message
                )
            return {}
        ignored = rules.inactivity.ignore_devices
        for index, uid in enumerate(ignored):
            if uid not in person_uids:
                loc: tuple[int | str, ...] = ("inactivity", "ignore_devices", index)
                self.issues.add(
                    _line(_locate(node, loc)),
                    _loc_path(path, loc),
                    f"{uid!r} is not one of this person's devices",
                )
        return data if isinstance(data, dict) else {}

    def _plain(self, node: yaml.Node, path: str) -> Any:
        """Plain Python data for pydantic, with duplicate keys reported instead of dropped."""
        if isinstance(node, yaml.MappingNode):
            result: dict[str, Any] = {}
            first_seen: dict[str, yaml.Node] = {}
            for key, value in node.value:
                if not isinstance(key, yaml.ScalarNode):
                    self.issues.add(_line(key), path, "keys must be plain names")
                    continue
                name: str = key.value
                if name in first_seen:
                    self.issues.add(
                        _line(key),
                        _join(path, name),
                        f"given twice (first on line {_line(first_seen[name])})",
                    )
                    continue
                first_seen[name] = key
                result[name] = self._plain(value, _join(path, name))
            return result
        if isinstance(node, yaml.SequenceNode):
            return [
                self._plain(item, _item_path(path, index)) for index, item in enumerate(node.value)
            ]
        if isinstance(node, yaml.ScalarNode):
            try:
                return _plain_scalar(node)
            except (yaml.YAMLError, ValueError):
                # e.g. a timestamp-looking value that is no real date: let pydantic judge the text
                text: str = node.value
                return text
        return None

    def _user(self, record: _Record) -> UserSpec | None:
        username = record.text("username", required=True)
        if username is not None:
            node = record.value_node("username")
            key = username.lower()
            if re.search(r"\s", username):
                record.error("username", "must not contain spaces", node)
            elif key in self.usernames:
                record.error(
                    "username",
                    f"username {username!r} is already used on line {self.usernames[key]}",
                    node,
                )
            else:
                self.usernames[key] = record.line_of("username")
        role = record.choice("role", Role)
        phone = record.phone("phone", required=False)
        village: str | None = None
        if role is Role.VILLAGE_OFFICER:
            village = self._village_ref(record, "village")
        elif role is not None and record.has("village"):
            record.error(
                "village", f"only village_officer users belong to a village, not {role.value}"
            )
        if role is Role.HELPER:
            if not record.has("phone"):
                record.error("phone", "is required for a helper user (their phone under helpers)")
            elif phone is not None and phone not in self.helper_phones:
                record.error(
                    "phone",
                    f"{phone} is not the phone of any helper under helpers",
                    record.value_node("phone"),
                )
        password = self._password(record)
        if username is None or role is None:
            return None
        return UserSpec(
            username=username, role=role, village=village, phone=phone, password=password
        )

    def _password(self, record: _Record) -> str | None:
        name = record.text("password_env", required=False)
        if name is None:
            return None
        node = record.value_node("password_env")
        if not _ENV_NAME.match(name):
            record.error("password_env", f"{name!r} is not an environment variable name", node)
            return None
        value = self.env.get(name)
        if value is None:
            record.error("password_env", f"environment variable {name} is not set", node)
        elif not value:
            record.error("password_env", f"environment variable {name} is empty", node)
            return None
        return value


def _compose(text: str, issues: _Issues) -> yaml.MappingNode | None:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
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
            _line(node),
            "",
            f"the file must be a mapping (town, town_duty, villages, helpers, persons, users), "
            f"not {_describe(node)}",
        )
        return None
    return node


def parse_provisioning(
    text: str, *, source: str = "<input>", env: Mapping[str, str] | None = None
) -> ProvisioningDoc:
    """Validate a provisioning file and return it as typed records.

    Args:
        text: The YAML text.
        source: How to name the file in error messages (normally its path).
        env: Where ``password_env`` variables are looked up; ``os.environ`` by default.

    Raises:
        ProvisioningError: Anything is invalid; it lists every problem, ordered by line.
    """
    issues = _Issues()
    root = _compose(text, issues)
    doc = None
    if root is not None:
        doc = _Parser(issues, os.environ if env is None else env).document(root)
    if doc is None or issues.items:
        if not issues.items:  # pragma: no cover - document() reports why it returned None
            issues.add(1, "", "the file could not be read")
        raise ProvisioningError(sorted(issues.items, key=lambda issue: issue.line), source)
    return doc
