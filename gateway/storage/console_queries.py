"""Read queries of the operator console that the API has no equivalent for.

Scoping is the API's: ``village_id`` / ``helper_id`` from ``Principal.scope()`` restrict
through :func:`gateway.storage.queries.visible_person_ids`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from gateway.storage.models import (
    Alert,
    AlertNote,
    AwayPeriod,
    Device,
    DeviceState,
    Event,
    Person,
    Visit,
)
from gateway.storage.queries import visible_person_ids

__all__ = [
    "WallCounts",
    "active_away",
    "add_note",
    "alerts_after",
    "alerts_of_person",
    "last_visits",
    "max_alert_id",
    "notes_of_alert",
    "person_events",
    "set_close_cause",
    "wall_counts",
]

_ACTIVE = ("open", "acknowledged")


async def max_alert_id(
    session: AsyncSession, *, village_id: int | None = None, helper_id: int | None = None
) -> int:
    """The newest alert this user may see: where a live board starts listening."""
    query = select(func.max(Alert.id))
    if village_id is not None or helper_id is not None:
        query = query.where(Alert.person_id.in_(visible_person_ids(village_id, helper_id)))
    return int((await session.execute(query)).scalar_one() or 0)


async def alerts_after(
    session: AsyncSession,
    after_id: int,
    *,
    village_id: int | None = None,
    helper_id: int | None = None,
    limit: int = 100,
) -> Sequence[Alert]:
    """Alerts raised after ``after_id`` (any status), oldest first: what a board missed."""
    query = (
        select(Alert)
        .options(selectinload(Alert.person).selectinload(Person.village))
        .where(Alert.id > after_id)
        .order_by(Alert.id)
        .limit(limit)
    )
    if village_id is not None or helper_id is not None:
        query = query.where(Alert.person_id.in_(visible_person_ids(village_id, helper_id)))
    return (await session.execute(query)).scalars().all()


async def alerts_of_person(
    session: AsyncSession, person_id: int, limit: int = 20
) -> Sequence[Alert]:
    return (
        (
            await session.execute(
                select(Alert)
                .where(Alert.person_id == person_id)
                .order_by(Alert.id.desc())
                .limit(limit)
            )
        )
        .scalars()
        .all()
    )


async def notes_of_alert(session: AsyncSession, alert_id: int) -> Sequence[AlertNote]:
    return (
        (
            await session.execute(
                select(AlertNote).where(AlertNote.alert_id == alert_id).order_by(AlertNote.id)
            )
        )
        .scalars()
        .all()
    )


async def add_note(
    session: AsyncSession, alert_id: int, author: str, text: str, at: datetime
) -> None:
    session.add(AlertNote(alert_id=alert_id, at=at, author=author, text=text))
    await session.commit()


async def set_close_cause(session: AsyncSession, alert_id: int, cause: str) -> None:
    await session.execute(update(Alert).where(Alert.id == alert_id).values(close_cause=cause))
    await session.commit()


async def last_visits(session: AsyncSession, person_ids: Iterable[int]) -> dict[int, datetime]:
    ids = list(person_ids)
    if not ids:
        return {}
    rows = await session.execute(
        select(Visit.person_id, func.max(Visit.visited_at))
        .where(Visit.person_id.in_(ids))
        .group_by(Visit.person_id)
    )
    # max() keeps the column's type, so SQLite's text comes back as an aware datetime.
    return {person_id: latest for person_id, latest in rows.all() if latest is not None}


async def active_away(
    session: AsyncSession, person_ids: Iterable[int], now: datetime
) -> dict[int, AwayPeriod]:
    ids = list(person_ids)
    if not ids:
        return {}
    rows = await session.execute(
        select(AwayPeriod).where(
            AwayPeriod.person_id.in_(ids),
            AwayPeriod.starts_at <= now,
            AwayPeriod.ends_at > now,
            AwayPeriod.cancelled_at.is_(None),
        )
    )
    return {row.person_id: row for row in rows.scalars()}


async def person_events(
    session: AsyncSession, person_id: int, since: datetime, limit: int = 20000
) -> Sequence[Event]:
    """The person's stored events since ``since``, newest first."""
    return (
        (
            await session.execute(
                select(Event)
                .where(Event.person_id == person_id, Event.received_at >= since)
                .order_by(Event.id.desc())
                .limit(limit)
            )
        )
        .scalars()
        .all()
    )


@dataclass(frozen=True, slots=True)
class WallCounts:
    """Numbers only: what a screen anybody can see may show."""

    by_group_status: dict[tuple[str, str], int]
    persons: int
    devices: int
    devices_online: int


async def wall_counts(session: AsyncSession) -> WallCounts:
    grouped = await session.execute(
        select(Alert.group, Alert.status, func.count(Alert.id))
        .where(Alert.status.in_(_ACTIVE))
        .group_by(Alert.group, Alert.status)
    )
    persons = (
        await session.execute(select(func.count(Person.id)).where(Person.removed_at.is_(None)))
    ).scalar_one()
    devices = (await session.execute(select(func.count(Device.id)))).scalar_one()
    online = (
        await session.execute(select(func.count()).where(DeviceState.online.is_(True)))
    ).scalar_one()
    return WallCounts(
        by_group_status={(g, s): int(n) for g, s, n in grouped.all()},
        persons=int(persons),
        devices=int(devices),
        devices_online=int(online),
    )
