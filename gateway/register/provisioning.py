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

import os
import re
from collections.abc import Mapping
from typing import Any

import yaml
from pydantic import ValidationError

from gateway.config import RulesConfig
from gateway.devices import default_topic
from gateway.devices.vocabulary import DeviceKind, Protocol
from gateway.register.idnumber import describe_problem
from gateway.register.provisioning_reader import (
    Issues,
    Record,
    compose,
    describe,
    item_path,
    join_path,
    loc_path,
    locate,
    lookup,
    node_line,
    plain_scalar,
    present,
)
from gateway.register.provisioning_schema import (
    DeviceEntry,
    DutyLine,
    HelperSpec,
    PersonSpec,
    ProvisioningDoc,
    ProvisioningError,
    ProvisioningIssue,
    TeamMemberSpec,
    TeamRobotSpec,
    UserSpec,
    VillageSpec,
    merge_rules,
)
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


class _Parser:
    """Walks the document once, remembering what later records may reference."""

    def __init__(self, issues: Issues, env: Mapping[str, str]) -> None:
        self.issues = issues
        self.env = env
        self.villages: dict[str, int] = {}  # name -> line
        self.helper_phones: dict[str, int] = {}  # E.164 -> line
        self.id_numbers: dict[str, int] = {}  # upper-cased -> line
        self.device_uids: dict[str, int] = {}
        self.topics: dict[str, tuple[str, int]] = {}  # effective topic -> (uid, line)
        self.usernames: dict[str, int] = {}  # lower-cased -> line

    def document(self, root: yaml.MappingNode) -> ProvisioningDoc | None:
        top = Record(root, "", self.issues, _TOP_KEYS)
        town = top.text("town", required=True)
        duty = self._duty(top)
        # Sections are read villages -> helpers -> persons -> users whatever their order in
        # the file, so that every reference can be checked in this single pass.
        villages = present(
            [self._village(r) for r in self._records(top, "villages", "name", _VILLAGE_KEYS)]
        )
        helpers = present(
            [self._helper(r) for r in self._records(top, "helpers", "name", _HELPER_KEYS)]
        )
        persons = present(
            [self._person(r) for r in self._records(top, "persons", "name", _PERSON_KEYS)]
        )
        users = present(
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
        parent: Record,
        name: str,
        label_key: str,
        known: tuple[str, ...],
        hints: Mapping[str, str] | None = None,
    ) -> list[Record]:
        records = []
        for index, node in enumerate(parent.items(name)):
            path = item_path(parent.path_of(name), index)
            if not isinstance(node, yaml.MappingNode):
                self.issues.add(
                    node_line(node), path, f"must be a mapping of fields, not {describe(node)}"
                )
                continue
            records.append(Record(node, path, self.issues, known, label_key=label_key, hints=hints))
        return records

    def _sub_record(
        self, parent: Record, name: str, known: tuple[str, ...], shape: str
    ) -> Record | None:
        """A field whose value is itself a small mapping (``town_duty``, ``guardian``)."""
        node = parent.value_node(name)
        if node is None:
            return None
        if not isinstance(node, yaml.MappingNode):
            parent.error(name, f"must be a mapping {shape}, not {describe(node)}", node)
            return None
        return Record(node, parent.path_of(name), self.issues, known)

    def _duty(self, top: Record) -> DutyLine | None:
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

    def _village_ref(self, record: Record, name: str) -> str | None:
        village = record.text(name, required=True)
        if village is not None and village not in self.villages:
            record.error(
                name, f"village {village!r} is not defined under villages", record.value_node(name)
            )
            return None
        return village

    def _village(self, record: Record) -> VillageSpec | None:
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
        return VillageSpec(name=name, emergency_team=present(team), team_robot=robot)

    def _team_robot(self, village: Record) -> TeamRobotSpec | None:
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

    def _helper(self, record: Record) -> HelperSpec | None:
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

    def _person(self, record: Record) -> PersonSpec | None:
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
        devices = present(
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

    def _id_number(self, record: Record, gender: Gender | None) -> str | None:
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

    def _categories(self, record: Record) -> tuple[Category, ...] | None:
        node = record.value_node("categories")
        codes = ", ".join(category.value for category in Category)
        if node is None:
            record.error("categories", f"is required (one or more of: {codes})")
            return None
        path = record.path_of("categories")
        items: list[tuple[yaml.Node, str]]
        if isinstance(node, yaml.SequenceNode):
            items = [(item, item_path(path, index)) for index, item in enumerate(node.value)]
        elif isinstance(node, yaml.ScalarNode):
            items = [(node, path)]  # a single category written without brackets
        else:
            record.error("categories", f"must be a list of categories, not {describe(node)}", node)
            return None
        if not items:
            record.error("categories", f"needs at least one category ({codes})", node)
            return None
        found: list[Category] = []
        valid = True
        for item, entry_path in items:
            value = item.value.strip() if isinstance(item, yaml.ScalarNode) else ""
            category = lookup(value, Category, _CATEGORY_ALIASES) if value else None
            if category is None:
                shown = repr(value) if value else describe(item)
                self.issues.add(node_line(item), entry_path, f"{shown} is not one of: {codes}")
                valid = False
            elif category in found:
                self.issues.add(node_line(item), entry_path, f"{category.value} is listed twice")
                valid = False
            else:
                found.append(category)
        return tuple(found) if valid else None

    def _guardian(self, record: Record) -> tuple[str | None, str | None]:
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

    def _device(self, record: Record, person_uids: set[str]) -> DeviceEntry | None:
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

    def _topic(self, record: Record) -> str | None:
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

    def _rules(self, record: Record, person_uids: set[str]) -> dict[str, Any]:
        node = record.value_node("rules")
        if node is None:
            return {}
        path = record.path_of("rules")
        if not isinstance(node, yaml.MappingNode):
            record.error("rules", f"must be a mapping of rule settings, not {describe(node)}", node)
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
                    node_line(locate(node, error_loc)), loc_path(path, error_loc), message
                )
            return {}
        ignored = rules.inactivity.ignore_devices
        for index, uid in enumerate(ignored):
            if uid not in person_uids:
                loc: tuple[int | str, ...] = ("inactivity", "ignore_devices", index)
                self.issues.add(
                    node_line(locate(node, loc)),
                    loc_path(path, loc),
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
                    self.issues.add(node_line(key), path, "keys must be plain names")
                    continue
                name: str = key.value
                if name in first_seen:
                    self.issues.add(
                        node_line(key),
                        join_path(path, name),
                        f"given twice (first on line {node_line(first_seen[name])})",
                    )
                    continue
                first_seen[name] = key
                result[name] = self._plain(value, join_path(path, name))
            return result
        if isinstance(node, yaml.SequenceNode):
            return [
                self._plain(item, item_path(path, index)) for index, item in enumerate(node.value)
            ]
        if isinstance(node, yaml.ScalarNode):
            try:
                return plain_scalar(node)
            except (yaml.YAMLError, ValueError):
                # e.g. a timestamp-looking value that is no real date: let pydantic judge the text
                text: str = node.value
                return text
        return None

    def _user(self, record: Record) -> UserSpec | None:
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

    def _password(self, record: Record) -> str | None:
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
    issues = Issues()
    root = compose(text, issues)
    doc = None
    if root is not None:
        doc = _Parser(issues, os.environ if env is None else env).document(root)
    if doc is None or issues.items:
        if not issues.items:  # pragma: no cover - document() reports why it returned None
            issues.add(1, "", "the file could not be read")
        raise ProvisioningError(sorted(issues.items, key=lambda issue: issue.line), source)
    return doc
