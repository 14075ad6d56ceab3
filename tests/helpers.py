"""Builders shared by tests (and benchmarks): a small valid register, a routine backlog, a
pinned clock, template matching."""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from alerts.outbox import Priority, Recipient, new_notification
from alerts.templates import TEMPLATES, Channel
from gateway.clock import ScaledClock
from gateway.register.idnumber import check_digit
from gateway.storage.models import Notification


def _birth(n: int) -> str:
    return (date(1940, 1, 1) + timedelta(days=n)).strftime("%Y%m%d")


def id_number(birth: str, seq: int, male: bool) -> str:
    """A valid GB 11643 number born ``birth`` (YYYYMMDD) in 秀山 (500241)."""
    gender_digit = (seq * 2 + (1 if male else 0)) % 10
    first17 = f"500241{birth}{seq:02d}{gender_digit}"
    return first17 + check_digit(first17)


def register_yaml(prefix: str, *, persons: int = 2, extra_person_yaml: str = "") -> str:
    """A provisioning file whose devices live under ``prefix`` (isolated per test)."""
    people = []
    for n in range(persons):
        male = n % 2 == 0
        uid = f"{prefix}-p{n}"
        people.append(
            f"""  - name: 老人{n}
    gender: {"男" if male else "女"}
    id_number: "{id_number(_birth(n), 10 + n % 80, male)}"
    village: 坝芒村
    categories: [dispersed_destitute]
    care_level: special
    helper: "+8613700000001"
    measures: 每周上门一次
    phone: "+861360000{n:04d}"
    address: 坝芒村3组{n}号
    devices:
      - {{uid: {uid}-sos, kind: sos, protocol: native, topic: {prefix}/homewatch/{uid}-sos}}
      - {{uid: {uid}-pir, kind: motion, protocol: native, topic: {prefix}/homewatch/{uid}-pir}}
      - {{uid: {uid}-zsos, kind: sos, protocol: zigbee2mqtt, topic: {prefix}-z2m/{uid}-zsos,
          model: TS0215A_sos}}
      - {{uid: {uid}-door, kind: door, protocol: zigbee2mqtt, topic: {prefix}-z2m/{uid}-door}}
"""
        )
    return f"""town: 隘口镇
town_duty: {{name: 民政办值班, phone: "+8602376000000"}}
villages:
  - name: 坝芒村
    emergency_team:
      - {{name: 王五, phone: "+8613900000001", role: 队长}}
      - {{name: 赵六, phone: "+8613900000002", role: 队员}}
helpers:
  - {{name: 李四, phone: "+8613700000001", title: 村支书, village: 坝芒村}}
persons:
{"".join(people)}{extra_person_yaml}
users:
  - {{username: admin, role: town_admin, password_env: HW_TEST_ADMIN_PASSWORD}}
  - {{username: lisi, role: helper, phone: "+8613700000001", password_env: HW_TEST_ADMIN_PASSWORD}}
"""


# --- Time and messages in tests that run a gateway ------------------------------------------
#
# A gateway started with the system clock behaves differently depending on when the suite
# runs (the weekly visit digest goes out at once after its weekday and hour; night windows;
# month ends). Tests that run one own their clock: wall-speed time from a pinned instant.

TOWN = ZoneInfo("Asia/Shanghai")

#: A Wednesday mid-morning in the town: a weekday, daytime, mid-month, mid-year, and after
#: every date the tests write down.
GATEWAY_START = datetime(2026, 6, 10, 10, 0, tzinfo=TOWN)

#: Digest settings under which no digest is due while a test runs from GATEWAY_START
#: (Sunday 23:00, days later); tests that want one say so.
NO_DIGEST_DURING_TEST: dict[str, int] = {"weekday": 7, "hour": 23}


def pinned_clock(start: datetime = GATEWAY_START) -> ScaledClock:
    """Wall-speed time that starts at ``start`` whatever today is (escalation waits of a few
    real seconds still pass in a few real seconds)."""
    return ScaledClock(1.0, start=start)


def gateway_config(**extra: Any) -> dict[str, Any]:
    """The settings a test gateway runs with besides its own database and broker: the town's
    zone and a digest that is not due, spelled out rather than taken from the defaults."""
    return {"timezone": "Asia/Shanghai", "digest": NO_DIGEST_DURING_TEST, **extra}


def template_pattern(name: str, channel: Channel = "sms") -> re.Pattern[str]:
    """A regular expression matching any rendering of template ``name``."""
    parts: list[str] = []
    for literal, field, _, _ in string.Formatter().parse(TEMPLATES[name].text(channel)):
        parts.append(re.escape(literal))
        if field is not None:
            parts.append(".*?")
    return re.compile("".join(parts), re.DOTALL)


def is_template(body: str, name: str, channel: Channel = "sms") -> bool:
    """Whether ``body`` is a rendering of template ``name`` (how tests pick the message they
    mean among everything a gateway sent, never by position)."""
    return template_pattern(name, channel).fullmatch(body) is not None


def sms_of(
    messages: Iterable[Mapping[str, str]], template: str, *, to: str | None = None
) -> list[Mapping[str, str]]:
    """The fake Twilio's messages rendered from ``template`` (to ``to``, if given), in order."""
    return [
        m for m in messages if is_template(m["Body"], template) and (to is None or m["To"] == to)
    ]


def routine_backlog(count: int, now: datetime) -> list[Notification]:
    """``count`` visit digests due at ``now``, to phones no register of ours uses."""
    return [
        new_notification(
            alert_id=None,
            purpose="digest",
            template="visit_digest",
            recipient=Recipient("helper", f"帮扶{n}", f"+86138{n:08d}"),
            channel="sms",
            params={"helper": "帮扶", "week": "3月9日至15日", "count": "1", "people": "老人"},
            now=now,
            priority=Priority.ROUTINE,
        )
        for n in range(count)
    ]
