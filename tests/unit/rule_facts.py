"""Builders for the rules' typed facts: one home, its devices and alerts, no database."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from alerts.types import AlertStatus, AlertType
from gateway.clock import ManualClock
from gateway.config import RulesConfig
from gateway.register.provisioning import merge_rules
from gateway.rules.facts import DeviceFacts, HomeFacts, OpenAlert

TZ = ZoneInfo("Asia/Shanghai")
DEFAULTS = RulesConfig()
PERSON = 7


def local(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    """A moment in March 2026 given in town time (UTC+8, no DST), as the UTC instant."""
    return datetime(2026, 3, day, hour, minute, second, tzinfo=TZ).astimezone(UTC)


def clock_at(moment: datetime) -> ManualClock:
    return ManualClock(moment)


def rules(**override: Any) -> RulesConfig:
    return merge_rules(DEFAULTS, override) if override else DEFAULTS


def alert(
    alert_type: AlertType,
    raised_at: datetime,
    status: AlertStatus = AlertStatus.OPEN,
    alert_id: int = 100,
) -> OpenAlert:
    return OpenAlert(alert_id, alert_type, status, raised_at)


def pir(last_seen: datetime | None, uid: str = "pir", **state: Any) -> DeviceFacts:
    return DeviceFacts(uid, "motion", last_seen_at=last_seen, **state)


def door(uid: str = "door", **state: Any) -> DeviceFacts:
    return DeviceFacts(uid, "door", **state)


def home(
    *devices: DeviceFacts,
    alerts: tuple[OpenAlert, ...] = (),
    closed: dict[AlertType, datetime] | None = None,
    created_at: datetime | None = None,
    rule_set: RulesConfig = DEFAULTS,
    **facts: Any,
) -> HomeFacts:
    return HomeFacts(
        person_id=PERSON,
        created_at=created_at or local(1, 8),
        rules=rule_set,
        devices=devices,
        open_alerts={a.type: a for a in alerts},
        last_closed=closed or {},
        **facts,
    )
