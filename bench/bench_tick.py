"""Cost of one rules tick with no home due, at 1k and 30k homes (issue 15).

Builds each town straight into a fresh, migrated database (bulk inserts: persons, three
devices each with their state, everybody active an hour ago, so nobody is due for hours),
then times the runners' ticks (the towns taking turns in one process) on manual clocks
advanced 5 s per tick, as `homewatch run` ticks. Also times the resynchronisation tick
(every home judged), which the runner does at start and every ``resync_seconds`` (5 min),
and which is what every tick cost before the due index.

    .venv/bin/python -m bench.bench_tick --homes 1000 --homes 30000 --ticks 40
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import event, insert

from alerts.notifiers import ConsoleNotifier
from bench.common import median
from gateway.app import Gateway
from gateway.clock import ManualClock
from gateway.config import load_settings
from gateway.storage.db import Database, migrate
from gateway.storage.models import Device, DeviceState, Person, Village
from tests.services import scratch_pg_database

#: 10:00 in the town: the day window, nobody due before 13:00.
START = datetime(2026, 3, 10, 2, 0, tzinfo=UTC)
KINDS = ("motion", "door", "sos")
BATCH = 5000
BENCHMARKS = Path(__file__).resolve().parent.parent / "docs" / "BENCHMARKS.md"
HEADING = "## Rules tick cost at 1k and 30k homes (issue 15)"


@dataclass(frozen=True)
class Result:
    database: str
    homes: int
    idle_ms: float
    idle_min_ms: float
    statements: float
    homes_read: int
    resync_ms: float
    build_s: float


async def _bulk(db: Database, model: Any, rows: list[dict[str, Any]]) -> None:
    for start in range(0, len(rows), BATCH):
        async with db.session() as session, session.begin():
            await session.execute(insert(model), rows[start : start + BATCH])


async def build_town(db: Database, homes: int) -> None:
    active = START - timedelta(hours=1)
    async with db.session() as session, session.begin():
        session.add(Village(id=1, name="坝芒村"))
    await _bulk(
        db,
        Person,
        [
            {
                "id": n,
                "name": f"老人{n}",
                "gender": "女",
                "id_number": f"5201{n:014d}",
                "id_number_bidx": f"5201{n:014d}",
                "village_id": 1,
                "categories": [],
                "care_level": "regular",
                "rules_override": {},
                "last_activity_at": active,
                "created_at": START - timedelta(days=30),
                "updated_at": START - timedelta(days=30),
            }
            for n in range(1, homes + 1)
        ],
    )
    devices = [
        {
            "id": (n - 1) * len(KINDS) + k + 1,
            "uid": f"h{n}-{kind}",
            "person_id": n,
            "kind": kind,
            "protocol": "native",
            "topic": f"homewatch/h{n}-{kind}",
        }
        for n in range(1, homes + 1)
        for k, kind in enumerate(KINDS)
    ]
    await _bulk(db, Device, devices)
    await _bulk(
        db,
        DeviceState,
        [
            {
                "device_id": d["id"],
                "online": True,
                "last_seen_at": active,
                "battery": 90,
                "door_open": False if d["kind"] == "door" else None,
                "door_changed_at": active if d["kind"] == "door" else None,
            }
            for d in devices
        ],
    )


@dataclass
class _Town:
    homes: int
    gateway: Gateway
    clock: ManualClock
    build_s: float
    resync_ms: float = 0.0
    costs: list[float] = field(default_factory=list)
    statements: list[str] = field(default_factory=list)


async def _open_town(url: str, homes: int) -> _Town:
    await migrate(url)
    settings = load_settings(database_url=url, secret_key="t" * 32)
    clock = ManualClock(START)
    gateway = Gateway(settings, "t" * 32, clock=clock, notifier=ConsoleNotifier())
    started = time.perf_counter()
    await build_town(gateway.db, homes)
    town = _Town(homes, gateway, clock, time.perf_counter() - started)
    runner = gateway.runner
    started = time.perf_counter()
    await runner.tick()  # the first tick synchronises: every home judged
    town.resync_ms = (time.perf_counter() - started) * 1000
    assert len(runner.due) == homes, "every home has a next-due instant"
    # The periodic resynchronisation is timed above; keep it out of the idle ticks.
    runner.resync = timedelta(days=1)

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        town.statements.append(statement)

    event.listen(gateway.db.engine.sync_engine, "before_cursor_execute", record)
    return town


async def measure(database: str, urls: dict[int, str], ticks: int) -> list[Result]:
    """The towns tick in turn, in one process, so the machine's load falls on each alike."""
    towns = [await _open_town(url, homes) for homes, url in urls.items()]
    try:
        for _ in range(ticks):
            for town in towns:
                town.clock.advance(5)
                started = time.perf_counter()
                await town.gateway.runner.tick()
                town.costs.append((time.perf_counter() - started) * 1000)
    finally:
        for town in towns:
            await town.gateway.db.dispose()
    return [
        Result(
            database,
            town.homes,
            median(town.costs),
            min(town.costs),
            len(town.statements) / ticks,
            sum("FROM persons" in s or "FROM devices" in s for s in town.statements),
            town.resync_ms,
            town.build_s,
        )
        for town in towns
    ]


def write_table(results: list[Result], command: str) -> None:
    rows = "\n".join(
        f"| {r.database} | {r.homes:,} | {r.idle_ms:.2f} ms | {r.idle_min_ms:.2f} ms "
        f"| {r.statements:.0f} | {r.homes_read} | {r.resync_ms:,.0f} ms |"
        for r in results
    )
    ratios = ", ".join(
        f"{db} {big.idle_ms / small.idle_ms:.2f} (median), "
        f"{big.idle_min_ms / small.idle_min_ms:.2f} (minimum)"
        for db in dict.fromkeys(r.database for r in results)
        for small, big in [
            (
                min((r for r in results if r.database == db), key=lambda r: r.homes),
                max((r for r in results if r.database == db), key=lambda r: r.homes),
            )
        ]
    )
    section = f"""{HEADING}

```sh
{command}
```

Each town built by bulk inserts into a fresh migrated database (three devices per home, all
active an hour before, so no home is due); the rules runner of a real `Gateway` per town
ticks on a manual clock advanced 5 s per tick, the towns of one database taking turns in
one process so that the machine's load falls on each alike. "Idle" ticks have no home due:
the runner reads only what changed (new events by id, active alerts by status, absences,
emergency mode) and pops the due index. "Resync tick" judges every home; the runner does it
at start and every 5 minutes, in batches of 250 homes that yield to the event loop (so the
ingest and an SOS get in between). Before the due index every 5-second tick read every
person and device and judged every home, as the resync does (not measured separately here).

| database | homes | idle p50 | idle min | SQL per idle tick | home reads (idle) | resync tick |
| --- | --- | --- | --- | --- | --- | --- |
{rows}

Idle tick ratio largest/smallest town: {ratios}. One run on the shared 2-core machine
(other engineers' suites running), so single figures are noisy; the ratio is what matters.
The idle tick is the same statements and no home read at either size.
"""
    text = BENCHMARKS.read_text(encoding="utf-8")
    pattern = re.compile(rf"^{re.escape(HEADING)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _m: section, text)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    BENCHMARKS.write_text(text, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--homes", type=int, action="append")
    parser.add_argument("--ticks", type=int, default=200)
    parser.add_argument("--no-write", action="store_true", help="print, leave the docs alone")
    args = parser.parse_args()
    sizes = args.homes or [1000, 30000]
    results: list[Result] = []
    with tempfile.TemporaryDirectory() as tmp:
        urls = {n: f"sqlite+aiosqlite:///{tmp}/tick{n}.db" for n in sizes}
        results += asyncio.run(measure("SQLite", urls, args.ticks))
    with contextlib.ExitStack() as stack:
        urls = {n: stack.enter_context(scratch_pg_database("hwtick")) for n in sizes}
        results += asyncio.run(measure("PostgreSQL", urls, args.ticks))
    results.sort(key=lambda r: (r.database, r.homes))
    for r in results:
        print(
            f"{r.database} {r.homes} homes: idle tick {r.idle_ms:.2f} ms "
            f"(min {r.idle_min_ms:.2f} ms, {r.statements:.0f} statements, "
            f"{r.homes_read} home reads), "
            f"resync tick {r.resync_ms:.0f} ms (built in {r.build_s:.0f} s)"
        )
    if not args.no_write:
        command = (
            ".venv/bin/python -m bench.bench_tick "
            + " ".join(f"--homes {n}" for n in sizes)
            + f" --ticks {args.ticks}"
        )
        write_table(results, command)


if __name__ == "__main__":
    main()
