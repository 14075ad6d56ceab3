"""A flooding device is held to its rate; the surplus is counted and kept, never silently
dropped, and an SOS always passes (SPEC §10)."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta

import aiomqtt
import pytest
from sqlalchemy import func, select

from gateway.clock import ManualClock
from gateway.config import load_settings
from gateway.ingest import MqttIngest, StoreBatch
from gateway.metrics import Metrics
from gateway.ratelimit import DeviceRateLimiter
from gateway.register.apply import apply_provisioning
from gateway.register.provisioning import parse_provisioning
from gateway.registry import DeviceRegistry
from gateway.storage.db import Database
from gateway.storage.models import Event, RejectedMessage
from tests.helpers import register_yaml

P = "rl"
_mids = itertools.count(1)


def test_the_bucket_refills_at_the_rate_and_caps_at_the_burst() -> None:
    limiter = DeviceRateLimiter(rate=2, burst=3)
    t0 = datetime(2026, 3, 10, tzinfo=UTC)
    assert [limiter.allow("a", t0) for _ in range(4)] == [True, True, True, False]
    assert limiter.allow("b", t0), "each device has its own bucket"
    assert limiter.allow("a", t0 + timedelta(seconds=0.5))
    assert not limiter.allow("a", t0 + timedelta(seconds=0.5))
    later = t0 + timedelta(hours=1)
    assert [limiter.allow("a", later) for _ in range(4)] == [True, True, True, False]
    assert DeviceRateLimiter(rate=0, burst=1).allow("a", t0), "rate 0 switches it off"


async def test_a_flooding_device_is_limited_and_its_neighbour_is_not(
    db: Database, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HW_TEST_ADMIN_PASSWORD", "correct-horse-battery")
    await apply_provisioning(db, parse_provisioning(register_yaml(P, persons=2)), clock.now())
    settings = load_settings(database_url=db.url, device_rate_limit=1, device_rate_burst=5)
    registry = DeviceRegistry()
    await registry.load(db)
    metrics = Metrics()
    ingest = MqttIngest(settings, db, registry, clock, metrics)

    def message(uid: str, kind: str) -> aiomqtt.Message:
        fields: dict[str, object] = {"type": kind, "id": f"{uid}-{next(_mids)}"}
        if kind == "motion":
            fields["state"] = True
        body = json.dumps(fields).encode()
        return aiomqtt.Message(f"{P}/homewatch/{uid}/event", body, 1, False, 1, None)

    batch = StoreBatch()
    for _ in range(20):
        ingest.classify(batch, message(f"{P}-p0-pir", "motion"), clock.now())
    ingest.classify(batch, message(f"{P}-p0-sos", "heartbeat"), clock.now())
    for _ in range(10):
        ingest.classify(batch, message(f"{P}-p0-sos", "sos"), clock.now())
    ingest.classify(batch, message(f"{P}-p1-pir", "motion"), clock.now())
    await ingest.flush(batch)

    async with db.session() as session:
        stored = dict(
            (
                await session.execute(
                    select(Event.device_uid, func.count()).group_by(Event.device_uid)
                )
            ).all()
        )
        limited = (
            await session.execute(
                select(func.count()).where(RejectedMessage.reason == "rate_limited")
            )
        ).scalar_one()
    assert stored[f"{P}-p0-pir"] == 5, "the burst, then the limit"
    assert stored[f"{P}-p0-sos"] == 11, "an SOS is never held back"
    assert stored[f"{P}-p1-pir"] == 1
    assert limited == 15, "the surplus is kept for inspection, not dropped"
    assert b'homewatch_rejected_messages_total{reason="rate_limited"} 15.0' in metrics.render()

    clock.advance(timedelta(seconds=3))
    batch = StoreBatch()
    for _ in range(5):
        ingest.classify(batch, message(f"{P}-p0-pir", "motion"), clock.now())
    assert len(batch.accepted) == 3 and len(batch.rejected) == 2
