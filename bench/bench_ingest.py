"""Durable ingest rate against bare MQTT clients draining the same backlog in the same run.

Run: .venv/bin/python -m bench.bench_ingest [--homes 500] [--events 20000] [--runs 3]

One dedicated Mosquitto (no queue limit). Per run and database: a fresh database with
``--homes`` homes; three persistent sessions are created (bare paho, bare aiomqtt, the
gateway's two lanes), then ``--events`` QoS 1 messages from those homes (native motion
with ids, zigbee2mqtt door contacts without) are published once and queued at the broker
for each session. Each client then drains its own copy alone, one after the other:

* bare paho: ``on_message`` counts, auto-ack, nothing else;
* bare aiomqtt: ``async for message in client.messages`` counts, nothing else;
* gateway: the whole ``Gateway`` (adapters, dedup, state, durable storage, ack after
  commit, rules); drained when the rules have been handed the N-th stored event.

Rate = N / (connect → last message). The table (medians, and the gateway ÷ aiomqtt ratio)
is printed and written into docs/BENCHMARKS.md. The machine is shared and noisy: compare
within one run, not across runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import aiomqtt
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from alerts.notifiers import ConsoleNotifier
from bench.common import median, write_section
from gateway.app import Gateway
from gateway.config import load_settings
from gateway.ingest import RoutedEvent
from gateway.register.apply import apply_provisioning
from gateway.register.provisioning import parse_provisioning
from gateway.storage.db import migrate
from tests.helpers import register_yaml
from tests.services import mosquitto, publish_qos1, scratch_pg_database


def _json(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


HEADING = "## Ingest rate against bare MQTT clients (issue #15)"


def _messages(prefix: str, homes: int, count: int) -> list[tuple[str, bytes]]:
    rng = random.Random(7)
    out = []
    for n in range(count):
        home = rng.randrange(homes)
        if n % 3 == 2:
            topic = f"{prefix}-z2m/{prefix}-p{home}-door"
            payload = _json({"contact": n % 2 == 0, "battery": 90, "linkquality": 120})
        else:
            topic = f"{prefix}/homewatch/{prefix}-p{home}-pir/event"
            payload = _json({"type": "motion", "state": n % 2 == 0, "id": f"b{n}"})
        out.append((topic, payload))
    return out


def _paho_client(port: int, client_id: str) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    properties.SessionExpiryInterval = 3600
    properties.ReceiveMaximum = 2000
    client.connect("127.0.0.1", port, clean_start=False, properties=properties)
    return client


def _paho_subscribe(port: int, client_id: str, filters: list[str]) -> None:
    client = _paho_client(port, client_id)
    done = threading.Event()
    client.on_subscribe = lambda *_args: done.set()
    client.loop_start()
    client.subscribe([(f, 1) for f in filters])
    done.wait(10)
    client.loop_stop()
    client.disconnect()


def _paho_drain(port: int, client_id: str, count: int) -> float:
    received = 0
    finished = threading.Event()

    def on_message(_client: object, _userdata: object, _message: object) -> None:
        nonlocal received
        received += 1
        if received >= count:
            finished.set()

    started = time.perf_counter()
    client = _paho_client(port, client_id)
    client.on_message = on_message
    client.loop_start()
    finished.wait(600)
    elapsed = time.perf_counter() - started
    client.loop_stop()
    client.disconnect()
    return count / elapsed


async def _aiomqtt_drain(port: int, client_id: str, count: int) -> float:
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    properties.SessionExpiryInterval = 3600
    properties.ReceiveMaximum = 2000
    started = time.perf_counter()
    received = 0
    async with aiomqtt.Client(
        "127.0.0.1",
        port,
        identifier=client_id,
        protocol=aiomqtt.ProtocolVersion.V5,
        clean_start=False,
        properties=properties,
        max_queued_incoming_messages=0,
    ) as client:
        async for _message in client.messages:
            received += 1
            if received >= count:
                break
    return count / (time.perf_counter() - started)


async def _gateway_drain(gateway: Gateway, count: int) -> float:
    handed = 0
    drained = asyncio.Event()

    async def on_events(events: Sequence[RoutedEvent]) -> None:
        nonlocal handed
        await gateway.runner.on_events(events)
        handed += len(events)
        if handed >= count:
            drained.set()

    gateway.ingest.on_events = on_events
    gateway.emergency_ingest.on_events = on_events
    stop = asyncio.Event()
    started = time.perf_counter()
    task = asyncio.create_task(gateway.run(stop, run_migrations=False, serve_api=False))
    await asyncio.wait_for(drained.wait(), 600)
    elapsed = time.perf_counter() - started
    stop.set()
    await task
    return count / elapsed


async def _start_and_stop(gateway: Gateway) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(gateway.run(stop, run_migrations=False, serve_api=False))
    while not (gateway.ingest.connected and gateway.emergency_ingest.connected):
        await asyncio.sleep(0.05)
    stop.set()
    await task


async def one_run(database_url: str, port: int, homes: int, events: int) -> dict[str, float]:
    prefix = f"bi{uuid.uuid4().hex[:6]}"
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
        gateway.db, parse_provisioning(register_yaml(prefix, persons=homes)), datetime.now(UTC)
    )
    await _start_and_stop(gateway)  # the gateway's sessions now queue while it is down
    filters = [f"{prefix}/homewatch/+/event", f"{prefix}-z2m/+"]
    for name in ("paho", "aiomqtt"):
        _paho_subscribe(port, f"{name}-{prefix}", filters)
    await asyncio.to_thread(publish_qos1, port, _messages(prefix, homes, events), within=120)
    rates = {
        "bare paho": await asyncio.to_thread(_paho_drain, port, f"paho-{prefix}", events),
        "bare aiomqtt": await _aiomqtt_drain(port, f"aiomqtt-{prefix}", events),
    }
    gateway = Gateway(settings, "b" * 32, notifier=ConsoleNotifier())
    rates["gateway"] = await _gateway_drain(gateway, events)
    return rates


def _table(results: dict[str, list[dict[str, float]]], args: argparse.Namespace) -> str:
    lines = [
        "| database | bare paho | bare aiomqtt | gateway | gateway ÷ aiomqtt |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for database, runs in results.items():
        paho = median([r["bare paho"] for r in runs])
        bare = median([r["bare aiomqtt"] for r in runs])
        gateway = median([r["gateway"] for r in runs])
        ratios = median([r["gateway"] / r["bare aiomqtt"] for r in runs])
        lines.append(
            f"| {database} | {paho:,.0f}/s | {bare:,.0f}/s | {gateway:,.0f}/s | {ratios:.2f}× |"
        )
    return "\n".join(lines) + (
        f"\n\nMedians of {args.runs} runs in one go; {args.events:,} QoS 1 messages from "
        f"{args.homes} homes (⅔ native motion with ids, ⅓ zigbee2mqtt door without), queued "
        "at a dedicated Mosquitto and drained by each client alone. The ratio is the median "
        "of the per-run ratios. Shared 2-core machine: compare within a run."
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--homes", type=int, default=500)
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    results: dict[str, list[dict[str, float]]] = {}
    with mosquitto() as port:
        for _ in range(args.runs):
            for database in args.databases.split(","):
                if database == "sqlite":
                    with tempfile.TemporaryDirectory() as tmp:
                        url = f"sqlite+aiosqlite:///{tmp}/bench.db"
                        rates = asyncio.run(one_run(url, port, args.homes, args.events))
                else:
                    with scratch_pg_database("hwbench") as url:
                        rates = asyncio.run(one_run(url, port, args.homes, args.events))
                print(database, {k: round(v) for k, v in rates.items()}, flush=True)
                results.setdefault(database, []).append(rates)
    table = _table(results, args)
    print(table)
    if not args.no_write:
        command = (
            f".venv/bin/python -m bench.bench_ingest --homes {args.homes} "
            f"--events {args.events} --runs {args.runs}"
        )
        write_section(HEADING, command, table)


if __name__ == "__main__":
    main()
