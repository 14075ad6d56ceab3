"""What-if beside the live gateway: SOS latency and ingest while a town admin's what-if runs.

Run: .venv/bin/python -m bench.bench_whatif_contention [--homes 100] [--days 35] [--presses 40]

One gateway process on PostgreSQL (both MQTT lanes, its HTTP API, the real twilio client
pointed at the local fake Twilio) whose database holds ``--days`` days of PIR reports from
``--homes`` homes (one report every four minutes from 06:00 to 24:00 town time: about a
million rows for 100 homes and 35 days, written by the database itself with
generate_series). Throughout, ``mosquitto_pub -l`` publishes ``--rate`` motion reports a
second from eight of those homes (routine ingest). Two phases, in this order:

* idle: ``--presses`` residents press SOS one after another (100 ms apart);
* what-if: an admin asks ``GET /api/v1/whatif?days=<days>&mode=learned`` over HTTP (from a
  thread of its own), and while it runs residents press SOS the same way; the phase ends
  when the report has answered or ``--presses`` presses are done, whichever is later.

Per phase: SOS latency from just before ``publish()`` to the SMS request the fake Twilio
records (bench.bench_sos_latency's measure), the background reports stored per second, and
the event loop's longest stall (a task asking for 10 ms sleeps notes how late it wakes).
The what-if's own wall time is given too. The table is printed and written into
docs/BENCHMARKS.md under ``--label`` (before/after a change), beside earlier labels.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiomqtt
import httpx
from sqlalchemy import func, select, text

from bench.bench_sos_latency import background, press_and_wait, record_handed
from bench.common import median, percentile, settings_with_fake_twilio
from gateway.app import Gateway
from gateway.register.apply import apply_provisioning
from gateway.register.provisioning import parse_provisioning
from gateway.storage.db import Database, migrate
from gateway.storage.models import Event
from tests.fakes.fake_twilio import FakeTwilio
from tests.helpers import register_yaml
from tests.services import free_port, mosquitto, scratch_pg_database

HEADING = "## What-if beside the live gateway"
PASSWORD = "correct-horse-battery"
_NOISE_HOMES = 8
_GAP = 0.1
#: Presses at most while one what-if runs (more residents make the register, and so the
#: what-if itself, bigger).
_MOST_DURING = 200


@dataclass
class Phase:
    sms: list[float] = field(default_factory=list)
    stored_per_s: float = 0.0
    worst_stall_ms: float = 0.0
    seconds: float = 0.0
    whatif_s: float | None = None
    whatif_status: str = ""


class StallWatch:
    """The event loop's longest lateness waking from a 10 ms sleep, since the last reset."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._stop = False

    async def run(self) -> None:
        while not self._stop:
            asked = time.perf_counter()
            await asyncio.sleep(0.01)
            self.worst = max(self.worst, time.perf_counter() - asked - 0.01)

    def reset(self) -> None:
        self.worst = 0.0

    def stop(self) -> None:
        self._stop = True


async def seed_events(database_url: str, prefix: str, homes: int, days: int) -> int:
    """``days`` days of occupancy/clearing pairs every 4 minutes, 06:00–24:00 town time, for
    the PIRs of persons 0..homes-1; written by PostgreSQL itself (seconds, not minutes)."""
    db = Database(database_url)
    try:
        async with db.engine.begin() as connection:
            await connection.execute(
                text(
                    """
                    INSERT INTO events (device_uid, person_id, kind, state, occurred_at,
                        received_at, event_id, dedup_key, retained, timestamp_fallback)
                    SELECT :prefix || '-p' || h || '-pir', NULL, 'motion', (s % 2 = 0),
                        t, t, 'w' || s, 'w' || s, false, false
                    FROM generate_series(0, :homes - 1) AS h,
                         generate_series(now() - make_interval(days => :days),
                                         now() - interval '5 minutes',
                                         interval '4 minutes')
                             WITH ORDINALITY AS g(t, s)
                    WHERE extract(hour FROM t AT TIME ZONE 'Asia/Shanghai') >= 6
                    """
                ),
                {"prefix": prefix, "homes": homes, "days": days},
            )
            await connection.execute(text("ANALYZE events"))
        async with db.session() as session:
            return int((await session.execute(select(func.count(Event.id)))).scalar_one())
    finally:
        await db.dispose()


async def _stored(db: Database, prefix: str) -> int:
    """Background reports stored so far (the noise homes' PIRs, live ones only)."""
    async with db.session() as session:
        count = await session.execute(
            select(func.count(Event.id)).where(
                Event.device_uid.in_([f"{prefix}-p{n}-pir" for n in range(_NOISE_HOMES)]),
                Event.event_id.is_(None),
            )
        )
        return int(count.scalar_one())


def _ask_what_if(base_url: str, days: int, outcome: Phase, done: threading.Event) -> None:
    """The admin's browser: its own thread and client, so that its waiting is not ours."""
    try:
        with httpx.Client(base_url=base_url, timeout=900) as client:
            token = client.post(
                "/api/v1/auth/token", data={"username": "admin", "password": PASSWORD}
            ).json()["access_token"]
            started = time.perf_counter()
            response = client.get(
                "/api/v1/whatif",
                params={"days": days, "mode": "learned"},
                headers={"Authorization": f"Bearer {token}"},
            )
            outcome.whatif_s = time.perf_counter() - started
            homes = len(response.json().get("homes", [])) if response.is_success else 0
            outcome.whatif_status = f"{response.status_code}, {homes} homes"
    except Exception as error:  # noqa: BLE001 - a failed report is a result, printed as such
        outcome.whatif_status = f"failed: {error!r}"
    finally:
        done.set()


async def _presses(
    client: aiomqtt.Client,
    twilio: FakeTwilio,
    handed: dict[str, float],
    prefix: str,
    first: int,
    count: int,
) -> list[float]:
    latencies = []
    for person in range(first, first + count):
        _, sms = await press_and_wait(client, twilio, handed, prefix, person)
        latencies.append(sms)
        await asyncio.sleep(_GAP)
    return latencies


async def measure(
    database_url: str, port: int, homes: int, days: int, presses: int, rate: float
) -> tuple[dict[str, Phase], int]:
    prefix = f"wi{uuid.uuid4().hex[:6]}"
    os.environ["HW_TEST_ADMIN_PASSWORD"] = PASSWORD
    # Presses come from residents after the homes with history, one resident per press:
    # ``presses`` idle, then up to _MOST_DURING while the what-if runs.
    press_residents = presses + _MOST_DURING
    api_port = free_port()
    with FakeTwilio() as twilio:
        settings = settings_with_fake_twilio(
            database_url,
            prefix,
            twilio,
            mqtt_url=f"mqtt://127.0.0.1:{port}",
            api_port=api_port,
            public_url=f"http://127.0.0.1:{api_port}",
            # The report must finish to be measured, whatever else loads the shared box.
            whatif_timeout=timedelta(minutes=30),
        )
        await migrate(database_url)
        gateway = Gateway(settings, "l" * 32)
        handed: dict[str, float] = {}
        record_handed(gateway, handed)
        await apply_provisioning(
            gateway.db,
            parse_provisioning(register_yaml(prefix, persons=homes + press_residents)),
            datetime.now(UTC),
        )
        seeded = await seed_events(database_url, prefix, homes, days)
        print(f"  {seeded:,} stored events", flush=True)
        stop = asyncio.Event()
        task = asyncio.create_task(gateway.run(stop, run_migrations=False))
        while not (gateway.ingest.connected and gateway.emergency_ingest.connected):
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        watch = StallWatch()
        watcher = asyncio.create_task(watch.run())
        noise = [f"{prefix}/homewatch/{prefix}-p{n}-pir/event" for n in range(_NOISE_HOMES)]
        phases: dict[str, Phase] = {}
        async with aiomqtt.Client("127.0.0.1", port) as client:
            with background(port, noise, rate):
                await asyncio.sleep(2.0)
                for name in ("idle", "what-if"):
                    phase = Phase()
                    done = threading.Event()
                    stored = await _stored(gateway.db, prefix)
                    watch.reset()
                    started = time.perf_counter()
                    first = homes + (presses if phases else 0)
                    if name == "idle":
                        done.set()
                    else:
                        threading.Thread(
                            target=_ask_what_if,
                            args=(settings.public_url, days, phase, done),
                            daemon=True,
                        ).start()
                    phase.sms = await _presses(client, twilio, handed, prefix, first, presses)
                    while not done.is_set() and len(phase.sms) < _MOST_DURING:
                        phase.sms += await _presses(
                            client, twilio, handed, prefix, first + len(phase.sms), 1
                        )
                    while not done.is_set():
                        await asyncio.sleep(0.1)
                    phase.seconds = time.perf_counter() - started
                    phase.worst_stall_ms = watch.worst * 1000
                    phase.stored_per_s = (
                        await _stored(gateway.db, prefix) - stored
                    ) / phase.seconds
                    phases[name] = phase
                    print(f"  {name}: {_row(name, phase)}", flush=True)
        watch.stop()
        await watcher
        stop.set()
        await asyncio.wait_for(task, 120)
    return phases, seeded


def _row(name: str, phase: Phase) -> str:
    sms = phase.sms
    late = sum(1 for v in sms if v > 1000)

    def ms(value: float) -> str:
        # An SMS still missing after 30 s is counted as never (bench_sos_latency's wait).
        return "none in 30 s" if math.isinf(value) else f"{value:.0f} ms"

    whatif = "–" if phase.whatif_s is None else f"{phase.whatif_s:.0f} s ({phase.whatif_status})"
    return (
        f"| {name} | {len(sms)} | {ms(median(sms))} | {ms(percentile(sms, 0.99))} | "
        f"{ms(max(sms))} | {late} | {phase.stored_per_s:,.0f}/s | "
        f"{phase.worst_stall_ms:,.0f} ms | {whatif} |"
    )


def _table(label: str, phases: dict[str, Phase], seeded: int, args: argparse.Namespace) -> str:
    load = os.getloadavg()
    lines = [
        f"### {label}",
        "",
        f"`.venv/bin/python -m bench.bench_whatif_contention --homes {args.homes} "
        f"--days {args.days} --presses {args.presses} --rate {args.rate:g} "
        f"--label '{label}'` — {seeded:,} stored events, load average before the run "
        f"{args.load_before:.1f}, after {load[0]:.1f} (2 cores, shared).",
        "",
        "| phase | SOS presses | SMS p50 | SMS p99 | SMS max | SMS > 1 s | background stored "
        "| longest loop stall | what-if took |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    lines += [_row(name, phase) for name, phase in phases.items()]
    return "\n".join(lines)


def write(label: str, table: str) -> None:
    """This label's table in the section (replacing an earlier one of the same label)."""
    path = Path(__file__).resolve().parent.parent / "docs" / "BENCHMARKS.md"
    doc = path.read_text(encoding="utf-8")
    if HEADING not in doc:
        doc = doc.rstrip("\n") + f"\n\n{HEADING}\n"
    before, _, section = doc.partition(HEADING)
    end = section.find("\n## ")
    rest = section[end:] if end >= 0 else ""
    body = section[:end] if end >= 0 else section
    body = re.sub(rf"\n### {re.escape(label)}\n.*?(?=\n### |\Z)", "", body, flags=re.DOTALL).rstrip(
        "\n"
    )
    path.write_text(f"{before}{HEADING}{body}\n\n{table}\n{rest}", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--homes", type=int, default=100)
    parser.add_argument("--days", type=int, default=35)
    parser.add_argument("--presses", type=int, default=40)
    parser.add_argument("--rate", type=float, default=200.0, help="background reports/s")
    parser.add_argument("--label", default="measured")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    args.load_before = os.getloadavg()[0]
    with mosquitto() as port, scratch_pg_database("hwwhatif") as url:
        phases, seeded = asyncio.run(
            measure(url, port, args.homes, args.days, args.presses, args.rate)
        )
    table = _table(args.label, phases, seeded, args)
    print(table)
    if not args.no_write:
        write(args.label, table)


if __name__ == "__main__":
    main()
