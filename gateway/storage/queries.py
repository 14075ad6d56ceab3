"""Read queries the API needs, kept out of the routes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from gateway.storage.models import (
    Alert,
    Device,
    Event,
    Notification,
    Person,
    RejectedMessage,
    UnknownDevice,
)

__all__ = [
    "alert_ids",
    "alert_with_notifications",
    "device_by_uid",
    "first_alert_sent_at",
    "latest_reached_recipient",
    "latest_recorded_time",
    "list_alerts",
    "list_devices",
    "list_events",
    "list_persons",
    "list_rejected",
    "list_unknown_devices",
    "visible_person_ids",
]


def visible_person_ids(village_id: int | None, helper_id: int | None) -> Select[Any]:
    """Ids of the persons a user scoped to ``village_id``/``helper_id`` may see."""
    query = select(Person.id)
    if village_id is not None:
        query = query.where(Person.village_id == village_id)
    if helper_id is not None:
        query = query.where(Person.helper_id == helper_id)
    return query


async def list_persons(
    session: AsyncSession,
    *,
    village_id: int | None = None,
    helper_id: int | None = None,
    include_removed: bool = False,
) -> Sequence[Person]:
    query = (
        select(Person)
        .options(
            selectinload(Person.village), selectinload(Person.helper), selectinload(Person.devices)
        )
        .order_by(Person.id)
    )
    if not include_removed:
        query = query.where(Person.removed_at.is_(None))
    if village_id is not None:
        query = query.where(Person.village_id == village_id)
    if helper_id is not None:
        query = query.where(Person.helper_id == helper_id)
    return (await session.execute(query)).scalars().all()


async def device_by_uid(session: AsyncSession, uid: str) -> Device | None:
    return (
        await session.execute(
            select(Device)
            .options(selectinload(Device.state), selectinload(Device.person))
            .where(Device.uid == uid)
        )
    ).scalar_one_or_none()


async def list_devices(
    session: AsyncSession, *, village_id: int | None = None, helper_id: int | None = None
) -> Sequence[Device]:
    query = select(Device).options(selectinload(Device.state)).order_by(Device.id)
    if village_id is not None or helper_id is not None:
        query = query.where(Device.person_id.in_(visible_person_ids(village_id, helper_id)))
    return (await session.execute(query)).scalars().all()


async def list_events(
    session: AsyncSession,
    *,
    device: str | None,
    since: datetime | None,
    limit: int,
    offset: int,
    village_id: int | None = None,
    helper_id: int | None = None,
) -> tuple[int, Sequence[Event]]:
    conditions = []
    if device:
        conditions.append(Event.device_uid == device)
    if since:
        conditions.append(Event.received_at >= since)
    if village_id is not None or helper_id is not None:
        conditions.append(Event.person_id.in_(visible_person_ids(village_id, helper_id)))
    total = (await session.execute(select(func.count(Event.id)).where(*conditions))).scalar_one()
    rows = (
        (
            await session.execute(
                select(Event)
                .where(*conditions)
                .order_by(Event.id.desc())
                .limit(limit)
                .offset(offset)
            )
        )
        .scalars()
        .all()
    )
    return int(total), rows


async def list_unknown_devices(session: AsyncSession) -> Sequence[UnknownDevice]:
    return (
        (await session.execute(select(UnknownDevice).order_by(UnknownDevice.last_seen_at.desc())))
        .scalars()
        .all()
    )


async def list_rejected(session: AsyncSession, limit: int) -> Sequence[RejectedMessage]:
    return (
        (
            await session.execute(
                select(RejectedMessage).order_by(RejectedMessage.id.desc()).limit(limit)
            )
        )
        .scalars()
        .all()
    )


async def list_alerts(
    session: AsyncSession,
    *,
    status: str | None,
    village_id: int | None = None,
    helper_id: int | None = None,
    limit: int = 200,
) -> Sequence[Alert]:
    query = (
        select(Alert)
        .options(selectinload(Alert.person).selectinload(Person.village))
        .order_by(Alert.id.desc())
        .limit(limit)
    )
    if status:
        query = query.where(Alert.status == status)
    if village_id is not None or helper_id is not None:
        query = query.where(Alert.person_id.in_(visible_person_ids(village_id, helper_id)))
    return (await session.execute(query)).scalars().all()


async def alert_with_notifications(session: AsyncSession, alert_id: int) -> Alert | None:
    return (
        await session.execute(
            select(Alert)
            .options(
                selectinload(Alert.notifications),
                selectinload(Alert.person).selectinload(Person.village),
            )
            .where(Alert.id == alert_id)
        )
    ).scalar_one_or_none()


def _utc(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything stored is UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


async def alert_ids(
    session: AsyncSession, *, statuses: Sequence[str], group: str | None = None
) -> list[int]:
    """Ids of the alerts in any of ``statuses`` (and of ``group``, if given), oldest first."""
    query = select(Alert.id).where(Alert.status.in_(statuses)).order_by(Alert.id)
    if group is not None:
        query = query.where(Alert.group == group)
    return list((await session.execute(query)).scalars())


async def first_alert_sent_at(session: AsyncSession, alert_id: int) -> datetime | None:
    """When the alert's first escalation message went out; None while none has."""
    sent = (
        await session.execute(
            select(func.min(Notification.sent_at)).where(
                Notification.alert_id == alert_id, Notification.purpose == "alert"
            )
        )
    ).scalar_one_or_none()
    return None if sent is None else _utc(sent)


async def latest_reached_recipient(session: AsyncSession, alert_id: int) -> tuple[str, str] | None:
    """Name and phone of the first person of the latest escalation step that reached
    anybody, the resident excepted (who is told, not asked to act); None before any."""
    row = (
        await session.execute(
            select(Notification.recipient_name, Notification.recipient_phone)
            .where(
                Notification.alert_id == alert_id,
                Notification.purpose == "alert",
                Notification.recipient_role != "resident",
                Notification.sent_at.is_not(None),
            )
            .order_by(
                Notification.step_round.desc(), Notification.step_index.desc(), Notification.id
            )
            .limit(1)
        )
    ).first()
    return None if row is None else (row[0], row[1])


async def latest_recorded_time(session: AsyncSession) -> datetime | None:
    """The newest time the database holds: an event received, an alert triggered, a
    notification changed. A clock that starts after it never writes into its past."""
    stamps = [
        (await session.execute(select(func.max(column)))).scalar_one_or_none()
        for column in (Event.received_at, Alert.last_trigger_at, Notification.updated_at)
    ]
    return max((_utc(t) for t in stamps if t is not None), default=None)
