"""Escalation with an injected clock and a recording notifier, on both real databases."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from alerts.notifiers.base import Delivery, DeliveryError
from alerts.service import AlertService
from alerts.types import AlertTrigger, AlertType
from gateway.clock import ManualClock
from gateway.config import EscalationConfig, RulesConfig
from gateway.register.apply import apply_provisioning
from gateway.register.provisioning import parse_provisioning
from gateway.storage.db import Database
from gateway.storage.models import Alert, Notification, Person
from tests.helpers import register_yaml

HELPER = "+8613700000001"
TEAM = ["+8613900000001", "+8613900000002"]
DUTY = "+862376000000"


@dataclass
class RecordingNotifier:
    name: str = "recording"
    sent: list[tuple[str, str, str]] = field(default_factory=list)  # (channel, to, text)
    fail: dict[tuple[str, str], list[DeliveryError]] = field(default_factory=dict)
    #: Starts every sid: a restarted process's notifier must not repeat the last one's sids.
    sid_tag: str = "X"

    async def send_sms(self, to: str, body: str, *, status_callback: str | None = None) -> Delivery:
        return self._send("sms", to, body)

    async def place_call(
        self, to: str, *, speech: str, twiml_url: str, status_callback: str | None = None
    ) -> Delivery:
        return self._send("voice", to, speech)

    def _send(self, channel: str, to: str, text: str) -> Delivery:
        failures = self.fail.get((channel, to))
        if failures:
            raise failures.pop(0)
        self.sent.append((channel, to, text))
        return Delivery(sid=f"{self.sid_tag}{len(self.sent):033d}", status="queued")

    def to(self, phone: str, channel: str | None = None) -> list[str]:
        return [t for c, p, t in self.sent if p == phone and (channel is None or c == channel)]


async def _register(db: Database, clock: ManualClock, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setenv("HW_TEST_ADMIN_PASSWORD", "correct-horse-battery")
    doc = parse_provisioning(register_yaml("esc", persons=1))
    await apply_provisioning(db, doc, clock.now())
    async with db.session() as session:
        return (await session.execute(select(Person.id))).scalars().one()


def _service(
    db: Database,
    clock: ManualClock,
    notifier: Any,
    worker: str = "w1",
    escalation: EscalationConfig | None = None,
) -> AlertService:
    return AlertService(
        db,
        clock,
        notifier,
        escalation=escalation or EscalationConfig(),
        rules=RulesConfig(),
        public_url="http://gw.example",
        timezone=ZoneInfo("Asia/Shanghai"),
        worker_id=worker,
    )


async def test_sos_escalates_helper_then_team_then_duty_until_acknowledged(
    db: Database, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    person_id = await _register(db, clock, monkeypatch)
    notifier = RecordingNotifier()
    service = _service(db, clock, notifier)
    alert, new = await service.raise_alert(AlertTrigger(AlertType.SOS, person_id, clock.now()))
    assert new
    await service.tick()
    assert [c for c, p, _ in notifier.sent] == ["sms", "voice"]
    assert all(p == HELPER for _, p, _ in notifier.sent)
    sms = notifier.to(HELPER, "sms")[0]
    assert "老人0" in sms and "坝芒村" in sms and "回复1" in sms and alert.code in sms
    assert "08:00" in sms  # local time, Asia/Shanghai

    clock.advance(timedelta(minutes=2, seconds=59))
    await service.tick()
    assert not notifier.to(TEAM[0]), "the team must not hear before the helper's 3 minutes"
    clock.advance(timedelta(seconds=1))
    await service.tick()
    for phone in TEAM:
        assert len(notifier.to(phone, "sms")) == 1 and len(notifier.to(phone, "voice")) == 1

    clock.advance(timedelta(minutes=5))
    await service.tick()
    # The duty line is a landline: its [sms, voice] step is one call (no SMS a provider
    # would refuse), while the team's mobiles above got both.
    assert len(notifier.to(DUTY, "voice")) == 1 and not notifier.to(DUTY, "sms")
    clock.advance(timedelta(minutes=10))
    await service.tick()
    assert len(notifier.to(DUTY, "voice")) == 2, "the last step repeats every 10 minutes"
    assert not notifier.to(DUTY, "sms")

    result = await service.acknowledge_by_sms(TEAM[1], "1")
    assert result is not None and result.acknowledged_by == "赵六"
    await service.tick()
    taken = [t for t in notifier.to(HELPER, "sms") if "已接单" in t]
    assert len(taken) == 1 and "赵六" in taken[0]
    assert any("已确认" in t for t in notifier.to(TEAM[1], "sms"))
    assert not [t for t in notifier.to(TEAM[1], "sms") if "已接单" in t]
    assert not notifier.to(DUTY, "sms"), "the landline was called; no 'taken' SMS to it"
    sent_before = len(notifier.sent)
    clock.advance(timedelta(hours=1))
    await service.tick()
    assert len(notifier.sent) == sent_before, "nothing more after acknowledgement"


async def test_sms_from_a_number_never_notified_acknowledges_nothing(
    db: Database, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    person_id = await _register(db, clock, monkeypatch)
    notifier = RecordingNotifier()
    service = _service(db, clock, notifier)
    alert, _ = await service.raise_alert(AlertTrigger(AlertType.SOS, person_id, clock.now()))
    await service.tick()
    assert await service.acknowledge_by_sms(TEAM[0], "1") is None  # team not yet notified
    assert await service.acknowledge_by_sms("+8618800000000", alert.code) is None
    async with db.session() as session:
        stored = await session.get(Alert, alert.id)
        assert stored is not None and stored.status == "open"


async def test_repeated_presses_join_the_open_alert(
    db: Database, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    person_id = await _register(db, clock, monkeypatch)
    service = _service(db, clock, RecordingNotifier())
    first, new1 = await service.raise_alert(AlertTrigger(AlertType.SOS, person_id, clock.now()))
    clock.advance(5)
    second, new2 = await service.raise_alert(AlertTrigger(AlertType.SOS, person_id, clock.now()))
    assert new1 and not new2 and first.id == second.id
    fall, new3 = await service.raise_alert(AlertTrigger(AlertType.FALL, person_id, clock.now()))
    assert new3 and fall.id != first.id, "one open alert per person *and type*"
    await service.resolve(first.id, "admin", "误按")
    clock.advance(60)
    third, new4 = await service.raise_alert(AlertTrigger(AlertType.SOS, person_id, clock.now()))
    assert new4 and third.id != first.id, "a press after resolution and debounce is new"


async def test_restart_resumes_on_time_without_resending(
    db: Database, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    person_id = await _register(db, clock, monkeypatch)
    notifier = RecordingNotifier()
    first = _service(db, clock, notifier)
    await first.raise_alert(AlertTrigger(AlertType.FALL, person_id, clock.now()))
    await first.tick()
    assert len(notifier.sent) == 2
    # The process dies; a new one starts on the same database two minutes later.
    clock.advance(timedelta(minutes=2))
    second = _service(db, clock, notifier, worker="w2")
    await second.tick()
    assert len(notifier.sent) == 2, "the helper's step must not be repeated after a restart"
    clock.advance(timedelta(minutes=1))
    await second.tick()
    assert len(notifier.to(TEAM[0])) == 2


async def test_two_workers_claim_each_step_once(
    db: Database, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    person_id = await _register(db, clock, monkeypatch)
    notifier = RecordingNotifier()
    a = _service(db, clock, notifier, worker="a")
    b = _service(db, clock, notifier, worker="b")
    await a.raise_alert(AlertTrigger(AlertType.SOS, person_id, clock.now()))
    await asyncio.gather(a.tick(), b.tick(), a.tick(), b.tick())
    assert sorted(c for c, _, _ in notifier.sent) == ["sms", "voice"]


async def test_outage_is_retried_then_falls_back_to_the_other_channel(
    db: Database, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    person_id = await _register(db, clock, monkeypatch)
    notifier = RecordingNotifier()
    outage = DeliveryError("503 from provider", retryable=True, status="503")
    notifier.fail[("sms", HELPER)] = [outage, outage, outage]
    service = _service(db, clock, notifier)
    alert, _ = await service.raise_alert(AlertTrigger(AlertType.SOS, person_id, clock.now()))
    await service.tick()
    assert notifier.to(HELPER, "voice") and not notifier.to(HELPER, "sms")
    clock.advance(20)
    await service.tick()  # second SMS attempt fails too
    clock.advance(60)
    await service.tick()  # third fails: the voice call already got through, no extra call
    assert len(notifier.to(HELPER, "voice")) == 1
    async with db.session() as session:
        rows = (
            (
                await session.execute(
                    select(Notification)
                    .where(Notification.alert_id == alert.id, Notification.channel == "sms")
                    # Unordered, PostgreSQL returns updated rows wherever they now lie.
                    .order_by(Notification.id)
                )
            )
            .scalars()
            .all()
        )
    assert [r.attempt for r in rows] == [1, 2, 3]
    assert all(r.status == "failed" and r.error for r in rows)


async def test_failed_call_status_falls_back_to_sms_when_the_sms_failed_too(
    db: Database, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    person_id = await _register(db, clock, monkeypatch)
    notifier = RecordingNotifier()
    bad = DeliveryError("invalid number", retryable=False, status="400")
    notifier.fail[("sms", HELPER)] = [bad]
    service = _service(db, clock, notifier)
    await service.raise_alert(AlertTrigger(AlertType.SOS, person_id, clock.now()))
    await service.tick()
    call_sid = next(f"X{i + 1:033d}" for i, (c, _, _) in enumerate(notifier.sent) if c == "voice")
    for _ in range(3):  # no-answer, retried twice, all no-answer
        assert await service.status_callback(call_sid, "no-answer")
        clock.advance(60)
        await service.tick()
        call_sid = f"X{len(notifier.sent):033d}"
    calls = notifier.to(HELPER, "voice")
    assert len(calls) == 3
    assert len(notifier.to(HELPER, "sms")) == 1, "after the calls failed, the SMS is tried again"


async def test_a_last_step_with_nobody_to_notify_waits_instead_of_spinning(
    db: Database, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy import delete

    from gateway.config import EscalationStep
    from gateway.storage.models import TeamMember

    person_id = await _register(db, clock, monkeypatch)
    async with db.session() as session, session.begin():
        await session.execute(delete(TeamMember))
    chain = EscalationConfig(
        emergency=(
            EscalationStep(notify="helper", channels=("sms",), wait=timedelta(minutes=1)),
            EscalationStep(
                notify="village_team", channels=("sms",), wait=timedelta(minutes=5), repeat=True
            ),
        )
    )
    service = _service(db, clock, RecordingNotifier(), escalation=chain)
    alert, _ = await service.raise_alert(AlertTrigger(AlertType.SOS, person_id, clock.now()))
    await service.tick()
    clock.advance(timedelta(minutes=1))
    assert await service.run_due() == 1
    assert await service.run_due() == 0, "an empty last step must not be re-claimed at once"
    clock.advance(timedelta(minutes=5))
    assert await service.run_due() == 1
    async with db.session() as session:
        stored = await session.get(Alert, alert.id)
    assert stored is not None and stored.step_round == 1


async def test_closing_an_alert_tells_everybody_who_was_notified(
    db: Database, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    person_id = await _register(db, clock, monkeypatch)
    notifier = RecordingNotifier()
    service = _service(db, clock, notifier)
    alert, _ = await service.raise_alert(AlertTrigger(AlertType.SOS, person_id, clock.now()))
    await service.tick()
    clock.advance(timedelta(minutes=3))
    await service.tick()  # the helper, then the team, have been told
    assert await service.acknowledge_by_sms(TEAM[0], "1") is not None
    await service.tick()
    clock.advance(timedelta(minutes=20))
    await service.resolve(alert.id, "王五", "已上门查看，老人无大碍")
    await service.tick()
    for phone in (HELPER, *TEAM):
        closed = [t for t in notifier.to(phone, "sms") if t.startswith("处理完毕")]
        assert len(closed) == 1, phone
        assert "坝芒村老人0" in closed[0] and alert.code in closed[0] and "王五" in closed[0]
    assert not notifier.to(DUTY), "the duty line was never called about it"
    sent_before = len(notifier.sent)
    await service.resolve(alert.id, "王五")
    clock.advance(timedelta(hours=1))
    await service.tick()
    assert len(notifier.sent) == sent_before, "closing twice tells nobody twice"


def _chain(*steps: tuple[str, tuple[str, ...], int, bool]) -> EscalationConfig:
    """An ``escalation:`` section whose emergency chain is ``(notify, channels, minutes,
    repeat)`` per step."""
    return EscalationConfig.model_validate(
        {
            "emergency": [
                {"notify": n, "channels": list(c), "wait": f"{m}m", "repeat": r}
                for n, c, m, r in steps
            ]
        }
    )


#: The chain the alert is raised under: helper by SMS, the team by voice, duty by SMS (a
#: call: the duty line is a landline).
_FIRST_CHAIN = _chain(
    ("helper", ("sms",), 2, False),
    ("village_team", ("voice",), 4, False),
    ("town_duty", ("sms",), 10, True),
)
#: The file after the restart: different people, channels and waits at every step.
_SECOND_CHAIN = _chain(
    ("helper", ("voice",), 30, False),
    ("town_duty", ("voice",), 30, True),
)


async def test_an_open_alert_keeps_its_chain_across_a_restart_with_another_configuration(
    db: Database, database_url: str, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    person_id = await _register(db, clock, monkeypatch)
    before = RecordingNotifier()
    first = _service(db, clock, before, escalation=_FIRST_CHAIN)
    alert, _ = await first.raise_alert(AlertTrigger(AlertType.SOS, person_id, clock.now()))
    await first.tick()
    assert [(c, p) for c, p, _ in before.sent] == [("sms", HELPER)]

    # The restart: a new process (own engine, nothing carried in memory) with another file.
    restarted_db = Database(database_url)
    try:
        after = RecordingNotifier(sid_tag="Y")
        second = _service(restarted_db, clock, after, worker="w2", escalation=_SECOND_CHAIN)
        clock.advance(timedelta(minutes=2) - timedelta(seconds=1))
        await second.tick()
        assert after.sent == [], "the original 2-minute wait still holds"
        clock.advance(timedelta(seconds=1))
        await second.tick()
        # The original step 2: the team, by voice only (the new file has no team step).
        assert sorted((c, p) for c, p, _ in after.sent) == [("voice", t) for t in TEAM]

        clock.advance(timedelta(minutes=4) - timedelta(seconds=1))
        await second.tick()
        assert len(after.sent) == 2, "the original 4-minute wait still holds"
        clock.advance(timedelta(seconds=1))
        await second.tick()
        # The original step 3 (its "sms" is a call: the duty line is a landline) ...
        assert [(c, p) for c, p, _ in after.sent[2:]] == [("voice", DUTY)]
        clock.advance(timedelta(minutes=10))
        await second.tick()
        # ... repeating after its own 10 minutes, not the new file's 30.
        assert [(c, p) for c, p, _ in after.sent[3:]] == [("voice", DUTY)], "it repeats"

        # A new alert follows the new file: the helper, by voice.
        fall, new = await second.raise_alert(AlertTrigger(AlertType.FALL, person_id, clock.now()))
        assert new
        await second.tick()
        assert [(c, p) for c, p, _ in after.sent[4:]] == [("voice", HELPER)]
        async with restarted_db.session() as session:
            old = await session.get(Alert, alert.id)
            fresh = await session.get(Alert, fall.id)
        assert old is not None and fresh is not None
        assert [s.notify for s in second.chain_of(old)] == ["helper", "village_team", "town_duty"]
        assert [s.notify for s in second.chain_of(fresh)] == ["helper", "town_duty"]
    finally:
        await restarted_db.dispose()


async def test_an_alert_raised_before_snapshots_existed_takes_the_live_chain_and_keeps_it(
    db: Database, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy import update

    person_id = await _register(db, clock, monkeypatch)
    notifier = RecordingNotifier()
    service = _service(db, clock, notifier, escalation=_SECOND_CHAIN)
    alert, _ = await service.raise_alert(AlertTrigger(AlertType.SOS, person_id, clock.now()))
    assert alert.escalation_chain is not None, "a new alert carries its chain"
    # What migration 0008 leaves on an alert that was open during the upgrade.
    async with db.session() as session, session.begin():
        await session.execute(update(Alert).values(escalation_chain=None))
    await service.tick()
    assert [(c, p) for c, p, _ in notifier.sent] == [("voice", HELPER)]
    # From that step on its chain is written down: another file no longer moves it.
    later = RecordingNotifier(sid_tag="Y")
    restarted = _service(db, clock, later, escalation=_FIRST_CHAIN)
    clock.advance(timedelta(minutes=30))
    await restarted.tick()
    assert [(c, p) for c, p, _ in later.sent] == [("voice", DUTY)]
