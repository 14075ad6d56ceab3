"""Learned routines warmed from the stored history: a home newly under learned routines
(or any after a restart) starts from its events, judged the way the ingest judges them
(door changes only, ignored devices left out), its absences and its alerts.

A county's month is tens of millions of reports: they are read a batch at a time and the
event loop runs between batches, so the warm-up neither holds the month in memory nor keeps
the ingest waiting (see docs/BENCHMARKS.md, "Learned routines: rebuild at start")."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection
from datetime import date, datetime
from zoneinfo import ZoneInfo

from alerts.types import AlertType
from gateway.config import RulesConfig
from gateway.events import EventKind
from gateway.rules.routine import RoutineModel
from gateway.storage import rules_queries as q
from gateway.storage.db import Database

__all__ = ["PendingRoutine", "learn_history", "sign_of_life"]

_DOOR, _MOTION, _CHECK_IN = EventKind.DOOR.value, EventKind.MOTION.value, EventKind.CHECK_IN.value


def sign_of_life(kind: str, state: bool | None, *, door_changed: bool) -> bool:
    """:func:`gateway.rules.sensors.is_sign_of_life` on a stored row's kind and state,
    without building a SensorEvent for each of a month's rows (a test holds them equal)."""
    if kind == _DOOR:
        return door_changed
    if kind == _MOTION:
        return state is not False
    return kind == _CHECK_IN


class PendingRoutine:
    """A home's learned routine while it warms from the history: what the live gateway
    tells the model meanwhile (signs of life, emergency days, censored and excluded
    silences) is kept, and handed to the model once it is built."""

    def __init__(self) -> None:
        self._calls: list[Callable[[RoutineModel], None]] = []

    def observe(self, at: datetime, *, left_home: bool, where: str | None = None) -> None:
        def replay(model: RoutineModel) -> None:
            # The history may already hold it (stored before its last batch was read).
            if model.last_at is None or at > model.last_at:
                model.observe(at, left_home=left_home, where=where)

        self._calls.append(replay)

    def exclude_day(self, day: date) -> None:
        self._calls.append(lambda model: model.exclude_day(day))

    def censor(self, at: datetime) -> None:
        self._calls.append(lambda model: model.censor(at))

    def exclude(self, start: datetime, end: datetime) -> None:
        self._calls.append(lambda model: model.exclude(start, end))

    def hand_to(self, model: RoutineModel) -> RoutineModel:
        for call in self._calls:
            call(model)
        return model


async def learn_history(
    db: Database,
    tz: ZoneInfo,
    rules_for: Callable[[int], RulesConfig],
    person_ids: set[int],
    now: datetime,
) -> dict[int, RoutineModel]:
    models = {pid: RoutineModel(tz, rules_for(pid).inactivity.learned) for pid in person_ids}
    since = now - max(m.rule.history for m in models.values())
    async with db.session() as session:
        away = await q.history_away(session, person_ids, since)
        alerts = await q.history_alerts(session, person_ids, since)
    for person_id, starts_at, ends_at in away:
        models[person_id].exclude(starts_at, ends_at)
    censors: dict[int, list[datetime]] = {}
    for person_id, alert_type, raised_at in alerts:
        if alert_type in (AlertType.SOS.value, AlertType.FALL.value):
            models[person_id].exclude_day(raised_at.astimezone(tz).date())
        elif alert_type == AlertType.INACTIVITY.value:
            censors.setdefault(person_id, []).append(raised_at)
    doors: dict[str, bool | None] = {}
    ignored: dict[int, Collection[str]] = {}
    async for batch in q.history_events(db, person_ids, since):
        for owner, uid, kind, state, occurred_at, received_at in batch:
            changed = False
            if kind == _DOOR and state is not None:
                changed = doors.get(uid) != state
                doors[uid] = state
            if not sign_of_life(kind, state, door_changed=changed):
                continue
            skip = ignored.get(owner)
            if skip is None:
                skip = ignored[owner] = rules_for(owner).inactivity.ignore_devices
            if uid in skip:
                continue
            model = models[owner]
            at = min(occurred_at, received_at)
            pending = censors.get(owner)
            while pending and pending[0] <= at:
                model.censor(pending.pop(0))
            model.observe(at, left_home=kind == _DOOR, where=uid)
        # The ingest (an SOS above all) goes on between batches.
        await asyncio.sleep(0)
    return models
