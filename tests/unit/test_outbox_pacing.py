"""The outbox's pure parts: priorities, the routine token bucket, the digest spread."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from alerts.outbox import Priority, RateLimiter, Wake, priority_for, spread_offset
from gateway.clock import ManualClock
from gateway.config import ConfigError, load_settings


def test_alert_steps_take_their_group_and_everything_else_is_routine() -> None:
    assert priority_for("alert", "emergency") is Priority.EMERGENCY
    assert priority_for("alert", "wellbeing") is Priority.WELLBEING
    assert priority_for("alert", "technical") is Priority.TECHNICAL
    assert priority_for("alert", None) is Priority.EMERGENCY, "unknown group: err early"
    assert priority_for("system") is Priority.TECHNICAL
    for purpose in ("digest", "taken", "resolved", "confirm"):
        assert priority_for(purpose) is Priority.ROUTINE
    assert sorted(Priority) == [
        Priority.EMERGENCY,
        Priority.WELLBEING,
        Priority.TECHNICAL,
        Priority.ROUTINE,
    ]


def test_the_bucket_allows_a_burst_then_the_sustained_rate_per_provider() -> None:
    clock = ManualClock(datetime(2026, 3, 10, tzinfo=UTC))
    bucket = RateLimiter(clock, per_minute=6, burst=3)
    assert [bucket.take("twilio") for _ in range(4)] == [True, True, True, False]
    assert bucket.take("aliyun"), "each provider has its own bucket"
    clock.advance(9)
    assert not bucket.take("twilio"), "6 a minute: one every 10 seconds"
    clock.advance(1)
    assert bucket.take("twilio")
    assert not bucket.take("twilio")
    clock.advance(3600)
    assert [bucket.take("twilio") for _ in range(4)] == [True, True, True, False], "burst cap"
    bucket.give_back("twilio")
    assert bucket.take("twilio")


def test_spread_offsets_are_deterministic_and_fill_the_hour_evenly() -> None:
    hour = timedelta(hours=1)
    keys = [f"digest:2026-W11:+86137{n:08d}" for n in range(3000)]
    offsets = [spread_offset(key, hour) for key in keys]
    assert offsets == [spread_offset(key, hour) for key in keys]
    assert all(timedelta(0) <= o < hour for o in offsets)
    per_ten_minutes = Counter(int(o.total_seconds()) // 600 for o in offsets)
    assert sorted(per_ten_minutes) == [0, 1, 2, 3, 4, 5]
    assert all(400 <= n <= 600 for n in per_ten_minutes.values()), per_ten_minutes
    assert spread_offset("x", timedelta(0)) == timedelta(0)


async def test_one_wake_reaches_every_listener() -> None:
    wake = Wake()
    first, second = wake.listener(), wake.listener()
    wake.set()
    first.clear()
    await asyncio.wait_for(second.wait(), 1)
    assert not first.is_set()


def test_outbox_settings_are_checked_and_named() -> None:
    settings = load_settings(outbox={"routine_per_minute": 30})
    assert settings.outbox.routine_per_minute == 30
    assert settings.outbox.routine_burst == 10
    with pytest.raises(ConfigError, match=r"outbox\.routine_per_minute"):
        load_settings(outbox={"routine_per_minute": 0})
    with pytest.raises(ConfigError, match=r"outbox\.per_minute: unknown setting"):
        load_settings(outbox={"per_minute": 5})
    assert load_settings(digest={"spread": "30m"}).digest.spread == timedelta(minutes=30)
