"""The provisioning file (SPEC §4): a valid file parses; every problem is reported by line."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from gateway.config import RulesConfig
from gateway.register.provisioning import (
    DeviceEntry,
    ProvisioningDoc,
    merge_rules,
    parse_provisioning,
)
from gateway.register.vocabulary import CareLevel, Category, DeviceKind, Gender, Protocol, Role
from tests.unit.provisioning_file_support import (
    BASE,
    ENV,
    edit,
    only_problem,
    problems,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "provisioning.yaml"
EXAMPLE_ENV = {
    "HOMEWATCH_ADMIN_PASSWORD": "admin-pw",
    "HOMEWATCH_AKOFFICER_PASSWORD": "ak-pw",
    "HOMEWATCH_BMOFFICER_PASSWORD": "bm-pw",
    "HOMEWATCH_LISI_PASSWORD": "lisi-pw",
}

# SPEC §4, copied verbatim (including its "…" placeholders).
SPEC_EXAMPLE = """\
town: 隘口镇
town_duty: {name: 民政办值班, phone: "+8602376000000"}
villages:
  - name: 坝芒村
    emergency_team:          # 应急救助志愿服务队
      - {name: 王五, phone: "+8613900000001", role: 队长}
helpers:                     # 帮扶责任人
  - {name: 李四, phone: "+8613700000001", title: 村支书, village: 坝芒村}
persons:                     # 关爱对象
  - name: 张三
    gender: 男
    id_number: "500241194905050016"
    village: 坝芒村
    categories: [dispersed_destitute]
    care_level: special      # general: >= 2 visits a month; special: >= 1 a week
    helper: "+8613700000001" # a helper's phone
    measures: 每周上门一次，代购生活用品
    phone: "+8613600000001"
    notes: ""
    address: 坝芒村3组12号
    devices:
      - {uid: bm-zs-sos, kind: sos, protocol: zigbee2mqtt, topic: zigbee2mqtt/bm-zs-sos, model: TS0215A_sos}
      - {uid: bm-zs-pir, kind: motion, protocol: native}
users:
  - {username: admin, role: town_admin, password_env: HOMEWATCH_ADMIN_PASSWORD}
  - {username: akofficer, role: village_officer, village: 隘口村, password_env: …}
  - {username: lisi, role: helper, phone: "+8613700000001", password_env: …}
"""  # noqa: E501 - the SPEC's device line is longer than our code lines

# --- Valid files ---------------------------------------------------------------------------


def test_base_parses() -> None:
    doc = parse_provisioning(BASE, env=ENV)
    assert doc.town == "隘口镇"
    assert [village.name for village in doc.villages] == ["坝芒村"]
    assert doc.persons[0].devices == (
        DeviceEntry(uid="bm-zs-sos", kind=DeviceKind.SOS, protocol=Protocol.ZIGBEE2MQTT),
    )
    assert doc.users[0].password == "secret-pw"


def test_example_file_parses() -> None:
    doc = parse_provisioning(
        EXAMPLE.read_text(encoding="utf-8"), source=str(EXAMPLE), env=EXAMPLE_ENV
    )
    assert isinstance(doc, ProvisioningDoc)
    assert doc.town == "隘口镇"
    assert doc.town_duty.phone == "+862376000000"
    assert [village.name for village in doc.villages] == ["坝芒村", "隘口村"]
    assert len(doc.villages[0].emergency_team) >= 1
    assert 2 <= len(doc.helpers) <= 3
    assert 3 <= len(doc.persons) <= 4
    helper_phones = {helper.phone for helper in doc.helpers}
    assert all(person.helper_phone in helper_phones for person in doc.persons)
    protocols = {device.protocol for person in doc.persons for device in person.devices}
    assert protocols == set(Protocol)
    assert all(user.password for user in doc.users)
    assert {user.role for user in doc.users} == set(Role)
    bedridden = next(person for person in doc.persons if person.rules_override)
    rules = merge_rules(RulesConfig(), bedridden.rules_override)
    assert rules.inactivity.ignore_devices
    assert all(phone.startswith("+") for phone in helper_phones)


def test_spec_example_needs_only_its_placeholders_filled() -> None:
    # Verbatim, the SPEC's block is not self-contained: akofficer's village 隘口村 is not
    # under villages, and two password_env values are the placeholder "…".
    found = problems(SPEC_EXAMPLE, env={"HOMEWATCH_ADMIN_PASSWORD": "pw"})
    assert found == [
        (26, "users[1] (akofficer).village", "village '隘口村' is not defined under villages"),
        (26, "users[1] (akofficer).password_env", "'…' is not an environment variable name"),
        (27, "users[2] (lisi).password_env", "'…' is not an environment variable name"),
    ]
    completed = SPEC_EXAMPLE.replace(
        '      - {name: 王五, phone: "+8613900000001", role: 队长}\n',
        '      - {name: 王五, phone: "+8613900000001", role: 队长}\n  - name: 隘口村\n',
    )
    completed = completed.replace("password_env: …}", "password_env: OTHER_PW}")
    doc = parse_provisioning(completed, env={"HOMEWATCH_ADMIN_PASSWORD": "pw", "OTHER_PW": "other"})
    (person,) = doc.persons
    assert person.name == "张三"
    assert person.gender is Gender.MALE
    assert person.categories == (Category.DISPERSED_DESTITUTE,)
    assert person.care_level is CareLevel.SPECIAL
    assert person.helper_phone == "+8613700000001"
    assert person.phone == "+8613600000001"
    assert person.notes == ""
    assert person.devices[0].topic == "zigbee2mqtt/bm-zs-sos"
    assert person.devices[0].model == "TS0215A_sos"
    assert person.devices[1].topic is None  # the gateway fills in the native default
    assert doc.town_duty.phone == "+862376000000"
    assert [user.role for user in doc.users] == [
        Role.TOWN_ADMIN,
        Role.VILLAGE_OFFICER,
        Role.HELPER,
    ]


def test_sections_in_any_order_and_lists_may_be_absent() -> None:
    text = """\
users: []
persons:
helpers:
town: 隘口镇
villages:
  - {name: 坝芒村}
town_duty: {name: 值班, phone: 023-76000000}
"""
    doc = parse_provisioning(text, env={})
    assert doc.persons == ()
    assert doc.villages[0].emergency_team == ()


def test_helper_reference_matches_after_normalisation() -> None:
    doc = parse_provisioning(edit('helper: "+8613700000001"', "helper: 137 0000 0001"), env=ENV)
    assert doc.persons[0].helper_phone == "+8613700000001"


def test_unquoted_numbers_keep_the_text_as_written() -> None:
    # Unquoted, YAML would read 02376000123 as an octal integer and the ID as an int.
    text = edit('id_number: "500241194905050016"', "id_number: 500241194905050016")
    text = edit("    helper:", "    phone: 02376000123\n    helper:", text)
    person = parse_provisioning(text, env=ENV).persons[0]
    assert person.id_number == "500241194905050016"
    assert person.phone == "+862376000123"


def test_id_number_lowercase_x_is_stored_uppercase() -> None:
    text = edit('id_number: "500241194905050016"', "id_number: 50024119600110106x")
    text = edit("gender: 男", "gender: 女", text)
    assert parse_provisioning(text, env=ENV).persons[0].id_number == "50024119600110106X"


def test_categories_by_chinese_label_or_single_value() -> None:
    text = edit("categories: [dispersed_destitute]", "categories: [困境儿童, 留守老人, 低保对象]")
    assert parse_provisioning(text, env=ENV).persons[0].categories == (
        Category.CHILDREN_IN_DIFFICULTY,
        Category.LEFT_BEHIND,
        Category.MINIMUM_LIVING_ALLOWANCE,
    )
    text = edit("categories: [dispersed_destitute]", "categories: severe_disability")
    assert parse_provisioning(text, env=ENV).persons[0].categories == (Category.SEVERE_DISABILITY,)


def test_codes_are_read_case_insensitively() -> None:
    text = edit("kind: sos, protocol: zigbee2mqtt", "kind: SOS, protocol: Zigbee2MQTT")
    (device,) = parse_provisioning(text, env=ENV).persons[0].devices
    assert (device.kind, device.protocol) == (DeviceKind.SOS, Protocol.ZIGBEE2MQTT)


def test_care_level_by_chinese_label() -> None:
    text = edit("care_level: special", "care_level: 一般关爱对象")
    assert parse_provisioning(text, env=ENV).persons[0].care_level is CareLevel.GENERAL


def test_guardian_in_both_spellings() -> None:
    nested = edit("    devices:", "    guardian: {name: 张大, phone: '13600000002'}\n    devices:")
    person = parse_provisioning(nested, env=ENV).persons[0]
    assert (person.guardian_name, person.guardian_phone) == ("张大", "+8613600000002")
    flat = edit("    devices:", "    guardian_name: 张大\n    devices:")
    person = parse_provisioning(flat, env=ENV).persons[0]
    assert (person.guardian_name, person.guardian_phone) == ("张大", None)


def test_rules_override_is_kept_raw_and_merges_over_defaults() -> None:
    text = edit(
        "    devices:",
        "    rules:\n"
        "      door_open_night: {start: 22:30, open_for: 30m}\n"  # unquoted 22:30 on purpose
        "      inactivity: {ignore_devices: [bm-zs-sos]}\n"
        "    devices:",
    )
    person = parse_provisioning(text, env=ENV).persons[0]
    assert person.rules_override == {
        "door_open_night": {"start": "22:30", "open_for": "30m"},
        "inactivity": {"ignore_devices": ["bm-zs-sos"]},
    }
    defaults = RulesConfig.model_validate({"inactivity": {"night": {"quiet": "10h"}}})
    rules = merge_rules(defaults, person.rules_override)
    assert rules.door_open_night.open_for == timedelta(minutes=30)
    assert rules.door_open_night.end == defaults.door_open_night.end
    assert rules.inactivity.night.quiet == timedelta(hours=10)  # the gateway-wide setting
    assert rules.inactivity.ignore_devices == ("bm-zs-sos",)


def test_user_password_is_not_in_repr() -> None:
    doc = parse_provisioning(BASE, env=ENV)
    assert "secret-pw" not in repr(doc)


# --- Whole-file problems ----------------------------------------------------------------------


def test_yaml_syntax_error_has_its_line() -> None:
    text = edit("    gender: 男\n", "    gender: 男\n   bad: [\n")
    ((line, path, message),) = problems(text)
    assert line == 12
    assert path == ""
    assert message.startswith("YAML syntax error")


@pytest.mark.parametrize("text", ["", "\n", "# only a comment\n"])
def test_empty_file(text: str) -> None:
    assert only_problem(text) == (1, "", "the file is empty")


def test_file_that_is_not_a_mapping() -> None:
    line, path, message = only_problem("# a list\n- town: 隘口镇\n")
    assert (line, path) == (2, "")
    assert "must be a mapping" in message


def test_two_documents_are_refused() -> None:
    line, _path, message = only_problem(BASE + "---\ntown: 其他镇\n")
    assert line == 21
    assert "single document" in message


def test_missing_top_level_fields() -> None:
    assert problems("villages: []\n") == [
        (1, "town", "is required"),
        (1, "town_duty", "is required (the town's duty line: {name, phone})"),
    ]


# --- One problem at a time: line, path and message -------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "line", "path", "fragment"),
    [
        # unknown and duplicate keys
        ("town: 隘口镇\n", "town: 隘口镇\ncounty: 秀山\n", 2, "county", "unknown field 'county'"),
        (
            "    gender: 男\n",
            "    gender: 男\n    gendre: 男\n",
            12,
            "persons[0] (张三).gendre",
            "did you mean 'gender'?",
        ),
        (
            "    gender: 男\n",
            "    gender: 男\n    gender: 女\n",
            12,
            "persons[0] (张三).gender",
            "given twice (first on line 11)",
        ),
        ("town: 隘口镇\n", "town: 隘口镇\ntown: 别的镇\n", 2, "town", "given twice"),
        (
            "protocol: zigbee2mqtt}",
            "protocol: zigbee2mqtt, colour: red}",
            18,
            "persons[0] (张三).devices[0] (bm-zs-sos).colour",
            "unknown field 'colour'",
        ),
        # required fields
        ("    care_level: special\n", "", 10, "persons[0] (张三).care_level", "is required"),
        (
            "    village: 坝芒村\n    categories",
            "    categories",
            10,
            "persons[0] (张三).village",
            "is required",
        ),
        ("- name: 张三", "- name: ''", 10, "persons[0].name", "must not be empty"),
        (
            '{name: 王五, phone: "+8613900000001", role: 队长}',
            "{name: 王五, role: 队长}",
            6,
            "villages[0] (坝芒村).emergency_team[0] (王五).phone",
            "is required",
        ),
        # enumerations
        ("gender: 男", "gender: M", 11, "persons[0] (张三).gender", "'M' is not one of: 男, 女"),
        (
            "care_level: special",
            "care_level: urgent",
            15,
            "persons[0] (张三).care_level",
            "'urgent' is not one of: general, special",
        ),
        (
            "kind: sos",
            "kind: smoke",
            18,
            "persons[0] (张三).devices[0] (bm-zs-sos).kind",
            "'smoke' is not one of",
        ),
        (
            "protocol: zigbee2mqtt}",
            "protocol: zwave}",
            18,
            "persons[0] (张三).devices[0] (bm-zs-sos).protocol",
            "'zwave' is not one of",
        ),
        ("role: town_admin", "role: root", 20, "users[0] (admin).role", "'root' is not one of"),
        # categories
        (
            "categories: [dispersed_destitute]",
            "categories: []",
            14,
            "persons[0] (张三).categories",
            "needs at least one category",
        ),
        (
            "categories: [dispersed_destitute]",
            "categories:\n      - left_behind\n      - orphan",
            16,
            "persons[0] (张三).categories[1]",
            "'orphan' is not one of",
        ),
        (
            "categories: [dispersed_destitute]",
            "categories: [left_behind, 留守老人]",
            14,
            "persons[0] (张三).categories[1]",
            "left_behind is listed twice",
        ),
        # ID numbers
        (
            '"500241194905050016"',
            '"500241194905050017"',
            12,
            "persons[0] (张三).id_number",
            "check digit is 7, should be 6",
        ),
        (
            "gender: 男",
            "gender: 女",
            12,
            "persons[0] (张三).id_number",
            "17th digit says 男 but 性别 is 女",
        ),
        (
            '"500241194905050016"',
            '"5002411949050500"',
            12,
            "persons[0] (张三).id_number",
            "must have 18 characters, has 16",
        ),
        # phones
        ('phone: "+8602376000000"', 'phone: "12345"', 2, "town_duty.phone", "'12345'"),
        (
            'phone: "+8613700000001", title',
            'phone: "1370000000", title',
            8,
            "helpers[0] (李四).phone",
            "not a valid phone number",
        ),
        (
            'helper: "+8613700000001"',
            'helper: "+8613700000009"',
            16,
            "persons[0] (张三).helper",
            "+8613700000009 is not the phone of any helper under helpers",
        ),
        # villages
        (
            "title: 村支书, village: 坝芒村",
            "title: 村支书, village: 坝茫村",
            8,
            "helpers[0] (李四).village",
            "village '坝茫村' is not defined under villages",
        ),
        (
            "    village: 坝芒村\n",
            "    village: 隘口村\n",
            13,
            "persons[0] (张三).village",
            "village '隘口村' is not defined under villages",
        ),
        (
            "helpers:\n",
            "  - name: 坝芒村\nhelpers:\n",
            7,
            "villages[1] (坝芒村).name",
            "village '坝芒村' is already defined on line 4",
        ),
        # helpers
        (
            "helpers:\n",
            "helpers:\n  - {name: 李五, phone: 137 0000 0001, village: 坝芒村}\n",
            9,
            "helpers[1] (李四).phone",
            "another helper already has phone +8613700000001 (line 8)",
        ),
        # devices
        (
            "protocol: zigbee2mqtt}",
            "protocol: zigbee2mqtt}\n      - {uid: bm-zs-sos, kind: door, protocol: native}",
            19,
            "persons[0] (张三).devices[1] (bm-zs-sos).uid",
            "device uid 'bm-zs-sos' is already used on line 18",
        ),
        (
            "uid: bm-zs-sos",
            "uid: bm/zs/sos",
            18,
            "persons[0] (张三).devices[0] (bm/zs/sos).uid",
            "must not contain whitespace, '/', '+' or '#'",
        ),
        (
            "protocol: zigbee2mqtt}",
            "protocol: zigbee2mqtt, topic: 'zigbee2mqtt/#'}",
            18,
            "persons[0] (张三).devices[0] (bm-zs-sos).topic",
            "wildcards",
        ),
        (
            "protocol: zigbee2mqtt}",
            "protocol: zigbee2mqtt}\n      - {uid: door1, kind: door, "
            "protocol: tasmota, topic: zigbee2mqtt/bm-zs-sos}",
            19,
            "persons[0] (张三).devices[1] (door1).topic",
            "MQTT topic 'zigbee2mqtt/bm-zs-sos' is already used by device 'bm-zs-sos' (line 18)",
        ),
        # a default topic (zigbee2mqtt/<uid>) taken by another device's explicit topic
        (
            "persons:\n",
            "persons:\n  - {name: 王二, gender: 男, id_number: 500241195001010016, "
            "village: 坝芒村, categories: [left_behind], care_level: general, "
            "helper: '13700000001', "
            "devices: [{uid: x1, kind: door, protocol: native, topic: zigbee2mqtt/bm-zs-sos}]}\n",
            19,
            "persons[1] (张三).devices[0] (bm-zs-sos).uid",
            "MQTT topic 'zigbee2mqtt/bm-zs-sos' is already used by device 'x1' (line 10)",
        ),
        # users
        (
            "password_env: ADMIN_PW}",
            "password_env: MISSING_PW}",
            20,
            "users[0] (admin).password_env",
            "environment variable MISSING_PW is not set",
        ),
        (
            "password_env: ADMIN_PW}",
            "password: hunter2}",
            20,
            "users[0] (admin).password",
            "passwords do not belong in the file",
        ),
        (
            "role: town_admin",
            "role: town_admin, village: 坝芒村",
            20,
            "users[0] (admin).village",
            "only village_officer users belong to a village, not town_admin",
        ),
        (
            "role: town_admin",
            "role: village_officer",
            20,
            "users[0] (admin).village",
            "is required",
        ),
        (
            "role: town_admin",
            "role: village_officer, village: 隘口村",
            20,
            "users[0] (admin).village",
            "village '隘口村' is not defined under villages",
        ),
        (
            "role: town_admin",
            "role: helper",
            20,
            "users[0] (admin).phone",
            "is required for a helper user",
        ),
        (
            "role: town_admin",
            "role: helper, phone: '13700000002'",
            20,
            "users[0] (admin).phone",
            "+8613700000002 is not the phone of any helper under helpers",
        ),
        (
            "users:\n",
            "users:\n  - {username: Admin, role: town_admin}\n",
            21,
            "users[1] (admin).username",
            "username 'admin' is already used on line 20",
        ),
        # sections of the wrong shape
        ("persons:\n", "persons: 张三\nold_persons:\n", 9, "persons", "must be a list"),
        (
            'town_duty: {name: 民政办值班, phone: "+8602376000000"}',
            "town_duty: 民政办值班",
            2,
            "town_duty",
            "must be a mapping {name, phone}",
        ),
        ("helpers:\n", "helpers:\n  - 李四\n", 8, "helpers[0]", "must be a mapping of fields"),
    ],
)
def test_single_problem(old: str, new: str, line: int, path: str, fragment: str) -> None:
    text = edit(old, new)
    found = problems(text)
    # Some edits shift later lines or add a second record; only the expected issue matters.
    matching = [issue for issue in found if issue[1] == path]
    assert matching, found
    assert matching[0][0] == line, found
    assert fragment in matching[0][2], found
