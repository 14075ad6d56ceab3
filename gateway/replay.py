"""Replay (SPEC §12): what the rules would have raised over a recorded event log.

The gateway's own adapters and rules run over the log with a simulated clock; nothing is
sent. The parts, each in its own module and all importable from here:

* :mod:`gateway.replay_input`: the log, the register (a provisioning file loaded into a
  scratch SQLite database, or a running gateway's database with ``--from-db``) and the
  events the adapters make of them;
* :mod:`gateway.replay_engine`: the :class:`Replayer`, the rules over those events a
  simulated minute at a time, with the facts kept in memory;
* this module: whole runs (:func:`replay_events`, :func:`replay_messages`) and
  ``homewatch replay`` itself (:func:`run_replay`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from gateway.config import RulesConfig, Settings
from gateway.events import SensorEvent
from gateway.replay_engine import ReplayAlert, Replayer
from gateway.replay_input import (
    ReplayDevice,
    ReplayError,
    ReplayMessage,
    ReplayPerson,
    ReplayRegister,
    load_register,
    parse_messages,
    read_messages,
    register_from_provisioning,
    stored_events,
)
from gateway.storage.db import Database

__all__ = [
    "ReplayAlert",
    "ReplayDevice",
    "ReplayError",
    "ReplayMessage",
    "ReplayPerson",
    "ReplayRegister",
    "ReplayRequest",
    "Replayer",
    "load_register",
    "local_day_start",
    "parse_messages",
    "read_messages",
    "register_from_provisioning",
    "replay_events",
    "replay_messages",
    "run_replay",
    "stored_events",
]


# -- whole runs ----------------------------------------------------------------------------


def replay_events(
    register: ReplayRegister,
    events: Iterable[tuple[SensorEvent, ReplayDevice]],
    rules: RulesConfig,
    tz: ZoneInfo,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    resolve_after: timedelta | None = timedelta(hours=1),
) -> list[ReplayAlert]:
    """The rules over already-parsed events (a database's stored events, or the adapters'
    output kept to replay it under several configurations)."""
    iterator = iter(events)
    first = next(iterator, None)
    if first is None:
        return []
    replayer = Replayer(
        register, rules, tz, start=start or first[0].received_at, resolve_after=resolve_after
    )
    replayer.feed(*first)
    for event, device in iterator:
        replayer.feed(event, device)
    return replayer.finish(end)


def replay_messages(
    register: ReplayRegister,
    messages: Iterable[ReplayMessage],
    rules: RulesConfig,
    tz: ZoneInfo,
    *,
    resolve_after: timedelta | None = timedelta(hours=1),
) -> list[ReplayAlert]:
    """SPEC §12: recorded MQTT messages through the adapters and the rules."""
    return replay_events(
        register, parse_messages(register, messages), rules, tz, resolve_after=resolve_after
    )


def local_day_start(day: date, tz: ZoneInfo) -> datetime:
    """Local midnight of ``day`` as UTC (``--since`` is a date in the town's time)."""
    return datetime.combine(day, datetime.min.time(), tzinfo=tz).astimezone(UTC)


# -- the command --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReplayRequest:
    """``homewatch replay``'s arguments."""

    output: Path
    register_file: Path | None = None
    events_file: Path | None = None
    from_db: bool = False
    since: date | None = None
    resolve_after: timedelta | None = timedelta(hours=1)


async def run_replay(request: ReplayRequest, settings: Settings) -> list[dict[str, Any]]:
    """Run one replay and write its alerts as JSON lines; returns what was written."""
    tz = settings.tz
    if request.from_db:
        if request.since is None:
            raise ReplayError("--from-db needs --since YYYY-MM-DD")
        db = Database(settings.database_url)
        try:
            register = await load_register(db)
            start = local_day_start(request.since, tz)
            events = await stored_events(db, register, start)
        finally:
            await db.dispose()
        alerts = replay_events(
            register,
            events,
            settings.rules,
            tz,
            start=start,
            resolve_after=request.resolve_after,
        )
    else:
        if request.register_file is None or request.events_file is None:
            raise ReplayError("give --register FILE.yaml and --events FILE.jsonl (or --from-db)")
        try:
            text = request.register_file.read_text(encoding="utf-8")
        except OSError as error:
            raise ReplayError(f"--register: cannot read {request.register_file}: {error}") from None
        register = await register_from_provisioning(text, source=str(request.register_file))
        try:
            with request.events_file.open(encoding="utf-8") as lines:
                alerts = replay_messages(
                    register,
                    read_messages(lines, source=str(request.events_file)),
                    settings.rules,
                    tz,
                    resolve_after=request.resolve_after,
                )
        except OSError as error:
            raise ReplayError(f"--events: cannot read {request.events_file}: {error}") from None
    rows = [alert.to_json(register) for alert in alerts]
    with request.output.open("w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    return rows
