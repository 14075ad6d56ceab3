"""The reads the rules runner needs, each scoped so that an idle tick costs the same
whatever the number of quiet homes: new events by id, active alerts by status (indexed),
and whole-register reads only for a (re)synchronisation."""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from alerts.types import AlertStatus
from gateway.events import EventKind
from gateway.storage.db import Database
from gateway.storage.models import (
    Alert,
    AwayPeriod,
    Device,
    DeviceState,
    EmergencyMode,
    Event,
    Person,
)

__all__ = [
    "ACTIVE",
    "HISTORY_BATCH",
    "ActiveAlertRow",
    "AwayRow",
    "DeviceRow",
    "HistoryRow",
    "PersonRow",
    "active_alerts",
    "away_changes",
    "away_for",
    "closed_at",
    "devices_by_id",
    "emergency_events",
    "event_covered",
    "history_alerts",
    "history_away",
    "history_events",
    "inactivity_factor",
    "last_closed",
    "latest_event_id",
    "motion_runs",
    "persons",
    "persons_with_new_events",
    "watched_register",
]

ACTIVE = (AlertStatus.OPEN.value, AlertStatus.ACKNOWLEDGED.value)
#: Bound parameters per IN list (SQLite and asyncpg both cap them per statement).
CHUNK = 1000


def chunks(ids: Collection[int]) -> Iterator[list[int]]:
    ordered = sorted(ids)
    for start in range(0, len(ordered), CHUNK):
        yield ordered[start : start + CHUNK]


@dataclass(frozen=True, slots=True)
class PersonRow:
    id: int
    created_at: datetime
    last_activity_at: datetime | None
    removed_at: datetime | None
    rules_override: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class DeviceRow:
    id: int
    uid: str
    kind: str
    person_id: int
    online: bool | None
    last_seen_at: datetime | None
    battery: int | None
    door_open: bool | None
    door_changed_at: datetime | None


@dataclass(frozen=True, slots=True)
class ActiveAlertRow:
    id: int
    person_id: int
    type: str
    status: str
    raised_at: datetime


@dataclass(frozen=True, slots=True)
class AwayRow:
    id: int
    person_id: int
    starts_at: datetime
    ends_at: datetime


_AWAY_END = func.coalesce(AwayPeriod.cancelled_at, AwayPeriod.ends_at)
_CLOSED_AT = func.coalesce(Alert.resolved_at, Alert.cancelled_at)


# -- the whole register, on a (re)synchronisation ---------------------------------------


async def watched_register(
    session: AsyncSession,
) -> tuple[dict[int, dict[str, Any] | None], dict[int, list[int]]]:
    """Persons still on the register (with their rules overrides) and their device ids."""
    rows = await session.execute(
        select(Person.id, Person.rules_override).where(Person.removed_at.is_(None))
    )
    overrides: dict[int, dict[str, Any] | None] = dict(rows.all())
    devices: dict[int, list[int]] = {}
    for device_id, person_id in await session.execute(
        select(Device.id, Device.person_id).order_by(Device.id)
    ):
        if person_id in overrides:
            devices.setdefault(person_id, []).append(device_id)
    return overrides, devices


async def motion_runs(session: AsyncSession) -> list[tuple[str, int, datetime, datetime]]:
    """Motion runs going on at a restart: (device uid, person, run start, last seen)."""
    rows = await session.execute(
        select(Device.uid, Device.person_id, DeviceState.motion_since, DeviceState.last_seen_at)
        .join(DeviceState, DeviceState.device_id == Device.id)
        .where(DeviceState.motion_since.is_not(None))
    )
    return [(uid, pid, since, last or since) for uid, pid, since, last in rows if since]


async def last_closed(
    session: AsyncSession, person_ids: Collection[int] | None = None
) -> dict[tuple[int, str], datetime]:
    """When each person's last alert of each type was closed."""
    query = (
        select(Alert.person_id, Alert.type, func.max(_CLOSED_AT))
        .where(Alert.status.not_in(ACTIVE))
        .group_by(Alert.person_id, Alert.type)
    )
    found: dict[tuple[int, str], datetime] = {}
    for ids in [None] if person_ids is None else chunks(person_ids):
        scoped = query if ids is None else query.where(Alert.person_id.in_(ids))
        for pid, alert_type, at in await session.execute(scoped):
            if at is not None:
                found[(pid, alert_type)] = at
    return found


# -- every tick: what changed ---------------------------------------------------------------


async def latest_event_id(session: AsyncSession) -> int:
    return (await session.execute(select(func.max(Event.id)))).scalar_one() or 0


async def persons_with_new_events(session: AsyncSession, after_id: int) -> tuple[set[int], int]:
    """Persons with events stored after ``after_id`` (by the primary key), and the new mark."""
    rows = (
        await session.execute(
            select(Event.person_id, func.max(Event.id))
            .where(Event.id > after_id)
            .group_by(Event.person_id)
        )
    ).all()
    mark = max((top for _pid, top in rows), default=after_id)
    return {pid for pid, _top in rows if pid is not None}, mark


async def active_alerts(session: AsyncSession) -> list[ActiveAlertRow]:
    """Open and acknowledged alerts (by the status index: as many as are being handled)."""
    rows = await session.execute(
        select(Alert.id, Alert.person_id, Alert.type, Alert.status, Alert.raised_at).where(
            Alert.status.in_(ACTIVE)
        )
    )
    return [ActiveAlertRow(*row) for row in rows]


async def closed_at(
    session: AsyncSession, alert_ids: Collection[int]
) -> list[tuple[int, str, datetime]]:
    """(person, type, closed at) of alerts that left the active set."""
    found: list[tuple[int, str, datetime]] = []
    for ids in chunks(alert_ids):
        rows = await session.execute(
            select(Alert.person_id, Alert.type, _CLOSED_AT).where(
                Alert.id.in_(ids), Alert.status.not_in(ACTIVE)
            )
        )
        found.extend((pid, t, at) for pid, t, at in rows if at is not None)
    return found


async def away_changes(session: AsyncSession, since: datetime) -> list[AwayRow]:
    """Absences not over before ``since`` (a short table: marked absences)."""
    rows = await session.execute(
        select(AwayPeriod.id, AwayPeriod.person_id, AwayPeriod.starts_at, _AWAY_END).where(
            since < _AWAY_END
        )
    )
    return [AwayRow(*row) for row in rows]


async def inactivity_factor(session: AsyncSession, now: datetime) -> float:
    mode = (
        await session.execute(
            select(EmergencyMode.inactivity_factor)
            .where(EmergencyMode.started_at <= now, EmergencyMode.ended_at.is_(None))
            .order_by(EmergencyMode.id.desc())
            .limit(1)
        )
    ).scalar_one_or_none()
    return mode if mode is not None else 1.0


# -- the homes being judged ----------------------------------------------------------------


async def persons(session: AsyncSession, person_ids: Collection[int]) -> list[PersonRow]:
    found: list[PersonRow] = []
    for ids in chunks(person_ids):
        rows = await session.execute(
            select(
                Person.id,
                Person.created_at,
                Person.last_activity_at,
                Person.removed_at,
                Person.rules_override,
            ).where(Person.id.in_(ids))
        )
        found.extend(PersonRow(*row) for row in rows)
    return found


async def devices_by_id(session: AsyncSession, device_ids: Collection[int]) -> list[DeviceRow]:
    """Devices and their state, by primary key (in device order)."""
    found: list[DeviceRow] = []
    for ids in chunks(device_ids):
        rows = await session.execute(
            select(
                Device.id,
                Device.uid,
                Device.kind,
                Device.person_id,
                DeviceState.online,
                DeviceState.last_seen_at,
                DeviceState.battery,
                DeviceState.door_open,
                DeviceState.door_changed_at,
            )
            .outerjoin(DeviceState, DeviceState.device_id == Device.id)
            .where(Device.id.in_(ids))
            .order_by(Device.id)
        )
        found.extend(DeviceRow(*row) for row in rows)
    return found


async def away_for(session: AsyncSession, person_ids: Collection[int]) -> list[AwayRow]:
    """Every marked absence of these persons (by the person index)."""
    found: list[AwayRow] = []
    for ids in chunks(person_ids):
        rows = await session.execute(
            select(AwayPeriod.id, AwayPeriod.person_id, AwayPeriod.starts_at, _AWAY_END).where(
                AwayPeriod.person_id.in_(ids)
            )
        )
        found.extend(AwayRow(*row) for row in rows)
    return found


# -- the SOS safety net ---------------------------------------------------------------------


async def emergency_events(
    session: AsyncSession, lower: datetime, upper: datetime
) -> list[tuple[int, str, datetime, str]]:
    """Live SOS/fall presses received in (lower, upper]: (person, kind, last at, device)."""
    rows = await session.execute(
        select(Event.person_id, Event.kind, func.max(Event.received_at), Event.device_uid)
        .where(
            Event.kind.in_([EventKind.SOS.value, EventKind.FALL.value]),
            Event.retained.is_(False),
            Event.person_id.is_not(None),
            Event.received_at > lower,
            Event.received_at <= upper,
        )
        .group_by(Event.person_id, Event.kind, Event.device_uid)
    )
    return [(pid, kind, at, uid) for pid, kind, at, uid in rows if pid is not None]


async def event_covered(
    session: AsyncSession, person_id: int, alert_type: str, received_at: datetime
) -> bool:
    """Has an alert of that type been raised (or re-triggered) since the press?"""
    found = (
        await session.execute(
            select(Alert.id)
            .where(
                Alert.person_id == person_id,
                Alert.type == alert_type,
                or_(Alert.last_trigger_at >= received_at, Alert.raised_at >= received_at),
            )
            .limit(1)
        )
    ).first()
    return found is not None


# -- warming learned routines from history --------------------------------------------------


#: Rows one read of the history returns. Between two reads the event loop runs (the ingest
#: stores and judges); no read holds a month of a county in memory or a transaction open.
HISTORY_BATCH = 20_000

HistoryRow = tuple[int, str, str, bool | None, datetime, datetime]


async def history_events(
    db: Database, person_ids: Collection[int], since: datetime, *, batch: int | None = None
) -> AsyncIterator[list[HistoryRow]]:
    """These persons' activity reports received since ``since``, in the order they were
    received (then stored): (person, device, kind, state, occurred at, received at), a
    batch at a time.

    Motion clearing (``state`` false) is left in the database: it is never a sign of life
    (:func:`gateway.rules.sensors.is_sign_of_life`) and is half of a PIR's reports. Each
    batch is its own short read, resumed after the last (received at, id) by the
    ``received_at`` index, so a month of a county is never sorted or held at once.
    """
    batch = batch or HISTORY_BATCH
    wanted = set(person_ids)
    query = (
        select(
            Event.id,
            Event.person_id,
            Event.device_uid,
            Event.kind,
            Event.state,
            Event.occurred_at,
            Event.received_at,
        )
        .where(
            Event.kind.in_(
                [EventKind.MOTION.value, EventKind.DOOR.value, EventKind.CHECK_IN.value]
            ),
            or_(Event.kind != EventKind.MOTION.value, Event.state.is_not(False)),
            Event.retained.is_(False),
            # Up to CHUNK persons by an IN list; a town-wide warm-up (more ids than a
            # statement may bind) keeps the rows of the persons it warms as they come.
            Event.person_id.in_(sorted(wanted))
            if len(wanted) <= CHUNK
            else Event.person_id.is_not(None),
        )
        .order_by(Event.received_at, Event.id)
        .limit(batch)
    )
    after: tuple[datetime, int] | None = None
    while True:
        scoped = query.where(Event.received_at >= since)
        if after is not None:
            at, last_id = after
            scoped = query.where(
                Event.received_at >= at, or_(Event.received_at > at, Event.id > last_id)
            )
        async with db.session() as session:
            rows = (await session.execute(scoped)).all()
        if not rows:
            return
        last = rows[-1]
        after = (last.received_at, last.id)
        yield [
            (owner, uid, kind, state, occurred, received)
            for _id, owner, uid, kind, state, occurred, received in rows
            if owner in wanted
        ]
        if len(rows) < batch:
            return


async def history_away(
    session: AsyncSession, person_ids: Collection[int], since: datetime
) -> list[tuple[int, datetime, datetime]]:
    found: list[tuple[int, datetime, datetime]] = []
    for ids in chunks(person_ids):
        rows = await session.execute(
            select(AwayPeriod.person_id, AwayPeriod.starts_at, AwayPeriod.ends_at).where(
                AwayPeriod.person_id.in_(ids), AwayPeriod.ends_at >= since
            )
        )
        found.extend((pid, start, end) for pid, start, end in rows)
    return found


async def history_alerts(
    session: AsyncSession, person_ids: Collection[int], since: datetime
) -> list[tuple[int, str, datetime]]:
    """(person, type, raised at), each person's in the order raised."""
    found: list[tuple[int, str, datetime]] = []
    for ids in chunks(person_ids):
        rows = await session.execute(
            select(Alert.person_id, Alert.type, Alert.raised_at)
            .where(Alert.person_id.in_(ids), Alert.raised_at >= since)
            .order_by(Alert.raised_at)
        )
        found.extend((pid, t, at) for pid, t, at in rows)
    return found
