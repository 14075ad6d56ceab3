"""A small valid provisioning file and helpers to break it one line at a time, shared by
the provisioning-file tests and the China-channels ones."""

from __future__ import annotations

import pytest

from gateway.register.provisioning import ProvisioningError, parse_provisioning

# A small valid file; the line numbers in the tests below refer to it:
#  1 town            7 helpers          13 village        19 users
#  2 town_duty       8   李四            14 categories     20   admin
#  3 villages        9 persons          15 care_level
#  4   坝芒村         10   张三            16 helper
#  5   emergency_team 11 gender          17 devices
#  6     王五         12 id_number        18   bm-zs-sos
BASE = """\
town: 隘口镇
town_duty: {name: 民政办值班, phone: "+8602376000000"}
villages:
  - name: 坝芒村
    emergency_team:
      - {name: 王五, phone: "+8613900000001", role: 队长}
helpers:
  - {name: 李四, phone: "+8613700000001", title: 村支书, village: 坝芒村}
persons:
  - name: 张三
    gender: 男
    id_number: "500241194905050016"
    village: 坝芒村
    categories: [dispersed_destitute]
    care_level: special
    helper: "+8613700000001"
    devices:
      - {uid: bm-zs-sos, kind: sos, protocol: zigbee2mqtt}
users:
  - {username: admin, role: town_admin, password_env: ADMIN_PW}
"""
ENV = {"ADMIN_PW": "secret-pw", "OTHER_PW": "other-pw"}

# A second person, appended to BASE's persons (it becomes lines 19-27; users move to 28-29).
SECOND_PERSON = """\
  - name: 李秀英
    gender: 女
    id_number: "500241193811200023"
    village: 坝芒村
    categories: [left_behind]
    care_level: general
    helper: "+8613700000001"
    devices:
      - {uid: bm-lxy-pir, kind: motion, protocol: native}
"""
PERSON = "  - name: 张三"


def edit(old: str, new: str, text: str = BASE) -> str:
    assert text.count(old) == 1, f"{old!r} must occur exactly once"
    return text.replace(old, new)


def with_second_person(text: str = BASE, person: str = SECOND_PERSON) -> str:
    return edit("users:\n", person + "users:\n", text)


def problems(text: str, env: dict[str, str] | None = None) -> list[tuple[int, str, str]]:
    with pytest.raises(ProvisioningError) as caught:
        parse_provisioning(text, source="f.yaml", env=ENV if env is None else env)
    return [(issue.line, issue.path, issue.message) for issue in caught.value.errors]


def only_problem(text: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    found = problems(text, env)
    assert len(found) == 1, found
    return found[0]
