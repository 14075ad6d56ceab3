"""The weekly visit digest: who is due, once per helper and ISO week, delivered as SMS."""

from __future__ import annotations

import asyncio
import io
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from alerts.notifiers import ConsoleNotifier
from alerts.outbox import Priority, spread_offset
from alerts.service import AlertService
from gateway.clock import ManualClock
from gateway.config import DigestConfig, load_settings
from gateway.register.apply import apply_provisioning
from gateway.register.digest import digest_token, send_due_digests
from gateway.register.provisioning import parse_provisioning
from gateway.storage.db import Database
from gateway.storage.models import Notification, Person, Visit
from tests.helpers import register_yaml

TZ = ZoneInfo("Asia/Shanghai")
LI = "+8613700000001"
MONDAY_8 = DigestConfig(weekday=1, hour=8)


def local(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=TZ)


@pytest.fixture
async def registered(db: Database, monkeypatch: pytest.MonkeyPatch) -> Database:
    monkeypatch.setenv("HW_TEST_ADMIN_PASSWORD", "correct-horse-battery")
    text = register_yaml("digest", persons=2)  # two special persons, both 李四's
    await apply_provisioning(db, parse_provisioning(text), local(2026, 1, 1))
    return db


async def _digests(db: Database) -> list[Notification]:
    async with db.session() as session:
        rows = await session.execute(
            select(Notification).where(Notification.purpose == "digest").order_by(Notification.id)
        )
        return list(rows.scalars())


async def test_digest_waits_for_its_hour_then_goes_once_per_week(registered: Database) -> None:
    db = registered
    assert await send_due_digests(db, local(2026, 3, 9, 7, 59), TZ, MONDAY_8) == 0
    assert await send_due_digests(db, local(2026, 3, 9, 8, 0), TZ, MONDAY_8) == 1
    assert await send_due_digests(db, local(2026, 3, 11, 20, 0), TZ, MONDAY_8) == 0
    (digest,) = await _digests(db)
    assert digest.alert_id is None and digest.recipient_phone == LI
    assert digest.token == digest_token("2026-W11", LI)
    assert digest.body.startswith("李四您好，本周（3月9日至15日）您有2位关爱对象需要走访：")
    assert "老人0、老人1" in digest.body
    # Sunday night local is still the same ISO week; Monday is a new one.
    assert await send_due_digests(db, local(2026, 3, 15, 23, 59), TZ, MONDAY_8) == 0
    assert await send_due_digests(db, local(2026, 3, 16, 9, 0), TZ, MONDAY_8) == 1


async def test_digest_lists_only_who_still_needs_a_visit(registered: Database) -> None:
    db = registered
    async with db.session() as session, session.begin():
        first, second = (await session.execute(select(Person).order_by(Person.id))).scalars()
        # 老人0 (special) was visited early on Monday; 老人1 becomes general, visited
        # twice already this month.
        session.add(
            Visit(
                person_id=first.id,
                helper_phone=LI,
                visited_at=local(2026, 3, 16, 7, 0),
                services=["daily_care"],
                created_at=local(2026, 3, 16, 7, 5),
                created_by="lisi",
            )
        )
        second.care_level = "general"
        for day in (2, 10):
            session.add(
                Visit(
                    person_id=second.id,
                    helper_phone=LI,
                    visited_at=local(2026, 3, day, 10),
                    services=["health"],
                    created_at=local(2026, 3, day, 11),
                    created_by="lisi",
                )
            )
    assert await send_due_digests(db, local(2026, 3, 16, 8, 0), TZ, MONDAY_8) == 0
    assert await _digests(db) == []
    # The next week 老人0 is due again; 老人1's March is still covered.
    assert await send_due_digests(db, local(2026, 3, 23, 8, 0), TZ, MONDAY_8) == 1
    (digest,) = await _digests(db)
    assert "1位" in digest.body and "老人0" in digest.body and "老人1" not in digest.body
    # April: 老人1's new month has no visit yet.
    assert await send_due_digests(db, local(2026, 4, 6, 8, 0), TZ, MONDAY_8) == 1
    assert "老人0、老人1" in (await _digests(db))[-1].body


async def test_racing_gateways_queue_one_digest(registered: Database) -> None:
    wednesday_evening = DigestConfig(weekday=3, hour=18)
    now = local(2026, 3, 11, 18, 30)
    counts = await asyncio.gather(
        *(send_due_digests(registered, now, TZ, wednesday_evening) for _ in range(4))
    )
    assert sum(counts) == 1
    assert len(await _digests(registered)) == 1


async def test_a_digest_is_routine_and_due_at_its_own_point_in_the_hour(
    registered: Database,
) -> None:
    # Queued on time (Monday 08:00) or by a gateway started late in the week (Wednesday
    # 15:00): either way due at the helper's fixed offset within the hour after queuing.
    for now in (local(2026, 3, 9, 8, 0), local(2026, 3, 18, 15, 0)):
        assert await send_due_digests(registered, now, TZ, MONDAY_8) == 1
        digest = (await _digests(registered))[-1]
        assert digest.priority == Priority.ROUTINE
        offset = spread_offset(digest.token, timedelta(hours=1))
        assert digest.not_before == now + offset
        assert timedelta(0) <= offset < timedelta(hours=1)


async def test_the_alert_service_delivers_the_digest_when_it_is_due(registered: Database) -> None:
    now = local(2026, 3, 9, 8, 0)
    await send_due_digests(registered, now, TZ, MONDAY_8)
    (queued,) = await _digests(registered)
    settings = load_settings(database_url=registered.url)
    out = io.StringIO()
    clock = ManualClock(queued.not_before - timedelta(seconds=1))
    service = AlertService(
        registered,
        clock,
        ConsoleNotifier(out),
        escalation=settings.escalation,
        rules=settings.rules,
        public_url=settings.public_url,
        timezone=TZ,
        worker_id="test",
    )
    assert await service.send_pending() == 0, "not before its point in the hour"
    clock.advance(1)
    assert await service.send_pending() == 1
    assert LI in out.getvalue() and "需要走访" in out.getvalue()
    (digest,) = await _digests(registered)
    assert digest.status not in ("pending", "sending", "failed") and digest.sent_at is not None


async def test_the_loop_queues_and_wakes_delivery_until_stopped(registered: Database) -> None:
    from gateway.register.digest import digest_loop

    clock = ManualClock(local(2026, 3, 9, 9, 0))
    stop = asyncio.Event()
    woken: list[bool] = []
    loop = asyncio.create_task(
        digest_loop(stop, registered, clock, TZ, MONDAY_8, on_queued=lambda: woken.append(True))
    )
    await asyncio.sleep(0.2)
    assert not woken, "the first pass waits for the gateway to settle after a start"
    clock.advance(MONDAY_8.settle)
    for _ in range(100):
        if woken:
            break
        await asyncio.sleep(0.02)
    clock.advance(600)  # a second pass in the same week queues nothing more
    await asyncio.sleep(0.2)
    stop.set()
    await asyncio.wait_for(loop, 5)
    assert woken == [True]
    assert len(await _digests(registered)) == 1
