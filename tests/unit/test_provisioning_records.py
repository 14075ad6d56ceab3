"""The provisioning file (SPEC §4): checks across records, per-person rules, and every
problem of a file reported at once, in line order."""

from __future__ import annotations

import pytest

from gateway.register.provisioning import ProvisioningError, ProvisioningIssue, parse_provisioning
from tests.unit.provisioning_file_support import (
    BASE,
    ENV,
    SECOND_PERSON,
    edit,
    only_problem,
    problems,
    with_second_person,
)

# --- Cross-record checks and per-person rules ------------------------------------------------


def test_duplicate_id_number_names_the_first_line() -> None:
    second = edit('"500241193811200023"', '"500241194905050016"', SECOND_PERSON)
    text = with_second_person(person=second)
    assert only_problem(edit("gender: 女", "gender: 男", text)) == (
        21,
        "persons[1] (李秀英).id_number",
        "the same ID number is already given on line 12",
    )


def test_duplicate_id_number_is_found_whatever_the_case_of_x() -> None:
    x_person = edit('"500241193811200023"', '"50024119600110106X"', SECOND_PERSON)
    text = edit('"500241194905050016"', '"50024119600110106x"', with_second_person(person=x_person))
    text = edit("gender: 男", "gender: 女", text)
    line, path, message = only_problem(text)
    assert (line, path) == (21, "persons[1] (李秀英).id_number")
    assert "line 12" in message


def test_second_person_parses() -> None:
    doc = parse_provisioning(with_second_person(), env=ENV)
    assert [person.name for person in doc.persons] == ["张三", "李秀英"]


def test_guardian_problems() -> None:
    both = edit("    devices:", "    guardian: {name: 张大}\n    guardian_name: 张大\n    devices:")
    assert only_problem(both) == (
        17,
        "persons[0] (张三).guardian",
        "write either guardian: {name, phone} or guardian_name/guardian_phone, not both",
    )
    no_name = edit("    devices:", "    guardian: {phone: '13600000002'}\n    devices:")
    assert only_problem(no_name) == (17, "persons[0] (张三).guardian.name", "is required")
    phone_only = edit("    devices:", "    guardian_phone: '13600000002'\n    devices:")
    assert only_problem(phone_only) == (
        17,
        "persons[0] (张三).guardian_phone",
        "needs guardian_name as well",
    )


RULES = """\
    rules:
      inactivity:
        day:
          quiet: soon
        ignore_devices: [bm-zs-sos]
      battery_low: 150
      sos_debounce: 30s
      sos_debounce: 40s
      colour: red
    devices:"""


def test_rules_override_errors_carry_lines_and_paths() -> None:
    text = edit("    devices:", RULES)
    assert problems(text) == [
        (20, "persons[0] (张三).rules.inactivity.day.quiet",
         "not a duration: 'soon' (write e.g. 90s, 5m, 4h, 2d or PT4H)"),
        (22, "persons[0] (张三).rules.battery_low", "Input should be less than or equal to 100"),
        (24, "persons[0] (张三).rules.sos_debounce", "given twice (first on line 23)"),
        (25, "persons[0] (张三).rules.colour", "unknown setting"),
    ]  # fmt: skip


def test_rules_ignore_devices_must_be_the_persons_own() -> None:
    rules = "    rules:\n      inactivity:\n        ignore_devices:\n"
    rules += "          - bm-zs-sos\n          - bm-other-pir\n"
    text = edit("    devices:", rules + "    devices:")
    assert only_problem(text) == (
        21,
        "persons[0] (张三).rules.inactivity.ignore_devices[1]",
        "'bm-other-pir' is not one of this person's devices",
    )


def test_rules_must_be_a_mapping() -> None:
    text = edit("    devices:", "    rules: [quiet]\n    devices:")
    assert only_problem(text) == (
        17,
        "persons[0] (张三).rules",
        "must be a mapping of rule settings, not a list",
    )


def test_rules_shared_through_a_yaml_anchor() -> None:
    text = edit(
        "    devices:", "    rules: &bedbound {inactivity: {day: {quiet: 6h}}}\n    devices:"
    )
    text = with_second_person(text)
    text = edit(
        "    care_level: general\n", "    care_level: general\n    rules: *bedbound\n", text
    )
    doc = parse_provisioning(text, env=ENV)
    assert doc.persons[0].rules_override == doc.persons[1].rules_override
    assert doc.persons[1].rules_override == {"inactivity": {"day": {"quiet": "6h"}}}


def test_merge_keys_and_complex_keys_are_refused() -> None:
    text = edit("    gender: 男\n", "    <<: {gender: 男}\n    ? [a, b]\n    : c\n")
    assert problems(text) == [
        (10, "persons[0] (张三).gender", "is required"),
        (11, "persons[0] (张三).<<", "YAML merge keys (<<) are not supported here"),
        (12, "persons[0] (张三)", "keys must be plain names"),
    ]


# --- Many problems at once -----------------------------------------------------------------


MANY = """\
town: 隘口镇
town_duty: {name: 民政办值班, phone: "+8602376000000"}
villages:
  - name: 坝芒村
helpers:
  - {name: 李四, phone: "+8613700000001", village: 坝芒村}
persons:
  - name: 张三
    gender: 男
    id_number: "500241194905050017"
    village: 坝芒村
    categories: [dispersed_destitute, poor]
    care_level: special
    helper: "+8613700000002"
    phone: "555"
    devices:
      - {uid: d1, kind: sos, protocol: native}
  - name: 李秀英
    gender: 女
    id_number: "500241193811200023"
    village: 坝芒村
    categories: [left_behind]
    care_level: general
    helper: "+8613700000001"
    devices:
      - {uid: d1, kind: door, protocol: tasmota}
  - name: 王二
    gender: 女
    id_number: "500241193811200023"
users:
  - {username: lisi, role: helper, phone: "13700000009", password_env: LISI_PW}
"""


def test_every_problem_is_reported_in_line_order() -> None:
    with pytest.raises(ProvisioningError) as caught:
        parse_provisioning(MANY, source="town.yaml", env={})
    error = caught.value
    assert [(issue.line, issue.path) for issue in error.errors] == [
        (10, "persons[0] (张三).id_number"),
        (12, "persons[0] (张三).categories[1]"),
        (14, "persons[0] (张三).helper"),
        (15, "persons[0] (张三).phone"),
        (26, "persons[1] (李秀英).devices[0] (d1).uid"),
        (27, "persons[2] (王二).village"),
        (27, "persons[2] (王二).categories"),
        (27, "persons[2] (王二).care_level"),
        (27, "persons[2] (王二).helper"),
        (29, "persons[2] (王二).id_number"),
        (31, "users[0] (lisi).phone"),
        (31, "users[0] (lisi).password_env"),
    ]
    assert error.source == "town.yaml"
    lines = str(error).splitlines()
    assert len(lines) == len(error.errors)
    assert lines[0] == "town.yaml:10: persons[0] (张三).id_number: check digit is 7, should be 6"
    assert lines[-1] == (
        "town.yaml:31: users[0] (lisi).password_env: environment variable LISI_PW is not set"
    )


def test_issue_without_path_formats_without_it() -> None:
    issue = ProvisioningIssue(line=3, path="", message="YAML syntax error: boom")
    assert issue.format("f.yaml") == "f.yaml:3: YAML syntax error: boom"
    assert str(ProvisioningError([issue], "f.yaml")) == "f.yaml:3: YAML syntax error: boom"


def test_env_defaults_to_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADMIN_PW", "from-os-environ")
    assert parse_provisioning(BASE).users[0].password == "from-os-environ"
    monkeypatch.delenv("ADMIN_PW")
    with pytest.raises(ProvisioningError, match="ADMIN_PW is not set"):
        parse_provisioning(BASE)


def test_empty_environment_variable_is_refused() -> None:
    assert only_problem(BASE, env={"ADMIN_PW": ""}) == (
        20,
        "users[0] (admin).password_env",
        "environment variable ADMIN_PW is empty",
    )
