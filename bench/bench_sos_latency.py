"""SOS latency under load: MQTT publish → the helper's SMS request at (fake) Twilio.

Run: .venv/bin/python -m bench.bench_sos_latency [--presses 40] [--rates 0,1000,3000,5000]

The gateway runs in-process (both MQTT lanes, the real twilio client pointed at the local
fake Twilio REST server) against a dedicated Mosquitto with no queue limit. For each
background rate, in one run and one database: ``mosquitto_pub -l`` processes (C, outside
our interpreter) publish QoS 1 motion reports from other homes at that rate, paced every
10 ms; after two seconds of it, ``--presses`` residents press SOS one after another. The
latency of a press is from just before ``publish()`` to the moment the fake server has
recorded the SMS naming that resident (polled every millisecond). The background keeps
running while the presses go on; a backlog it builds up at rates above what the routine
lane drains stays queued at the broker (which is the point: the SOS must not wait there).
The table is printed and written into docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import aiomqtt

from bench.common import median, percentile, settings_with_fake_twilio, write_section
from gateway.app import Gateway
from gateway.events import EventKind
from gateway.ingest import RoutedEvent
from gateway.register.apply import apply_provisioning
from gateway.register.provisioning import parse_provisioning
from gateway.storage.db import migrate
from tests.fakes.fake_twilio import FakeTwilio
from tests.helpers import register_yaml
from tests.services import mosquitto, scratch_pg_database

HEADING = "## SOS latency under background load, emergency lane (issue #15)"
#: Homes whose motion sensors make the background (one mosquitto_pub each).
_BACKGROUND_HOMES = 8
_TICK = 0.01


class Background:
    """Motion reports at a fixed rate from ``mosquitto_pub -l`` processes we pace."""

    def __init__(self, port: int, topics: list[str], rate: float) -> None:
        self.rate = rate
        self.sent = 0
        self._stop = threading.Event()
        self._procs = [
            subprocess.Popen(
                ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-q", "1", "-l", "-t", t],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for t in topics
        ]
        self._thread = threading.Thread(target=self._pace, daemon=True)
        self.started = time.perf_counter()
        self._thread.start()

    def _pace(self) -> None:
        lines = [b'{"type":"motion","state":true}\n', b'{"type":"motion","state":false}\n']
        while not self._stop.is_set():
            whole = int(self.rate * (time.perf_counter() - self.started)) - self.sent
            for n in range(whole):
                proc = self._procs[(self.sent + n) % len(self._procs)]
                assert proc.stdin is not None
                proc.stdin.write(lines[n % 2])
            for proc in self._procs:
                assert proc.stdin is not None
                proc.stdin.flush()
            self.sent += whole
            time.sleep(_TICK)

    def achieved(self) -> float:
        return self.sent / (time.perf_counter() - self.started)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for proc in self._procs:
            assert proc.stdin is not None
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.close()
        for proc in self._procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


@contextlib.contextmanager
def background(port: int, topics: list[str], rate: float) -> Iterator[Background | None]:
    if rate <= 0:
        yield None
        return
    load = Background(port, topics, rate)
    try:
        yield load
    finally:
        load.stop()


@dataclass
class Level:
    """One background rate's outcome: milliseconds per press, and the rate achieved."""

    to_rules: list[float] = field(default_factory=list)
    to_sms: list[float] = field(default_factory=list)
    achieved: float = 0.0


async def press_and_wait(
    client: aiomqtt.Client, twilio: FakeTwilio, handed: dict[str, float], prefix: str, person: int
) -> tuple[float, float]:
    """Person ``person`` of the bench's register presses SOS: (publish → stored and handed
    to the rules, publish → SMS request) in ms."""
    uid = f"{prefix}-p{person}-sos"
    topic = f"{prefix}/homewatch/{uid}/event"
    name = f"老人{person}"
    marker = f"{name}于"
    started = time.perf_counter()
    await client.publish(topic, f'{{"type": "sos", "id": "{uid}"}}', qos=1)
    deadline = started + 30
    while not any(marker in m.get("Body", "") for m in twilio.messages):
        if time.perf_counter() > deadline:
            # Never arrived: counts against p99, never hidden.
            return (handed.get(uid, math.inf) - started) * 1000, math.inf
        await asyncio.sleep(0.001)
    sms = time.perf_counter()
    return (handed.get(uid, math.inf) - started) * 1000, (sms - started) * 1000


def record_handed(gateway: Gateway, handed: dict[str, float]) -> None:
    """Note when each SOS is handed to the rules (stored and committed), by device."""
    rules = gateway.runner.on_events

    async def on_events(events: Sequence[RoutedEvent]) -> None:
        now = time.perf_counter()
        for routed in events:
            if routed.event.kind is EventKind.SOS:
                handed.setdefault(routed.event.device_uid, now)
        await rules(events)

    gateway.ingest.on_events = on_events
    gateway.emergency_ingest.on_events = on_events


async def measure(
    database_url: str, port: int, rates: list[float], presses: int
) -> dict[float, Level]:
    prefix = f"lat{uuid.uuid4().hex[:6]}"
    os.environ["HW_TEST_ADMIN_PASSWORD"] = "correct-horse-battery"
    residents = presses * len(rates)
    results: dict[float, Level] = {}
    handed: dict[str, float] = {}
    with FakeTwilio() as twilio:
        settings = settings_with_fake_twilio(
            database_url, prefix, twilio, mqtt_url=f"mqtt://127.0.0.1:{port}"
        )
        await migrate(database_url)
        gateway = Gateway(settings, "l" * 32)
        record_handed(gateway, handed)
        await apply_provisioning(
            gateway.db,
            parse_provisioning(register_yaml(prefix, persons=residents + _BACKGROUND_HOMES)),
            datetime.now(UTC),
        )
        stop = asyncio.Event()
        task = asyncio.create_task(gateway.run(stop, run_migrations=False, serve_api=False))
        while not (gateway.ingest.connected and gateway.emergency_ingest.connected):
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        noise = [
            f"{prefix}/homewatch/{prefix}-p{residents + n}-pir/event"
            for n in range(_BACKGROUND_HOMES)
        ]
        async with aiomqtt.Client("127.0.0.1", port) as client:
            for level, rate in enumerate(rates):
                with background(port, noise, rate) as load:
                    await asyncio.sleep(2.0)
                    outcome = Level()
                    for n in range(presses):
                        person = level * presses + n
                        to_rules, to_sms = await press_and_wait(
                            client, twilio, handed, prefix, person
                        )
                        outcome.to_rules.append(to_rules)
                        outcome.to_sms.append(to_sms)
                        await asyncio.sleep(0.05)
                    outcome.achieved = load.achieved() if load else 0.0
                results[rate] = outcome
                print(f"  background {rate:,.0f}/s: {outcome}", flush=True)
        stop.set()
        await asyncio.wait_for(task, 120)
    return results


def _table(all_results: dict[str, dict[float, Level]], presses: int) -> str:
    lines = [
        "| database | background (target → published) | SMS p50 | SMS p99 | SMS max "
        "| stored+rules p50 | stored+rules p99 | late > 10 s |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for database, results in all_results.items():
        for rate, level in results.items():
            label = "idle" if rate <= 0 else f"{rate:,.0f}/s → {level.achieved:,.0f}/s"
            sms = level.to_sms
            late = sum(1 for v in sms if v > 10_000)
            lines.append(
                f"| {database} | {label} | {median(sms):.0f} ms | "
                f"{percentile(sms, 0.99):.0f} ms | {max(sms):.0f} ms | "
                f"{median(level.to_rules):.0f} ms | {percentile(level.to_rules, 0.99):.0f} ms "
                f"| {late} |"
            )
    return "\n".join(lines) + (
        f"\n\n{presses} SOS presses per level, one after another (50 ms apart), each from a "
        "different resident. SMS: publish → the helper's SMS request recorded by the fake "
        "Twilio. Stored+rules: publish → the SOS stored, committed and handed to the rules "
        "(the ingest's share; the rest is raising the alert and the outbox sending). "
        "The background is QoS 1 native motion from 8 other homes, published by "
        "`mosquitto_pub -l` processes paced in 10 ms steps; levels run in this order in one "
        "gateway process, so a backlog left by one level is still draining in the next. "
        "Shared 2-core machine (load from other work): compare within a run."
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--presses", type=int, default=40)
    parser.add_argument("--rates", default="0,1000,3000,5000")
    parser.add_argument("--databases", default="postgresql,sqlite")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",")]
    all_results: dict[str, dict[float, Level]] = {}
    for database in args.databases.split(","):
        print(database, flush=True)
        with mosquitto() as port:
            if database == "sqlite":
                with tempfile.TemporaryDirectory() as tmp:
                    url = f"sqlite+aiosqlite:///{tmp}/lat.db"
                    all_results[database] = asyncio.run(measure(url, port, rates, args.presses))
            else:
                with scratch_pg_database("hwlat") as url:
                    all_results[database] = asyncio.run(measure(url, port, rates, args.presses))
    table = _table(all_results, args.presses)
    print(table)
    if not args.no_write:
        command = (
            f".venv/bin/python -m bench.bench_sos_latency --presses {args.presses} "
            f"--rates {args.rates} --databases {args.databases}"
        )
        write_section(HEADING, command, table)


if __name__ == "__main__":
    main()
