"""What-if (SPEC §12 in the console): the town's own stored events, replayed under other
thresholds, next to the alerts that were actually raised.

"If we had set this threshold last month, how many alarms would we have had?" The replay
(:mod:`gateway.replay`, ``--from-db``) runs the gateway's adapters' stored output and its
rules over the chosen period with a simulated clock and sends nothing; this module adds the
choice of thresholds an officer makes on a form, the warm-up learned routines need, and the
comparison per home with the ``alerts`` table.

Read only: nothing here writes to the database or notifies anybody. Reading a month of a
hundred homes (about a million stored events) and replaying it is about a minute of CPU, and
the gateway's process must never spend it: a thread of that process would hold the GIL
while the MQTT ingest and the escalation of an SOS wait for it. So the whole of it runs in a
child process (:class:`WhatIfRunner`) that opens the database itself, read only, at a lower
CPU priority, and hands back plain counts as JSON; one at a time, stopped after a timeout.
The period is bounded (:data:`MAX_DAYS`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
import threading
import traceback
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import event, select

from alerts.types import AlertType
from gateway.config import RulesConfig
from gateway.register.provisioning import merge_rules
from gateway.replay import load_register, replay_events, stored_events
from gateway.storage.db import Database
from gateway.storage.models import Alert

__all__ = [
    "DEFAULT_TIMEOUT",
    "MAX_DAYS",
    "RUNNER",
    "WhatIfBusyError",
    "WhatIfChoice",
    "WhatIfError",
    "WhatIfFailedError",
    "WhatIfHome",
    "WhatIfResult",
    "WhatIfRunner",
    "WhatIfTimeoutError",
    "child_main",
    "read_only_database",
    "rules_as_data",
    "run_what_if",
]

log = logging.getLogger(__name__)

#: The longest period one what-if replays (a month and a bit).
MAX_DAYS = 35
#: A what-if still running after this is stopped (``whatif_timeout`` in the settings): a
#: month of a hundred homes takes about a minute.
DEFAULT_TIMEOUT = timedelta(minutes=5)
#: The child's CPU priority below the gateway's: on a small box the two share the cores,
#: and the gateway's ingest and escalation come first.
_CHILD_NICENESS = 10
#: The alert types a threshold changes; emergencies and device faults do not depend on them.
THRESHOLD_TYPES = (AlertType.INACTIVITY, AlertType.DOOR_OPEN_NIGHT)


@dataclass(frozen=True, slots=True)
class WhatIfChoice:
    """What the officer picked: fixed quiet hours (None: as configured) or learned
    routines, over the last ``days`` days."""

    days: int = 28
    learned: bool = False
    day_quiet: timedelta | None = None
    night_quiet: timedelta | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.days <= MAX_DAYS:
            raise ValueError(f"days: between 1 and {MAX_DAYS}")
        for name, value in (("day_quiet", self.day_quiet), ("night_quiet", self.night_quiet)):
            if value is not None and not timedelta(minutes=30) <= value <= timedelta(hours=48):
                raise ValueError(f"{name}: between 30 minutes and 48 hours")

    def rules(self, configured: RulesConfig) -> RulesConfig:
        """The configured rules with this choice laid over them."""
        inactivity: dict[str, Any] = {"learned": {"enabled": self.learned}}
        if self.day_quiet is not None:
            inactivity["day"] = {"quiet": _duration(self.day_quiet)}
        if self.night_quiet is not None:
            inactivity["night"] = {"quiet": _duration(self.night_quiet)}
        return merge_rules(configured, {"inactivity": inactivity})


@dataclass(slots=True)
class WhatIfHome:
    person_id: int
    name: str
    village: str
    would: Counter[str] = field(default_factory=Counter)
    actual: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True, slots=True)
class WhatIfResult:
    start: datetime
    end: datetime
    rules: RulesConfig
    homes: list[WhatIfHome]

    def total(self, side: str, alert_type: str) -> int:
        """All homes' count of ``alert_type`` on one side (``would`` or ``actual``)."""
        counts = [home.would if side == "would" else home.actual for home in self.homes]
        return sum(count[alert_type] for count in counts)


async def run_what_if(
    db: Database,
    configured: RulesConfig,
    tz: ZoneInfo,
    choice: WhatIfChoice,
    now: datetime,
    *,
    villages: set[str] | None = None,
    time_limit: timedelta = DEFAULT_TIMEOUT,
    runner: WhatIfRunner | None = None,
) -> WhatIfResult:
    """Replay the last ``choice.days`` days under ``choice`` and compare with what was raised.

    Learned routines learn from ``history`` days before the period (the gateway has them
    stored too), so that the period is judged as a running gateway would have judged it.
    ``villages``: only homes in these villages (None: all). The work is done by a child
    process reading ``db``'s database (:class:`WhatIfRunner`, by default :data:`RUNNER`):
    raises :class:`WhatIfBusyError` while another choice is being replayed,
    :class:`WhatIfTimeoutError` after ``time_limit``, :class:`WhatIfFailedError` when the child
    fails.
    """
    rules = choice.rules(configured)
    start = now - timedelta(days=choice.days)
    warm_up = rules.inactivity.learned.history if choice.learned else timedelta(0)
    request = {
        "database_url": db.url,
        "rules": rules_as_data(rules),
        "tz": tz.key,
        "warm_from": (start - warm_up).isoformat(),
        "start": start.isoformat(),
        "end": now.isoformat(),
    }
    # Two requests are the same what-if when they replay the same days under the same rules
    # (the page fills in the configured hours that the API leaves out).
    same = json.dumps([choice.days, request["rules"]], sort_keys=True)
    answer = await (runner or RUNNER).run(same, choice, request, time_limit)
    homes = [
        WhatIfHome(
            home["person_id"],
            home["name"],
            home["village"],
            Counter(home["would"]),
            Counter(home["actual"]),
        )
        for home in answer["homes"]
        if villages is None or home["village"] in villages
    ]
    ordered = sorted(homes, key=lambda h: (h.village, h.name, h.person_id))
    return WhatIfResult(start, now, rules, ordered)


# -- one at a time, in a child process --------------------------------------------------------


class WhatIfError(Exception):
    """A what-if that gave no result; the message says why, in English, for the API."""


class WhatIfBusyError(WhatIfError):
    """Another what-if (other choices) is running; this process runs one at a time."""

    def __init__(self, running: WhatIfChoice, since: datetime) -> None:
        super().__init__(
            f"another what-if is running (started {since:%H:%M:%S} UTC, last {running.days} "
            "days): try again when it has finished, in about a minute"
        )
        self.running = running
        self.since = since


class WhatIfTimeoutError(WhatIfError):
    def __init__(self, timeout: timedelta) -> None:
        super().__init__(
            f"the what-if was stopped after {timeout.total_seconds():g} s without a result: "
            "choose fewer days, or ask the operator to raise whatif_timeout"
        )
        self.timeout = timeout


class WhatIfFailedError(WhatIfError):
    """The child failed (its last line of stderr, or how it ended)."""


@dataclass(slots=True)
class _Run:
    key: str
    choice: WhatIfChoice
    since: datetime
    task: asyncio.Task[dict[str, Any]]
    waiting: int = 0


class WhatIfRunner:
    """Runs what-ifs in a child process, one at a time per gateway process.

    A request for the choice already running waits for that run and shares its result (an
    admin who reloads the page, or clicks twice, gets the answer on its way rather than a
    refusal); a request for another choice is refused at once with
    :class:`WhatIfBusyError` (two would halve each other's speed and double the memory).
    The run goes on when its requester leaves (the page closed), until done or timed out,
    so a reload finds it. The child is killed at the timeout, when the gateway's event loop
    shuts down (its task is cancelled), and it leaves by itself when the gateway's process
    dies (its stdin closes).
    """

    def __init__(self, command: Sequence[str] | None = None) -> None:
        #: The child's command line; it reads one JSON request line on stdin and writes
        #: one JSON answer on stdout. Tests put a stand-in here.
        self.command = list(
            command or [sys.executable, "-c", "from gateway.whatif import child_main; child_main()"]
        )
        self._run: _Run | None = None
        #: The child's pid while one runs (tests check that a timed-out child is gone).
        self.pid: int | None = None

    @property
    def running(self) -> WhatIfChoice | None:
        run = self._current()
        return None if run is None else run.choice

    @property
    def waiting(self) -> int:
        """Requests waiting for the run under way (0 when none runs)."""
        run = self._current()
        return 0 if run is None else run.waiting

    def _current(self) -> _Run | None:
        run = self._run
        # A run left by an event loop that is gone (tests each have their own) holds nothing.
        if run is not None and (run.task.done() or run.task.get_loop().is_closed()):
            self._run = run = None
        return run

    async def run(
        self, key: str, choice: WhatIfChoice, request: dict[str, Any], time_limit: timedelta
    ) -> dict[str, Any]:
        """The child's answer to ``request``: the run of ``key`` (the same what-if), started
        or joined."""
        run = self._current()
        if run is not None and run.key != key:
            raise WhatIfBusyError(run.choice, run.since)
        if run is None:
            task = asyncio.get_running_loop().create_task(
                self._child(request, time_limit), name="what-if"
            )
            task.add_done_callback(_retrieve)
            run = self._run = _Run(key, choice, datetime.now(UTC), task)
        run.waiting += 1
        try:
            # A requester that goes away does not stop the run (see the class).
            return await asyncio.shield(run.task)
        finally:
            run.waiting -= 1

    async def _child(self, request: dict[str, Any], time_limit: timedelta) -> dict[str, Any]:
        process = await asyncio.create_subprocess_exec(
            *self.command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        self.pid = process.pid
        assert process.stdin is not None
        assert process.stdout is not None
        assert process.stderr is not None
        try:
            # The request goes on stdin, not the command line: the database URL may hold a
            # password. stdin stays open: its end tells the child that the gateway is gone.
            process.stdin.write(json.dumps(request).encode() + b"\n")
            await process.stdin.drain()
            out, err, code = await asyncio.wait_for(
                asyncio.gather(process.stdout.read(), process.stderr.read(), process.wait()),
                time_limit.total_seconds(),
            )
        except TimeoutError:
            log.warning(
                "what-if child %s stopped after %s without a result", process.pid, time_limit
            )
            raise WhatIfTimeoutError(time_limit) from None
        finally:
            if process.returncode is None:
                process.kill()
                # Reaped before the next run may start, so two never overlap.
                await asyncio.shield(process.wait())
            process.stdin.close()
            self.pid = None
        if code != 0:
            # The page tells the officer to have the operator look here.
            log.error("what-if child failed (exit %s):\n%s", code, err.decode(errors="replace"))
            lines = err.decode(errors="replace").strip().splitlines()
            raise WhatIfFailedError(lines[-1] if lines else f"the what-if child exited {code}")
        try:
            answer: dict[str, Any] = json.loads(out)
        except ValueError as error:
            raise WhatIfFailedError(f"the what-if child answered no JSON: {error}") from None
        return answer


def rules_as_data(rules: RulesConfig) -> dict[str, Any]:
    """``rules`` as JSON that :class:`RulesConfig` reads back equal. pydantic's own JSON
    writes clock times as ``06:00:00``, which the configuration (HH:MM) refuses."""

    def plain(value: object) -> object:
        if isinstance(value, time):
            return value.strftime("%H:%M:%S" if value.second else "%H:%M")
        if isinstance(value, timedelta):
            return value.total_seconds()
        raise TypeError(f"not plain data: {value!r}")

    data: dict[str, Any] = json.loads(json.dumps(rules.model_dump(), default=plain))
    return data


def _retrieve(task: asyncio.Task[dict[str, Any]]) -> None:
    """A run whose requesters all left still ends in an exception somebody read."""
    if not task.cancelled():
        task.exception()


#: The gateway process's runner (the API and the console page share it).
RUNNER = WhatIfRunner()


# -- the child ----------------------------------------------------------------------------------


def child_main() -> None:
    """The child process: one request on stdin, the per-home counts on stdout as JSON."""
    with contextlib.suppress(OSError):
        os.nice(_CHILD_NICENESS)
    request = json.loads(sys.stdin.readline())
    threading.Thread(target=_exit_with_parent, daemon=True).start()
    try:
        answer = asyncio.run(_replay(request))
    except Exception as error:  # noqa: BLE001 - whatever it was, the gateway must hear it
        # The traceback for the log, then one line the gateway shows the officer's API.
        traceback.print_exc()
        first = str(error).strip().splitlines()[:1]
        sys.exit(f"{type(error).__name__}: {first[0] if first else ''}")
    sys.stdout.write(json.dumps(answer, ensure_ascii=False))
    sys.stdout.flush()


def _exit_with_parent() -> None:
    """The gateway keeps our stdin open while it waits: its end means nobody waits."""
    sys.stdin.read()
    os._exit(3)


def read_only_database(url: str) -> Database:
    """``url``'s database behind connections that cannot write."""
    db = Database(url)

    def read_only(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        if db.dialect == "sqlite":
            cursor.execute("PRAGMA query_only = ON")
        else:
            cursor.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
        cursor.close()
        # The driver ran that in a transaction of its own, which a rollback would undo.
        dbapi_connection.commit()

    event.listen(db.engine.sync_engine, "connect", read_only)
    return db


async def _replay(request: dict[str, Any]) -> dict[str, Any]:
    """The replay and the count of what was raised, as plain data."""
    rules = RulesConfig.model_validate(request["rules"])
    tz = ZoneInfo(request["tz"])
    warm_from, start, end = (
        datetime.fromisoformat(request[key]) for key in ("warm_from", "start", "end")
    )
    db = read_only_database(request["database_url"])
    try:
        register = await load_register(db)
        events = await stored_events(db, register, warm_from)
        replayed = replay_events(register, events, rules, tz, start=warm_from, end=end)
        del events
        homes = {
            pid: WhatIfHome(pid, person.name, person.village)
            for pid, person in register.persons.items()
        }
        for alert in replayed:
            home = homes.get(alert.person_id)
            if home is not None and alert.raised_at >= start:
                home.would[alert.type.value] += 1
        async with db.session() as session:
            rows = await session.execute(
                select(Alert.person_id, Alert.type).where(
                    Alert.raised_at >= start, Alert.raised_at < end
                )
            )
            for person_id, alert_type in rows:
                home = homes.get(person_id)
                if home is not None:
                    home.actual[alert_type] += 1
    finally:
        await db.dispose()
    return {
        "homes": [
            {
                "person_id": home.person_id,
                "name": home.name,
                "village": home.village,
                "would": dict(home.would),
                "actual": dict(home.actual),
            }
            for home in homes.values()
        ]
    }


def _duration(value: timedelta) -> str:
    minutes = int(value.total_seconds() // 60)
    return f"{minutes}m"
