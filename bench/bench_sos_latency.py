"""SOS latency: MQTT publish → the helper's SMS request arriving at (fake) Twilio.

Run: .venv/bin/python -m bench.bench_sos_latency [--presses 200]
The gateway runs in-process (PostgreSQL or SQLite, the machine's Mosquitto) with the real
twilio client pointed at the local fake Twilio REST server. Each of N residents presses SOS
once, one after another; the latency is from just before publish() to the moment the fake
server has recorded that resident's SMS (polled every 1 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
import uuid
from datetime import UTC, datetime

import aiomqtt

from bench.common import median, percentile, settings_with_fake_twilio
from gateway.app import Gateway
from gateway.register.apply import apply_provisioning
from gateway.register.provisioning import parse_provisioning
from gateway.storage.db import migrate
from tests.fakes.fake_twilio import FakeTwilio
from tests.helpers import register_yaml
from tests.services import scratch_pg_database


async def measure(database_url: str, presses: int) -> list[float]:
    prefix = f"lat{uuid.uuid4().hex[:6]}"
    os.environ["HW_TEST_ADMIN_PASSWORD"] = "correct-horse-battery"
    with FakeTwilio() as twilio:
        settings = settings_with_fake_twilio(database_url, prefix, twilio)
        await migrate(database_url)
        gateway = Gateway(settings, "l" * 32)
        await apply_provisioning(
            gateway.db,
            parse_provisioning(register_yaml(prefix, persons=presses)),
            datetime.now(UTC),
        )
        stop = asyncio.Event()
        task = asyncio.create_task(gateway.run(stop, run_migrations=False, serve_api=False))
        while not gateway.ingest.connected:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        latencies: list[float] = []
        async with aiomqtt.Client("127.0.0.1", 1883) as client:
            for n in range(presses):
                before = len(twilio.messages)
                started = time.perf_counter()
                await client.publish(
                    f"{prefix}/homewatch/{prefix}-p{n}-sos/event",
                    json.dumps({"type": "sos", "id": f"s{n}"}),
                    qos=1,
                )
                while len(twilio.messages) <= before:
                    await asyncio.sleep(0.001)
                latencies.append((time.perf_counter() - started) * 1000)
        stop.set()
        await task
        async with aiomqtt.Client("127.0.0.1", 1883, identifier=f"gw-{prefix}", clean_session=True):
            pass
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--presses", type=int, default=200)
    args = parser.parse_args()
    with scratch_pg_database("hwlat") as url:
        runs = {"postgresql": asyncio.run(measure(url, args.presses))}
    with tempfile.TemporaryDirectory() as tmp:
        runs["sqlite"] = asyncio.run(measure(f"sqlite+aiosqlite:///{tmp}/lat.db", args.presses))
    for backend, values in runs.items():
        print(
            f"{backend}: {len(values)} SOS, p50 {median(values):.1f} ms, "
            f"p99 {percentile(values, 0.99):.1f} ms, max {max(values):.1f} ms"
        )


if __name__ == "__main__":
    main()
