"""Learned routines warmed from the stored history: a home newly under learned routines
(or any after a restart) starts from its events, judged the way the ingest judges them
(door changes only, ignored devices left out), its absences and its alerts."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

from alerts.types import AlertType
from gateway.config import RulesConfig
from gateway.events import EventKind, SensorEvent
from gateway.rules.routine import RoutineModel
from gateway.rules.sensors import is_sign_of_life
from gateway.storage import rules_queries as q
from gateway.storage.db import Database

__all__ = ["learn_history"]


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
        events = await q.history_events(session, person_ids, since)
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
    for owner, uid, kind, state, occurred_at, received_at in events:
        if owner is None:
            continue
        event = SensorEvent(EventKind(kind), uid, occurred_at, received_at, state)
        changed = False
        if event.kind is EventKind.DOOR and state is not None:
            changed = doors.get(uid) != state
            doors[uid] = state
        ignored = rules_for(owner).inactivity.ignore_devices
        if uid in ignored or not is_sign_of_life(event, door_changed=changed):
            continue
        model = models[owner]
        at = min(occurred_at, received_at)
        pending = censors.get(owner)
        while pending and pending[0] <= at:
            model.censor(pending.pop(0))
        model.observe(at, left_home=event.kind is EventKind.DOOR, where=uid)
    return models
