"""Cost of warming learned routines from history at the gateway's start (issue 15 scale).

Fills a database (a SQLite file and a PostgreSQL database of its own, kept between runs so
that the code before and after a change reads the very same rows) with ``--days`` of
activity for N persons: PIR motion on and off, front-door passages (open, shut) and the
devices' hourly periodic reports (native heartbeats; the zigbee door contact's state
report, which is a door event that changes nothing), 40-80 signs of life a person a day.
The fill is setup, not measured: the drivers' bulk paths (executemany in one
transaction on SQLite with the indexes built after; COPY on PostgreSQL), since Core
executemany filled a few thousand rows a second on the shared bench machine.

Then, in a fresh process per run (so that peak RSS is the rebuild's own), times
:func:`gateway.rules_runner.learning.learn_history` for every person with
``rules.inactivity.learned.enabled`` and ``history: 28d``, and reads the process's RSS
before, its peak (``ru_maxrss``) and after (the models kept), and the longest the event
loop went without running a 5 ms ticker meanwhile (what the ingest would have waited).
``--tracemalloc`` adds one run that attributes the memory the models keep to the source
lines that allocated it.

    .venv/bin/python -m bench.bench_routine_rebuild --persons 1000 --persons 3000 --runs 3

The data stay in ``--data-dir`` (SQLite) and databases ``hw_bench_routine_<N>``
(PostgreSQL) until ``--drop``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import resource
import sqlite3
import subprocess
import sys
import time as clock
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import and_, func, or_, select

from bench.common import median
from gateway.config import RulesConfig, load_settings
from gateway.events import EventKind
from gateway.register.provisioning import merge_rules
from gateway.rules_runner.learning import learn_history
from gateway.storage.db import Database, migrate
from gateway.storage.models import Event
from tests.services import PG_ADMIN_URL

TZ = ZoneInfo("Asia/Shanghai")
#: The gateway starts at 10:00 in the town, the day after the last day of history.
NOW = datetime(2026, 3, 10, 2, 0, tzinfo=UTC)
BATCH = 50_000
HEADING = "## Learned routines: rebuild at start"
MOTION, DOOR, HEARTBEAT = EventKind.MOTION.value, EventKind.DOOR.value, EventKind.HEARTBEAT.value


# -- the data ---------------------------------------------------------------------------------


class _Person:
    """One home's devices and its random generator, carried from day to day."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.rng = random.Random(pid)
        self.pir, self.door = f"h{pid}-pir", f"h{pid}-door"
        devices = [f"h{pid}-sos", self.pir, self.door] + ([f"h{pid}-fall"] if pid % 3 else [])
        #: Each device's periodic report, on its own phase within the hour.
        self.phase = {uid: self.rng.uniform(0, 3600) for uid in devices}
        self.sent = 0

    def day(self, midnight: datetime) -> Iterator[tuple[str, str, bool | None, datetime]]:
        for uid, phase in self.phase.items():
            for hour in range(24):
                at = midnight + timedelta(seconds=hour * 3600 + phase)
                if uid == self.door:
                    yield uid, DOOR, False, at  # the contact's state report: still shut
                else:
                    yield uid, HEARTBEAT, None, at
        yield from _day(self.rng, midnight, self.pir, self.door)


def _day(
    rng: random.Random, midnight: datetime, pir: str, door: str
) -> Iterator[tuple[str, str, bool | None, datetime]]:
    def at(minute: float) -> datetime:
        return midnight + timedelta(minutes=minute)

    def motion(minute: float) -> Iterator[tuple[str, str, bool | None, datetime]]:
        yield pir, MOTION, True, at(minute)
        yield pir, MOTION, False, at(minute + rng.uniform(1.0, 1.5))

    def passage(minute: float) -> Iterator[tuple[str, str, bool | None, datetime]]:
        yield door, DOOR, True, at(minute)
        yield door, DOOR, False, at(minute + rng.uniform(0.1, 0.3))

    if rng.random() < 0.5:  # the night's trip to the toilet
        yield from motion(rng.uniform(60, 240))
    wake, bed = rng.uniform(330, 420), rng.uniform(1230, 1320)
    quiet: list[tuple[float, float, bool]] = []  # (start, end, out of the house)
    if rng.random() < 0.7:
        nap = rng.uniform(770, 840)
        quiet.append((nap, nap + rng.uniform(60, 120), False))
    for window in ((480, 660), (900, 1080)):
        if rng.random() < 0.6:
            out = rng.uniform(*window)
            quiet.append((out, out + rng.uniform(60, 230), True))
    minute = wake
    while minute < bed:
        gap = next(((s, e, o) for s, e, o in quiet if s <= minute < e), None)
        if gap is not None:
            start, end, out = gap
            if out:
                yield from passage(start)
                yield from passage(end)
            minute = end + 0.5
        yield from motion(minute)
        minute += min(45.0, rng.expovariate(1 / 11))


COLUMNS = (
    "device_uid",
    "person_id",
    "kind",
    "state",
    "occurred_at",
    "received_at",
    "dedup_key",
    "retained",
    "timestamp_fallback",
)


def _days(persons: int, days: int) -> Iterator[list[tuple[Any, ...]]]:
    """Day by day, every home's reports of that local day in the order received (the order
    the ingest stores them in, so the table is laid out as a real one is)."""
    homes = [_Person(pid) for pid in range(1, persons + 1)]
    first = (NOW.astimezone(TZ) - timedelta(days=days)).date()
    for offset in range(days + 1):
        # (The town keeps no summer time: its midnight is a fixed UTC instant.)
        midnight = datetime.combine(first + timedelta(days=offset), time.min, TZ).astimezone(UTC)
        rows = []
        for home in homes:
            for uid, kind, state, when in home.day(midnight):
                if when >= NOW:
                    continue
                home.sent += 1
                # A few devices' clocks run fast (occurred after received): the model
                # takes the earlier of the two.
                received = when + timedelta(seconds=0.4 if home.sent % 50 else -3)
                rows.append((uid, home.pid, kind, state, when, received, f"{home.sent}"))
        rows.sort(key=_received)
        yield [(*row, False, False) for row in rows]


def _received(row: tuple[Any, ...]) -> datetime:
    return row[5]  # type: ignore[no-any-return]


def _persons_rows(persons: int, days: int) -> Iterator[list[tuple[Any, ...]]]:
    for day in _days(persons, days):
        for start in range(0, len(day), BATCH):
            yield day[start : start + BATCH]


def _sqlite_time(at: datetime) -> str:
    # As SQLAlchemy's SQLite DateTime stores it (UTCDateTime hands it naive UTC).
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _fill_sqlite(path: str, persons: int, days: int) -> None:
    # The fill is setup: the stdlib driver in one transaction, the secondary indexes built
    # after the rows (the same indexes the migration made).
    connection = sqlite3.connect(path)
    try:
        connection.execute("PRAGMA synchronous=OFF")
        indexes = connection.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events' "
            "AND sql IS NOT NULL"
        ).fetchall()
        for name, _sql in indexes:
            connection.execute(f"DROP INDEX {name}")
        statement = (
            f"INSERT INTO events ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
        )
        for batch in _persons_rows(persons, days):
            connection.executemany(
                statement,
                [
                    (u, p, k, s, _sqlite_time(o), _sqlite_time(r), d, 0, 0)
                    for u, p, k, s, o, r, d, _re, _fb in batch
                ],
            )
        for _name, sql in indexes:
            connection.execute(sql)
        connection.commit()
        connection.execute("ANALYZE")
    finally:
        connection.close()


async def _fill_postgresql(url: str, persons: int, days: int) -> None:
    connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        for batch in _persons_rows(persons, days):
            await connection.copy_records_to_table("events", records=batch, columns=COLUMNS)
    finally:
        await connection.close()


async def fill(url: str, persons: int, days: int) -> None:
    await migrate(url)
    if url.startswith("sqlite"):
        await asyncio.to_thread(_fill_sqlite, url.split("///", 1)[1], persons, days)
    else:
        await _fill_postgresql(url, persons, days)


def _sqlite_url(data_dir: Path, persons: int, days: int) -> str:
    return f"sqlite+aiosqlite:///{data_dir / f'routine-{persons}-{days}d.sqlite'}"


def _pg_name(persons: int, days: int) -> str:
    return f"hw_bench_routine_{persons}_{days}d"


def _pg_admin(sql: str) -> str:
    done = subprocess.run(
        ["psql", f"{PG_ADMIN_URL}/postgres", "-qtA", "-v", "ON_ERROR_STOP=1", "-c", sql],
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout.strip()


def ensure_data(database: str, data_dir: Path, persons: int, days: int) -> str:
    """The database's URL, filled first if it is not there yet."""
    if database == "sqlite":
        data_dir.mkdir(parents=True, exist_ok=True)
        url = _sqlite_url(data_dir, persons, days)
        path = Path(url.split("///", 1)[1])
        done = path.with_suffix(".filled")
        if not done.exists():
            path.unlink(missing_ok=True)
            started = clock.perf_counter()
            asyncio.run(fill(url, persons, days))
            done.write_text(f"{clock.perf_counter() - started:.0f} s\n")
        return url
    name = _pg_name(persons, days)
    url = f"{PG_ADMIN_URL.replace('postgresql://', 'postgresql+asyncpg://')}/{name}"
    if _pg_admin(f"SELECT 1 FROM pg_database WHERE datname = '{name}'") != "1":
        _pg_admin(f"CREATE DATABASE {name}")
        try:
            asyncio.run(fill(url, persons, days))
        except BaseException:
            _pg_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            raise
        _pg_admin(f"COMMENT ON DATABASE {name} IS 'filled'")
        psql = f"{PG_ADMIN_URL}/{name}"
        subprocess.run(["psql", psql, "-qc", "VACUUM ANALYZE events"], check=True)
    elif (
        _pg_admin(
            f"SELECT shobj_description(oid, 'pg_database') FROM pg_database "
            f"WHERE datname = '{name}'"
        )
        != "filled"
    ):
        raise SystemExit(f"{name} was left half filled: run with --drop first")
    return url


async def counts(url: str, days: int) -> dict[str, int]:
    """Rows in the table, rows the history query matches, and the signs of life among them."""
    db = Database(url)
    since = NOW - timedelta(days=days)
    window = and_(
        Event.kind.in_([MOTION, DOOR, EventKind.CHECK_IN.value]),
        Event.retained.is_(False),
        Event.received_at >= since,
    )
    try:
        async with db.session() as session:
            total = (await session.execute(select(func.count()).select_from(Event))).scalar_one()
            matched = (
                await session.execute(select(func.count()).select_from(Event).where(window))
            ).scalar_one()
            motion_on = (
                await session.execute(
                    select(func.count())
                    .select_from(Event)
                    .where(window, or_(Event.kind != MOTION, Event.state.is_not(False)))
                )
            ).scalar_one()
    finally:
        await db.dispose()
    return {"total": total, "matched": matched, "without_motion_clear": motion_on}


# -- one measured rebuild (in its own process) -------------------------------------------------


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def measure(url: str, persons: int, days: int, traced: bool) -> dict[str, Any]:
    settings = load_settings(database_url=url, secret_key="r" * 32, timezone=str(TZ))
    rules: RulesConfig = merge_rules(
        settings.rules,
        {"inactivity": {"learned": {"enabled": True, "history": f"{days}d"}}},
    )
    db = Database(url)
    async with db.session() as session:  # connect (and warm the pool) outside the timing
        await session.execute(select(1))
    gc.collect()
    before = _rss_mb()
    stalls: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        # What an ingest task would see: how long the loop kept it from running.
        last = clock.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.005)
            now = clock.perf_counter()
            stalls.append(now - last - 0.005)
            last = now

    if traced:
        tracemalloc.start(1)
    watcher = asyncio.create_task(ticker())
    started = clock.perf_counter()
    models = await learn_history(db, TZ, lambda _pid: rules, set(range(1, persons + 1)), NOW)
    seconds = clock.perf_counter() - started
    done.set()
    await watcher
    figures: dict[str, Any] = {
        "seconds": seconds,
        "rss_before_mb": before,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "max_stall_ms": max(stalls, default=0.0) * 1000,
        "ready": sum(m.ready(NOW) for m in models.values()),
        "days_kept": sum(len(m._days) for m in models.values()),  # noqa: SLF001
    }
    gc.collect()
    figures["kept_mb"] = _rss_mb() - before
    if traced:
        snapshot = tracemalloc.take_snapshot()
        tracemalloc.stop()
        by_file: dict[str, float] = {}
        for stat in snapshot.statistics("lineno"):
            frame = stat.traceback[0]
            key = f"{Path(frame.filename).name}:{frame.lineno}"
            by_file[key] = by_file.get(key, 0) + stat.size / 2**20
        figures["traced_mb"] = sum(by_file.values())
        figures["traced_top"] = sorted(by_file.items(), key=lambda kv: -kv[1])[:8]
    await db.dispose()
    assert len(models) == persons
    return figures


def _measure_in_child(url: str, persons: int, days: int, traced: bool) -> dict[str, Any]:
    command = [sys.executable, "-m", "bench.bench_routine_rebuild", "--child", url]
    command += ["--persons", str(persons), "--days", str(days)] + (["--traced"] if traced else [])
    done = subprocess.run(command, check=True, capture_output=True, text=True, cwd=os.getcwd())
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# -- the report ---------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--persons", type=int, action="append")
    parser.add_argument("--days", type=int, default=28)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), action="append")
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/hw-bench-routine"))
    parser.add_argument("--label", default="")
    parser.add_argument("--tracemalloc", action="store_true")
    parser.add_argument("--drop", action="store_true", help="remove the data and stop")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--traced", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    population = args.persons or [30_000]
    if args.child:
        figures = asyncio.run(measure(args.child, population[0], args.days, args.traced))
        print(json.dumps(figures))
        return
    args.data_dir.mkdir(parents=True, exist_ok=True)
    databases = args.database or ["sqlite", "postgresql"]
    if args.drop:
        for persons in population:
            for path in args.data_dir.glob(f"routine-{persons}-{args.days}d.*"):
                path.unlink()
            _pg_admin(f"DROP DATABASE IF EXISTS {_pg_name(persons, args.days)} WITH (FORCE)")
        return
    print(f"load average {os.getloadavg()[0]:.2f} {args.label}", flush=True)
    print(
        "| database | persons | rows in table | rows matched | rebuild (median) | peak RSS "
        "| RSS kept | longest loop stall | homes ready |",
        flush=True,
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|", flush=True)
    for database in databases:
        for persons in population:
            url = ensure_data(database, args.data_dir, persons, args.days)
            rows = asyncio.run(counts(url, args.days))
            runs = [_measure_in_child(url, persons, args.days, False) for _ in range(args.runs)]
            print(
                f"| {database} | {persons:,} | {rows['total']:,} | {rows['matched']:,} "
                f"| {median([r['seconds'] for r in runs]):.1f} s "
                f"| {median([r['peak_rss_mb'] for r in runs]):,.0f} MB "
                f"| {median([r['kept_mb'] for r in runs]):,.0f} MB "
                f"| {median([r['max_stall_ms'] for r in runs]):,.0f} ms "
                f"| {runs[0]['ready']:,} |",
                flush=True,
            )
            print(f"<!-- {database} {persons} {json.dumps(runs)} {json.dumps(rows)} -->")
            if args.tracemalloc:
                traced = _measure_in_child(url, persons, args.days, True)
                print(f"<!-- traced {database} {persons} {json.dumps(traced)} -->", flush=True)
    print(f"load average {os.getloadavg()[0]:.2f}", flush=True)


if __name__ == "__main__":
    main()
