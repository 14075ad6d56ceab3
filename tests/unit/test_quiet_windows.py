"""Deadlines of the quiet-home rules in local time (Asia/Shanghai: no DST, UTC+8)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from gateway.config import DoorOpenNightRule, InactivityRule, load_settings
from gateway.rules.quiet import door_open_deadline, in_window, inactivity_deadline

TZ = ZoneInfo("Asia/Shanghai")


def local(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=TZ)


@pytest.mark.parametrize(
    ("last", "due"),
    [
        (local(10, 10), local(10, 14)),  # by day: four quiet hours
        (local(10, 18), local(11, 6)),  # 18:00 + 4h is past 21:00: night quiet, 06:00
        (local(10, 20), local(11, 8)),  # early sleeper: night quiet, not 06:00
        (local(11, 2), local(11, 10)),  # bathroom trip: four hours into the day
        (local(10, 23, 30), local(11, 10)),  # day window catches first
        (local(11, 5, 50), local(11, 10)),  # day counting starts at 06:00
    ],
)
def test_inactivity_deadline(last: datetime, due: datetime) -> None:
    assert inactivity_deadline(last, InactivityRule(), TZ) == due


def test_emergency_factor_tightens_both_windows() -> None:
    assert inactivity_deadline(local(10, 10), InactivityRule(), TZ, factor=0.5) == local(10, 12)
    assert inactivity_deadline(local(10, 20), InactivityRule(), TZ, factor=0.5) == local(11, 2)


def test_a_day_window_shorter_than_its_quiet_falls_back_to_the_night_quiet() -> None:
    rule = load_settings(
        rules={"inactivity": {"day": {"start": "09:00", "end": "10:00", "quiet": "4h"}}}
    ).rules.inactivity
    assert inactivity_deadline(local(10, 9), rule, TZ) == local(10, 21)


@pytest.mark.parametrize(
    ("opened", "due"),
    [
        (local(10, 10), local(10, 22, 15)),  # open all day: alert 15 min into the night
        (local(10, 23), local(10, 23, 15)),
        (local(11, 2), local(11, 2, 15)),  # after midnight, same night
        (local(11, 4, 50), local(11, 22, 15)),  # the night ends first: next night
    ],
)
def test_door_open_deadline_crosses_midnight(opened: datetime, due: datetime) -> None:
    assert door_open_deadline(opened, DoorOpenNightRule(), TZ) == due


def test_in_window_across_midnight() -> None:
    rule = DoorOpenNightRule()
    assert in_window(local(10, 23), rule.start, rule.end, TZ)
    assert in_window(local(11, 4, 59), rule.start, rule.end, TZ)
    assert not in_window(local(11, 5), rule.start, rule.end, TZ)
    assert not in_window(local(11, 12), rule.start, rule.end, TZ)
