"""Learned routines in the live gateway: fed by the ingest's activity judge, warmed from the
stored events after a restart, and explained in the alert. Both databases, a manual clock
(2026-03-10 00:00 UTC = 08:00 in the town), no broker."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from alerts.types import AlertType
from gateway.clock import ManualClock
from gateway.register.apply import apply_provisioning
from gateway.register.provisioning import parse_provisioning
from gateway.rules_runner.learning import learn_history
from gateway.storage.db import Database
from tests.helpers import register_yaml
from tests.service.test_escalation import RecordingNotifier
from tests.service.test_quiet_home import Home, P, _gateway

LEARNED = {"learned": {"enabled": True, "min_days": 2, "margin": "30m"}}


async def _home(db: Database, clock: ManualClock) -> Home:
    gateway = _gateway(db, clock, RecordingNotifier(), inactivity=LEARNED)
    await gateway.registry.load(gateway.db)
    await gateway.runner.refresh()
    await gateway.runner.warmed()
    return Home(gateway, clock, gateway.alerts.notifier)  # type: ignore[arg-type]


async def test_a_home_that_is_never_quiet_for_long_is_checked_on_within_the_hour_or_so(
    db: Database, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HW_TEST_ADMIN_PASSWORD", "correct-horse-battery")
    await apply_provisioning(db, parse_provisioning(register_yaml(P, persons=1)), clock.now())
    home = await _home(db, clock)
    # Three days about the house every half hour from 08:00 to 20:00, asleep at night
    # (stored through the real ingest path; the rules are not ticked meanwhile).
    for _day in range(3):
        for _ in range(25):
            await home.motion()
            clock.advance(timedelta(minutes=30))
        clock.advance(timedelta(hours=11, minutes=30))
    person = await home.person_id()
    live = home.gateway.runner.routines[person]
    assert live.ready(clock.now())

    # A restart: the new watcher learns the same from the stored events.
    restarted = await _home(db, clock)
    warmed = restarted.gateway.runner.routines[person]
    moment = clock.now() + timedelta(hours=2)
    assert warmed.history_days(moment.date()) == live.history_days(moment.date()) >= 2

    clock.advance(timedelta(hours=2))  # day 4, 10:00 local
    await restarted.motion()
    await restarted.advance(timedelta(minutes=55))
    assert await restarted.alerts(AlertType.INACTIVITY) == []
    await restarted.advance(timedelta(minutes=15))  # 11:10: half-hour gaps x 1.25 + 30 min
    [alert] = await restarted.alerts(AlertType.INACTIVITY)
    assert alert.detail["since"] == "10:00"
    assert alert.detail["explanation"] == "通常 10:30 前有活动，现在 11:10 仍无活动"


async def test_a_silence_after_pottering_is_not_judged_by_the_tv_hours_of_another_sensor(
    db: Database, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Kitchen and living-room PIRs: every morning pottering in the kitchen every quarter
    hour, then two hours in front of the TV from 10:30. The live runner and the history
    rebuild must both tell the gateway which sensor saw each movement."""
    monkeypatch.setenv("HW_TEST_ADMIN_PASSWORD", "correct-horse-battery")
    kitchen = f"      - {{uid: {P}-p0-kitchen, kind: motion, protocol: native, "
    kitchen += f"topic: {P}/homewatch/{P}-p0-kitchen}}\n"
    text = register_yaml(P, persons=1).replace("    devices:\n", "    devices:\n" + kitchen, 1)
    await apply_provisioning(db, parse_provisioning(text), clock.now())
    home = await _home(db, clock)

    async def in_kitchen(where: Home) -> None:
        await where.send(
            f"{P}/homewatch/{P}-p0-kitchen/event",
            {"type": "motion", "state": True, "id": f"k{clock.now().timestamp()}"},
        )

    for _day in range(3):  # from 08:00 local
        for _ in range(10):  # the kitchen until 10:30
            await in_kitchen(home)
            clock.advance(timedelta(minutes=15))
        await home.motion()  # the living room's PIR, then the TV
        clock.advance(timedelta(hours=2))
        for _ in range(30):  # the kitchen again until 20:00
            await in_kitchen(home)
            clock.advance(timedelta(minutes=15))
        clock.advance(timedelta(hours=12))

    restarted = await _home(db, clock)  # learns from the stored events
    clock.advance(timedelta(hours=1))  # day 4, 09:00 local
    for quarter in range(5):  # pottering in the kitchen until 10:00
        clock.advance(timedelta(minutes=15 if quarter else 0))
        await in_kitchen(restarted)
    # The kitchen's quarter hours (x 1.25 + 30 min, raised to min_quiet): due at 11:00, not
    # at 13:00 as the TV's two hours that also begin in the ten o'clock hour would make it.
    await restarted.advance(timedelta(minutes=55))
    assert await restarted.alerts(AlertType.INACTIVITY) == []
    await restarted.advance(timedelta(minutes=10))
    [alert] = await restarted.alerts(AlertType.INACTIVITY)
    assert alert.detail["since"] == "10:00"
    assert alert.detail["explanation"] == "通常 10:15 前有活动，现在 11:00 仍无活动"


async def test_the_gateway_does_not_wait_for_the_history_and_the_model_misses_nothing(
    db: Database, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A county's month of history takes minutes to read: meanwhile an SOS is raised, the
    home is judged by the fixed windows, and a movement stored after the history was read
    still reaches the model."""
    monkeypatch.setenv("HW_TEST_ADMIN_PASSWORD", "correct-horse-battery")
    await apply_provisioning(db, parse_provisioning(register_yaml(P, persons=1)), clock.now())
    home = await _home(db, clock)
    for _ in range(3 * 24):  # three days of a movement every hour (the PIR clears)
        await home.motion()
        clock.advance(timedelta(minutes=2))
        await home.motion(False)
        clock.advance(timedelta(minutes=58))
    person = await home.person_id()

    read = asyncio.Event()
    gate = asyncio.Event()

    async def slow_history(*args: Any, **kwargs: Any) -> Any:
        models = await learn_history(*args, **kwargs)
        read.set()
        await gate.wait()  # the history is read; the install has not happened yet
        return models

    monkeypatch.setattr("gateway.rules_runner.runner.learn_history", slow_history)
    restarted = Home(
        _gateway(db, clock, RecordingNotifier(), inactivity=LEARNED),
        clock,
        RecordingNotifier(),
    )
    await restarted.gateway.registry.load(db)
    await restarted.gateway.runner.refresh()  # returns at once
    await read.wait()
    assert person not in restarted.gateway.runner.routines  # fixed windows meanwhile
    await restarted.send(f"{P}/homewatch/{P}-p0-sos/event", {"type": "sos", "id": "warm-sos"})
    assert len(await restarted.alerts(AlertType.SOS)) == 1
    moved_at = clock.now()
    await restarted.motion()
    gate.set()
    await restarted.gateway.runner.warmed()
    model = restarted.gateway.runner.routines[person]
    assert model.last_at == moved_at
