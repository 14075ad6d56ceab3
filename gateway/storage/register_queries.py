"""Read queries of the register, visit and report routes (kept out of the routes)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from gateway.storage.models import (
    Alert,
    Device,
    Helper,
    Person,
    TeamMember,
    Town,
    Village,
    Visit,
)
from gateway.storage.queries import visible_person_ids

__all__ = [
    "count_persons_of_helper",
    "count_persons_of_village",
    "device_by_topic",
    "device_with_person",
    "helper_by_phone",
    "list_helpers",
    "list_villages",
    "list_visits",
    "person_by_id_number",
    "person_has_records",
    "person_with_relations",
    "team_member",
    "town_name",
    "village_by_name",
    "village_with_team",
    "year_rows",
]


async def town_name(session: AsyncSession) -> str:
    town = (await session.execute(select(Town).limit(1))).scalar_one_or_none()
    return town.name if town else ""


async def list_villages(session: AsyncSession, village_id: int | None = None) -> Sequence[Village]:
    query = select(Village).options(selectinload(Village.team)).order_by(Village.id)
    if village_id is not None:
        query = query.where(Village.id == village_id)
    return (await session.execute(query)).scalars().all()


async def village_with_team(session: AsyncSession, village_id: int) -> Village | None:
    return (
        await session.execute(
            select(Village).options(selectinload(Village.team)).where(Village.id == village_id)
        )
    ).scalar_one_or_none()


async def village_by_name(session: AsyncSession, name: str) -> Village | None:
    return (await session.execute(select(Village).where(Village.name == name))).scalar_one_or_none()


async def list_helpers(
    session: AsyncSession, *, village_id: int | None = None, helper_id: int | None = None
) -> Sequence[Helper]:
    query = select(Helper).order_by(Helper.id)
    if village_id is not None:
        query = query.where(Helper.village_id == village_id)
    if helper_id is not None:
        query = query.where(Helper.id == helper_id)
    return (await session.execute(query)).scalars().all()


async def helper_by_phone(session: AsyncSession, phone: str) -> Helper | None:
    return (
        await session.execute(select(Helper).where(Helper.phone_bidx == phone))
    ).scalar_one_or_none()


async def count_persons_of_helper(session: AsyncSession, helper_id: int) -> int:
    return int(
        (
            await session.execute(
                select(func.count(Person.id)).where(Person.helper_id == helper_id)
            )
        ).scalar_one()
    )


async def count_persons_of_village(session: AsyncSession, village_id: int) -> int:
    persons = (
        await session.execute(select(func.count(Person.id)).where(Person.village_id == village_id))
    ).scalar_one()
    helpers = (
        await session.execute(select(func.count(Helper.id)).where(Helper.village_id == village_id))
    ).scalar_one()
    return int(persons) + int(helpers)


async def person_with_relations(session: AsyncSession, person_id: int) -> Person | None:
    return (
        await session.execute(
            select(Person)
            .options(
                selectinload(Person.village),
                selectinload(Person.helper),
                selectinload(Person.devices),
            )
            .where(Person.id == person_id)
            .execution_options(populate_existing=True)
        )
    ).scalar_one_or_none()


async def person_has_records(session: AsyncSession, person_id: int) -> bool:
    """Whether visits or alerts refer to the person (their history must be kept)."""
    visit = (
        await session.execute(select(Visit.id).where(Visit.person_id == person_id).limit(1))
    ).first()
    alert = (
        await session.execute(select(Alert.id).where(Alert.person_id == person_id).limit(1))
    ).first()
    return visit is not None or alert is not None


async def person_by_id_number(session: AsyncSession, id_number: str) -> int | None:
    return (
        await session.execute(select(Person.id).where(Person.id_number_bidx == id_number))
    ).scalar_one_or_none()


async def device_by_topic(session: AsyncSession, topic: str) -> Device | None:
    return (await session.execute(select(Device).where(Device.topic == topic))).scalar_one_or_none()


async def device_with_person(session: AsyncSession, uid: str) -> Device | None:
    return (
        await session.execute(
            select(Device)
            .options(selectinload(Device.person), selectinload(Device.state))
            .where(Device.uid == uid)
        )
    ).scalar_one_or_none()


async def list_visits(
    session: AsyncSession,
    *,
    person_id: int | None,
    since: datetime | None,
    until: datetime | None,
    helper_phone: str | None,
    village_id: int | None = None,
    helper_id: int | None = None,
    limit: int = 500,
) -> Sequence[Visit]:
    query = select(Visit).order_by(Visit.visited_at.desc(), Visit.id.desc()).limit(limit)
    if person_id is not None:
        query = query.where(Visit.person_id == person_id)
    if since is not None:
        query = query.where(Visit.visited_at >= since)
    if until is not None:
        query = query.where(Visit.visited_at < until)
    if helper_phone is not None:
        query = query.where(Visit.helper_phone_bidx == helper_phone)
    if village_id is not None or helper_id is not None:
        query = query.where(Visit.person_id.in_(visible_person_ids(village_id, helper_id)))
    return (await session.execute(query)).scalars().all()


async def year_rows(
    session: AsyncSession, since: datetime, until: datetime
) -> tuple[Sequence[Person], Sequence[tuple[Visit, str]], Sequence[tuple[Alert, str]]]:
    """Persons (with village), and the visits and alerts in [since, until) with their village."""
    # On the register at some time in the period: entered before it ended, left after it began.
    persons = (
        (
            await session.execute(
                select(Person)
                .options(selectinload(Person.village))
                .where(
                    Person.created_at < until,
                    or_(Person.removed_at.is_(None), Person.removed_at >= since),
                )
            )
        )
        .scalars()
        .all()
    )
    visits = (
        await session.execute(
            select(Visit, Village.name)
            .join(Person, Person.id == Visit.person_id)
            .join(Village, Village.id == Person.village_id)
            .where(Visit.visited_at >= since, Visit.visited_at < until)
        )
    ).all()
    alerts = (
        await session.execute(
            select(Alert, Village.name)
            .join(Person, Person.id == Alert.person_id)
            .join(Village, Village.id == Person.village_id)
            .where(Alert.raised_at >= since, Alert.raised_at < until)
        )
    ).all()
    return persons, [(v, n) for v, n in visits], [(a, n) for a, n in alerts]


async def team_member(session: AsyncSession, member_id: int) -> TeamMember | None:
    return await session.get(TeamMember, member_id)
