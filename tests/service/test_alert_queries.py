"""The read queries the demo script follows an alert with (gateway.storage.queries), on both
real databases: which alerts are open, when the first message went, who was reached last."""

from __future__ import annotations

from datetime import timedelta

import pytest

from alerts.types import AlertGroup, AlertStatus, AlertTrigger, AlertType
from gateway.clock import ManualClock
from gateway.storage import queries
from gateway.storage.db import Database
from tests.service.test_escalation import HELPER, TEAM, RecordingNotifier, _register, _service

OPEN = [AlertStatus.OPEN.value]
UNFINISHED = [AlertStatus.OPEN.value, AlertStatus.ACKNOWLEDGED.value]


async def test_an_sos_is_followed_from_raised_to_taken_through_the_public_queries(
    db: Database, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    person_id = await _register(db, clock, monkeypatch)
    service = _service(db, clock, RecordingNotifier())
    async with db.session() as session:
        assert await queries.latest_recorded_time(session) is None, "nothing happened yet"
    raised_at = clock.now()
    alert, _ = await service.raise_alert(AlertTrigger(AlertType.SOS, person_id, raised_at))
    technical, _ = await service.raise_alert(
        AlertTrigger(AlertType.BATTERY_LOW, person_id, raised_at)
    )
    async with db.session() as session:
        assert await queries.alert_ids(session, statuses=OPEN) == [alert.id, technical.id]
        emergencies = await queries.alert_ids(
            session, statuses=OPEN, group=AlertGroup.EMERGENCY.value
        )
        assert emergencies == [alert.id]
        assert await queries.first_alert_sent_at(session, alert.id) is None, "not sent yet"
        assert await queries.latest_reached_recipient(session, alert.id) is None

    clock.advance(timedelta(seconds=20))
    await service.tick()
    first_sent = clock.now()
    clock.advance(timedelta(minutes=3))
    await service.tick()  # the helper's 3 minutes are over: the village team's turn
    async with db.session() as session:
        assert await queries.first_alert_sent_at(session, alert.id) == first_sent
        assert await queries.latest_reached_recipient(session, alert.id) == ("王五", TEAM[0])
        assert await queries.latest_recorded_time(session) == clock.now()

    taken = await service.acknowledge_by_sms(HELPER, "1")
    assert taken is not None and taken.alert_id == alert.id
    async with db.session() as session:
        assert await queries.alert_ids(session, statuses=OPEN) == [technical.id]
        assert await queries.alert_ids(session, statuses=UNFINISHED) == [alert.id, technical.id]


async def test_a_reply_1_takes_the_emergency_raised_at_the_same_instant_as_a_technical_alert(
    db: Database, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The helper was sent both; raised together, "1" means the SOS, whichever was stored
    first (the order the databases return ties in is no answer)."""
    person_id = await _register(db, clock, monkeypatch)
    service = _service(db, clock, RecordingNotifier())
    technical, _ = await service.raise_alert(
        AlertTrigger(AlertType.BATTERY_LOW, person_id, clock.now())
    )
    sos, _ = await service.raise_alert(AlertTrigger(AlertType.SOS, person_id, clock.now()))
    clock.advance(timedelta(seconds=20))
    await service.tick()
    taken = await service.acknowledge_by_sms(HELPER, "1")
    assert taken is not None and taken.alert_id == sos.id != technical.id
