"""SOS latency behind a routine backlog: MQTT publish → the helper's SMS request at (fake)
Twilio, on an idle gateway and with 3,000 routine SMS queued (issue 17).

Run: .venv/bin/python -m bench.bench_outbox_priority [--presses 30] [--backlog 3000]

Like bench.bench_sos_latency: the gateway runs in-process against the machine's Mosquitto
and a fresh PostgreSQL or SQLite database, with the real twilio client pointed at the local
fake Twilio REST server. Per database, three fresh gateways:

* ``idle``: nothing else queued;
* ``backlog``: ``--backlog`` visit digests queued (routine priority, due now) just before
  the presses, default pacing (``outbox.routine_per_minute``);
* ``backlog, unpaced``: the same with pacing off, so the backlog drains as fast as the
  general lane can send and only the priority order and the emergency lane protect the SOS.

Residents press SOS one after another (a new resident each time); the latency runs from just
before ``publish()`` to the fake server recording the helper's SMS.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiomqtt
from sqlalchemy import update

from bench.common import median, percentile, settings_with_fake_twilio
from gateway.app import Gateway
from gateway.register.apply import apply_provisioning
from gateway.register.provisioning import parse_provisioning
from gateway.storage.db import migrate
from gateway.storage.models import Notification
from tests.fakes.fake_twilio import FakeTwilio
from tests.helpers import register_yaml, routine_backlog
from tests.services import scratch_pg_database

HELPER = "+8613700000001"
UNPACED = {"routine_per_minute": 10**9, "routine_burst": 10**9}


@dataclass
class Run:
    idle: list[float]
    backlog: list[float]
    routine_sent: int


def _helper_sms(twilio: FakeTwilio, cursor: list[int]) -> int:
    """Helper SMS recorded so far, scanning only what arrived since the last call."""
    messages = twilio._state.messages  # noqa: SLF001 - a 1 ms poll must not copy 3,000 rows
    with twilio._state.lock:  # noqa: SLF001
        end = len(messages)
        cursor[1] += sum(1 for m in messages[cursor[0] : end] if m["To"] == HELPER)
        cursor[0] = end
    return cursor[1]


async def _hold_backlog(gateway: Gateway, *, held: bool) -> None:
    """Park the backlog (status ``held``, which no lane claims) or queue it again."""
    old, new = ("pending", "held") if held else ("held", "pending")
    async with gateway.db.session() as session, session.begin():
        await session.execute(
            update(Notification)
            .where(Notification.purpose == "digest", Notification.status == old)
            .values(status=new)
        )
    gateway.alerts.wake.set()


async def measure(
    database_url: str, presses: int, backlog: int, outbox: dict[str, Any] | None
) -> Run:
    """Presses alternate between an idle outbox and one with the backlog queued, so that
    both see the same (shared, noisy) machine."""
    prefix = f"obp{uuid.uuid4().hex[:6]}"
    os.environ["HW_TEST_ADMIN_PASSWORD"] = "correct-horse-battery"
    with FakeTwilio() as twilio:
        settings = settings_with_fake_twilio(
            database_url, prefix, twilio, **({"outbox": outbox} if outbox else {})
        )
        await migrate(database_url)
        gateway = Gateway(settings, "l" * 32)
        await apply_provisioning(
            gateway.db,
            parse_provisioning(register_yaml(prefix, persons=2 * presses)),
            datetime.now(UTC),
        )
        now = gateway.clock.now()
        async with gateway.db.session() as session, session.begin():
            rows = routine_backlog(backlog, now)
            for row in rows:
                row.status = "held"
            session.add_all(rows)
        stop = asyncio.Event()
        task = asyncio.create_task(gateway.run(stop, run_migrations=False, serve_api=False))
        while not gateway.ingest.connected:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        run = Run([], [], 0)
        cursor = [0, 0]
        async with aiomqtt.Client("127.0.0.1", 1883) as client:
            for n in range(2 * presses):
                with_backlog = n % 2 == 1
                if with_backlog:
                    await _hold_backlog(gateway, held=False)
                await asyncio.sleep(0.3)  # the general lane is busy with the backlog (or idle)
                before = _helper_sms(twilio, cursor)
                started = time.perf_counter()
                await client.publish(
                    f"{prefix}/homewatch/{prefix}-p{n}-sos/event",
                    json.dumps({"type": "sos", "id": f"s{n}"}),
                    qos=1,
                )
                while _helper_sms(twilio, cursor) <= before:
                    await asyncio.sleep(0.001)
                elapsed = (time.perf_counter() - started) * 1000
                (run.backlog if with_backlog else run.idle).append(elapsed)
                if with_backlog:
                    await _hold_backlog(gateway, held=True)
        run.routine_sent = len(twilio.messages) - _helper_sms(twilio, cursor)
        stop.set()
        await task
        async with aiomqtt.Client("127.0.0.1", 1883, identifier=f"gw-{prefix}", clean_session=True):
            pass
    return run


@contextmanager
def _database(kind: str) -> Iterator[str]:
    if kind == "postgresql":
        with scratch_pg_database("hwobp") as url:
            yield url
        return
    with tempfile.TemporaryDirectory() as tmp:
        yield f"sqlite+aiosqlite:///{tmp}/obp.db"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--presses", type=int, default=30, help="per case (idle, backlog)")
    parser.add_argument("--backlog", type=int, default=3000)
    args = parser.parse_args()
    print(
        "| database | pacing | idle p50 | idle p99 | backlog p50 | backlog p99 | ratio of p50s "
        "| routine sent |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for kind in ("postgresql", "sqlite"):
        for pacing, outbox in (("default", None), ("off", UNPACED)):
            with _database(kind) as url:
                run = asyncio.run(measure(url, args.presses, args.backlog, outbox))
            idle, busy = median(run.idle), median(run.backlog)
            print(
                f"| {kind} | {pacing} | {idle:.1f} ms | {percentile(run.idle, 0.99):.1f} ms "
                f"| {busy:.1f} ms | {percentile(run.backlog, 0.99):.1f} ms | {busy / idle:.2f} "
                f"| {run.routine_sent} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
