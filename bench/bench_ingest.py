"""Durable ingest rate: how fast the gateway drains a backlog of QoS 1 events.

Run: .venv/bin/python -m bench.bench_ingest [--events 20000] [--runs 3]
Each run: fresh database; the gateway (in-process, dedicated Mosquitto with no queue
limit) connects once to create its persistent session and stops; N native motion events
with unique ids are published (QoS 1) and queued at the broker; a new gateway starts and
the rate is N / (time from its start until the N-th event is committed). Every message is
acknowledged only after its batch commits, so this is the durable rate. (Our Python
publisher alone manages only ~4k msg/s here, which is why the backlog is built first.)
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

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import func, select

from alerts.notifiers import ConsoleNotifier
from bench.common import median
from gateway.app import Gateway
from gateway.config import load_settings
from gateway.register.apply import apply_provisioning
from gateway.register.provisioning import parse_provisioning
from gateway.storage.db import migrate
from gateway.storage.models import Event
from tests.helpers import register_yaml
from tests.services import mosquitto, scratch_pg_database


def _publish(port: int, topic: str, count: int) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    client.max_inflight_messages_set(1000)
    client.connect("127.0.0.1", port)
    client.loop_start()
    infos = [
        client.publish(topic, json.dumps({"type": "motion", "state": True, "id": f"b{n}"}), qos=1)
        for n in range(count)
    ]
    for info in infos:
        info.wait_for_publish(60)
    client.loop_stop()
    client.disconnect()


async def one_run(database_url: str, port: int, events: int) -> float:
    prefix = f"bench{uuid.uuid4().hex[:6]}"
    os.environ["HW_TEST_ADMIN_PASSWORD"] = "correct-horse-battery"
    settings = load_settings(
        database_url=database_url,
        mqtt_url=f"mqtt://127.0.0.1:{port}",
        mqtt_client_id=f"gw-{prefix}",
        secret_key="b" * 32,
    )
    await migrate(database_url)
    gateway = Gateway(settings, "b" * 32, notifier=ConsoleNotifier())
    await apply_provisioning(
        gateway.db, parse_provisioning(register_yaml(prefix, persons=1)), datetime.now(UTC)
    )
    # First run creates the persistent session and subscriptions, then stops.
    await _run_until_connected_then_stop(gateway)
    topic = f"{prefix}/homewatch/{prefix}-p0-pir/event"
    _publish(port, topic, events)  # queued at the broker for the gateway's session
    gateway = Gateway(settings, "b" * 32, notifier=ConsoleNotifier())
    stop = asyncio.Event()
    started = time.perf_counter()
    task = asyncio.create_task(gateway.run(stop, run_migrations=False, serve_api=False))
    while True:
        async with gateway.db.session() as session:
            stored = (await session.execute(select(func.count(Event.id)))).scalar_one()
        if stored >= events:
            break
        await asyncio.sleep(0.02)
    elapsed = time.perf_counter() - started
    stop.set()
    await task
    return events / elapsed


async def _run_until_connected_then_stop(gateway: Gateway) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(gateway.run(stop, run_migrations=False, serve_api=False))
    while not gateway.ingest.connected:
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)
    stop.set()
    await task


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    results: dict[str, list[float]] = {"sqlite": [], "postgresql": []}
    with mosquitto() as port:
        for _ in range(args.runs):
            with tempfile.TemporaryDirectory() as tmp:
                url = f"sqlite+aiosqlite:///{tmp}/bench.db"
                results["sqlite"].append(asyncio.run(one_run(url, port, args.events)))
            with scratch_pg_database("hwbench") as url:
                results["postgresql"].append(asyncio.run(one_run(url, port, args.events)))
    for backend, rates in results.items():
        print(
            f"{backend}: median {median(rates):,.0f} events/s over {len(rates)} runs "
            f"({', '.join(f'{r:,.0f}' for r in rates)})"
        )


if __name__ == "__main__":
    main()
