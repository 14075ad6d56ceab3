"""The outbox on both real databases: priority order, routine pacing, one claim per row
among racing workers, and an SOS that overtakes thousands of queued routine messages."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from alerts.notifiers.base import Delivery
from alerts.outbox import Outbox, Priority, Recipient, Wake, new_notification
from alerts.service import AlertService
from alerts.types import AlertTrigger, AlertType
from gateway.clock import ManualClock
from gateway.config import EscalationConfig, OutboxConfig, RulesConfig
from gateway.register.apply import apply_provisioning
from gateway.register.provisioning import parse_provisioning
from gateway.storage.db import Database
from gateway.storage.models import Notification, Person
from tests.conftest import wait_until
from tests.helpers import register_yaml

HELPER = "+8613700000001"
UNLIMITED = OutboxConfig(routine_per_minute=10**9, routine_burst=10**9)


def _row(
    n: int, priority: Priority, now: datetime, *, age: timedelta = timedelta(0)
) -> Notification:
    return new_notification(
        alert_id=None,
        purpose="digest" if priority is Priority.ROUTINE else "system",
        template="visit_digest",
        recipient=Recipient("helper", f"帮扶{n}", f"+86137{n:08d}"),
        channel="sms",
        params={"helper": f"帮扶{n}", "week": "3月9日至15日", "count": "1", "people": "老人"},
        now=now - age,
        priority=priority,
        token=f"t{priority.value}-{n}",
    )


async def _queue(db: Database, rows: list[Notification]) -> None:
    async with db.session() as session, session.begin():
        session.add_all(rows)


@dataclass
class Recorder:
    sent: list[str] = field(default_factory=list)  # tokens, in the order handed over

    async def deliver(self, row: Notification) -> None:
        self.sent.append(row.token)


def _outbox(
    db: Database, clock: ManualClock, deliver: Recorder, config: OutboxConfig, worker: str = "w1"
) -> Outbox:
    return Outbox(
        db,
        clock,
        deliver=deliver.deliver,
        provider_of=lambda channel, phone: "twilio",
        worker_id=worker,
        config=config,
        wake=Wake(),
    )


async def test_most_urgent_first_and_oldest_first_within_a_priority(
    db: Database, clock: ManualClock
) -> None:
    now = clock.now()
    # Queued least urgent first, and within each priority newest first.
    rows = [
        _row(n, priority, now, age=timedelta(minutes=n))
        for priority in reversed(Priority)
        for n in range(3)
    ]
    await _queue(db, rows)
    recorder = Recorder()
    assert await _outbox(db, clock, recorder, UNLIMITED).send_pending() == 12
    expected = [f"t{p.value}-{n}" for p in Priority for n in (2, 1, 0)]
    assert recorder.sent == expected


async def test_routine_is_paced_per_provider_and_never_holds_back_an_alarm(
    db: Database, clock: ManualClock
) -> None:
    now = clock.now()
    await _queue(db, [_row(n, Priority.ROUTINE, now) for n in range(20)])
    recorder = Recorder()
    outbox = _outbox(db, clock, recorder, OutboxConfig(routine_per_minute=6, routine_burst=3))
    assert await outbox.send_pending() == 3, "a burst of three"
    assert await outbox.send_pending() == 0
    await _queue(db, [_row(100, Priority.EMERGENCY, now)])
    assert await outbox.send_pending() == 1, "an alarm is never paced"
    assert recorder.sent[-1] == "t0-100"
    clock.advance(10)
    assert await outbox.send_pending() == 1, "then one every ten seconds"
    clock.advance(60)
    assert await outbox.send_pending() == 3, "and never more than the burst at once"
    async with db.session() as session:
        pending = await session.scalar(select(func.count()).where(Notification.status == "pending"))
    assert pending == 20 - 7


async def test_racing_workers_claim_each_row_once(db: Database, clock: ManualClock) -> None:
    now = clock.now()
    await _queue(db, [_row(n, Priority(n % 4), now, age=timedelta(seconds=n)) for n in range(200)])
    recorders = [Recorder() for _ in range(3)]
    # Each worker with its own engine and connection pool, as separate processes have.
    engines = [Database(db.url) for _ in recorders]
    outboxes = [
        _outbox(engine, clock, r, UNLIMITED, worker=f"w{i}")
        for i, (engine, r) in enumerate(zip(engines, recorders, strict=True))
    ]
    try:
        counts = await asyncio.gather(*(o.send_pending() for o in outboxes))
    finally:
        for engine in engines:
            await engine.dispose()
    assert sum(counts) == 200
    everything = [token for r in recorders for token in r.sent]
    assert len(everything) == len(set(everything)) == 200
    async with db.session() as session:
        claimers = set((await session.execute(select(Notification.claimed_by))).scalars())
    assert claimers <= {"w0", "w1", "w2"}


@dataclass
class SlowNotifier:
    """Records what it was handed, in order; routine SMS take a while (a slow provider)."""

    name: str = "slow"
    routine_seconds: float = 0.02
    sent: list[tuple[str, str]] = field(default_factory=list)  # (channel, to)

    async def send_sms(self, to: str, body: str, *, status_callback: str | None = None) -> Delivery:
        return await self._send("sms", to)

    async def place_call(
        self, to: str, *, speech: str, twiml_url: str, status_callback: str | None = None
    ) -> Delivery:
        return await self._send("voice", to)

    async def _send(self, channel: str, to: str) -> Delivery:
        self.sent.append((channel, to))
        sid = f"S{len(self.sent):033d}"
        if to != HELPER:
            await asyncio.sleep(self.routine_seconds)
        return Delivery(sid=sid, status="queued")


async def test_an_sos_overtakes_three_thousand_queued_routine_messages(
    db: Database, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HW_TEST_ADMIN_PASSWORD", "correct-horse-battery")
    await apply_provisioning(db, parse_provisioning(register_yaml("ob", persons=1)), clock.now())
    async with db.session() as session:
        person_id = (await session.execute(select(Person.id))).scalars().one()
    now = clock.now()
    await _queue(db, [_row(n, Priority.ROUTINE, now) for n in range(3000)])
    notifier = SlowNotifier()
    service = AlertService(
        db,
        clock,
        notifier,
        escalation=EscalationConfig(),
        rules=RulesConfig(),
        public_url="http://gw.example",
        timezone=ZoneInfo("Asia/Shanghai"),
        worker_id="w1",
        outbox=UNLIMITED,  # pacing off: the lanes and the order alone must do it
    )
    stop = asyncio.Event()
    running = asyncio.create_task(service.run(stop))
    try:
        await wait_until(lambda: len(notifier.sent) >= 20)  # the backlog is being worked on
        before = len(notifier.sent)
        await service.raise_alert(AlertTrigger(AlertType.SOS, person_id, clock.now()))
        for _ in range(1000):
            if {("sms", HELPER), ("voice", HELPER)} <= set(notifier.sent):
                break
            await asyncio.sleep(0.01)
        handed = notifier.sent[before:]
        sms, voice = handed.index(("sms", HELPER)), handed.index(("voice", HELPER))
    finally:
        stop.set()
        await asyncio.wait_for(running, 10)
    # Only the few routine sends already in flight or claimed may come in between.
    assert max(sms, voice) <= 2 * OutboxConfig().concurrency + 2, handed[:20]
    routine_sent = sum(1 for _, to in notifier.sent if to != HELPER)
    assert routine_sent < 1000, "the SOS went out while the backlog was still there"
