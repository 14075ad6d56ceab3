"""A routine warmed from the stored history at a restart is the routine the running gateway
learned live: same deadlines for every silence, whatever the batches the history is read in.
Both databases, a manual clock (2026-03-10 00:00 UTC = 08:00 in the town), no broker."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from alerts.types import AlertType
from gateway.clock import ManualClock
from gateway.events import EventKind, SensorEvent
from gateway.register.apply import apply_provisioning
from gateway.register.provisioning import parse_provisioning
from gateway.rules.routine import LearnedDeadline, RoutineModel
from gateway.rules.sensors import is_sign_of_life
from gateway.rules_runner.learning import sign_of_life
from gateway.storage import rules_queries as q
from gateway.storage.db import Database
from tests.helpers import register_yaml
from tests.service.test_learned_routines import _home
from tests.service.test_quiet_home import Home, P

M = timedelta(minutes=1)


def test_the_row_judge_is_the_ingest_judge() -> None:
    at = datetime(2026, 3, 10, tzinfo=UTC)
    for kind in EventKind:
        for state in (True, False, None):
            for changed in (True, False):
                event = SensorEvent(kind, "d", at, at, state)
                assert sign_of_life(kind.value, state, door_changed=changed) == is_sign_of_life(
                    event, door_changed=changed
                ), (kind, state, changed)


async def _live_day(home: Home, day: int) -> None:
    """A day from 08:00: reports at the same instant, passages out and back, periodic
    door reports that change nothing, PIRs clearing, a check-in; a different day each time."""
    await home.motion()
    await home.motion(False)  # same instant as the detection: ties in received_at
    await home.door(False)  # the contact's periodic report: still shut
    for _ in range(4 + day % 3):
        await home.advance((25 + 7 * day % 20) * M, step=15 * M)
        await home.motion()
        await home.advance(2 * M, step=2 * M)
        await home.motion(False)
    await home.motion()
    await home.door(True)  # out at the same instant as the last movement: open, shut behind
    await home.advance(M, step=M)
    await home.door(False)
    await home.advance((90 + 20 * (day % 4)) * M, step=15 * M)
    await home.door(True)  # back in
    await home.door(False)  # the same instant
    await home.advance(10 * M, step=10 * M)
    await home.motion()
    if day == 3:
        # A long afternoon silence: the inactivity alert raised in it cuts what is learned.
        await home.advance(6 * 60 * M, step=15 * M)
        await home.motion()
    if day == 5:
        await home.send(f"{P}/homewatch/{P}-p0-sos/event", {"type": "sos", "id": f"s{day}"})
        await home.advance(20 * M, step=10 * M)
        # Handled within the hour. (While an SOS stays open the live rules also cut every
        # silence at each judgement, which the history does not replay: a known gap.)
        [sos] = await home.alerts(AlertType.SOS)
        await home.gateway.alerts.resolve(sos.id, by="helper", note="ok")
    await home.advance(40 * M, step=20 * M)
    await home.check_in()
    await home.advance(3 * 60 * M, step=30 * M)
    await home.motion()
    await home.door(False)  # another periodic report


def _deadlines(model: RoutineModel, moments: list[datetime]) -> list[LearnedDeadline | None]:
    return [
        model.deadline(moment, factor=factor, checked=checked)
        for moment in moments
        for factor in (1.0, 0.5)
        for checked in (False, True)
    ]


async def test_a_routine_warmed_from_history_gives_the_live_routines_deadlines(
    db: Database, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HW_TEST_ADMIN_PASSWORD", "correct-horse-battery")
    await apply_provisioning(db, parse_provisioning(register_yaml(P, persons=1)), clock.now())
    home = await _home(db, clock)
    start = clock.now()
    for day in range(6):
        await _live_day(home, day)
        await home.advance(start + timedelta(days=day + 1) - clock.now(), step=2 * 60 * M)
    assert await home.alerts(AlertType.INACTIVITY), "the long silence raised an alert"
    assert await home.alerts(AlertType.SOS)
    await _live_day(home, 6)  # and a last day, the silence going on at the restart
    person = await home.person_id()
    live = home.gateway.runner.routines[person]
    assert live.ready(clock.now())

    assert live.last_at is not None
    moments = [live.last_at] + [clock.now() + k * 20 * M for k in range(-24, 72)]
    expected = _deadlines(live, moments)
    assert sum(d is not None for d in expected) > len(expected) // 5
    # Small batches: their boundaries fall between reports stored at the same instant.
    for batch in (1, 2, 5):
        monkeypatch.setattr(q, "HISTORY_BATCH", batch)
        restarted = await _home(db, clock)
        warmed = restarted.gateway.runner.routines[person]
        assert (warmed.last_at, warmed.last_out) == (live.last_at, live.last_out), batch
        assert _deadlines(warmed, moments) == expected, batch
        for days in range(8):
            when = (start + timedelta(days=days)).date()
            assert warmed.history_days(when) == live.history_days(when), batch
