"""Away periods (住女儿家, hospital) and the town-wide emergency mode; both audited."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, HTTPException, status
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.api.deps import AdminUser, Ctx, CurrentUser, SessionDep, visible_person
from gateway.register.history import audit_entity
from gateway.storage.models import AwayPeriod, EmergencyMode

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["quiet-home"])


class AwayIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    #: When the resident leaves; now if not given.
    starts_at: AwareDatetime | None = None
    ends_at: AwareDatetime
    reason: str = Field(default="", max_length=200)


class AwayOut(BaseModel):
    id: int
    person_id: int
    starts_at: datetime
    ends_at: datetime
    reason: str
    created_by: str
    cancelled_at: datetime | None


class EmergencyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=200)
    inactivity_factor: float | None = Field(default=None, gt=0, le=1)
    visit_factor: float | None = Field(default=None, ge=1, le=10)


class EmergencyOut(BaseModel):
    active: bool
    id: int | None = None
    reason: str | None = None
    inactivity_factor: float | None = None
    visit_factor: float | None = None
    started_at: datetime | None = None
    started_by: str | None = None
    ended_at: datetime | None = None
    ended_by: str | None = None


def _away_out(row: AwayPeriod) -> AwayOut:
    return AwayOut(
        id=row.id,
        person_id=row.person_id,
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        reason=row.reason,
        created_by=row.created_by,
        cancelled_at=row.cancelled_at,
    )


@router.get("/persons/{person_id}/away", response_model=list[AwayOut])
async def list_away(person_id: int, user: CurrentUser, session: SessionDep) -> list[AwayOut]:
    await visible_person(person_id, user, session)
    rows = await session.execute(
        select(AwayPeriod).where(AwayPeriod.person_id == person_id).order_by(AwayPeriod.starts_at)
    )
    return [_away_out(row) for row in rows.scalars()]


@router.post("/persons/{person_id}/away", response_model=AwayOut, status_code=201)
async def mark_away(
    person_id: int, body: AwayIn, user: CurrentUser, session: SessionDep, context: Ctx
) -> AwayOut:
    """Helpers and officers mark a resident away: inactivity is not watched until
    ``ends_at`` (SOS and falls still are)."""
    await visible_person(person_id, user, session)
    now = context.clock.now()
    starts_at = body.starts_at or now
    if body.ends_at <= starts_at:
        raise HTTPException(422, [{"loc": ["body", "ends_at"], "msg": "must be after starts_at"}])
    row = AwayPeriod(
        person_id=person_id,
        starts_at=starts_at,
        ends_at=body.ends_at,
        reason=body.reason,
        created_by=user.username,
        created_at=now,
    )
    session.add(row)
    await session.flush()
    out = _away_out(row)
    # Its own entity: "person" entries are person snapshots, replayed by the 台账 "as of".
    audit_entity(
        session,
        now=now,
        actor=user.username,
        entity="away_period",
        entity_id=row.id,
        action="create",
        before=None,
        after=out.model_dump(mode="json"),
    )
    await session.commit()
    return out


@router.delete("/persons/{person_id}/away/{away_id}", response_model=AwayOut)
async def end_away(
    person_id: int, away_id: int, user: CurrentUser, session: SessionDep, context: Ctx
) -> AwayOut:
    """Back early: watching resumes now (with a fresh quiet period)."""
    await visible_person(person_id, user, session)
    row = await session.get(AwayPeriod, away_id)
    if row is None or row.person_id != person_id:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no away period {away_id}")
    now = context.clock.now()
    if row.cancelled_at is None and row.ends_at > now:
        row.cancelled_at = max(now, row.starts_at)
        audit_entity(
            session,
            now=now,
            actor=user.username,
            entity="away_period",
            entity_id=away_id,
            action="end",
            before=None,
            after={"person_id": person_id, "cancelled_at": row.cancelled_at.isoformat()},
        )
    out = _away_out(row)
    await session.commit()
    return out


async def _active_mode(session: AsyncSession) -> EmergencyMode | None:
    return (
        await session.execute(
            select(EmergencyMode)
            .where(EmergencyMode.ended_at.is_(None))
            .order_by(EmergencyMode.id.desc())
            .limit(1)
        )
    ).scalar_one_or_none()


def _mode_out(mode: EmergencyMode | None) -> EmergencyOut:
    if mode is None:
        return EmergencyOut(active=False)
    return EmergencyOut(
        active=mode.ended_at is None,
        id=mode.id,
        reason=mode.reason,
        inactivity_factor=mode.inactivity_factor,
        visit_factor=mode.visit_factor,
        started_at=mode.started_at,
        started_by=mode.started_by,
        ended_at=mode.ended_at,
        ended_by=mode.ended_by,
    )


@router.get("/emergency-mode", response_model=EmergencyOut)
async def get_emergency_mode(_user: CurrentUser, session: SessionDep) -> EmergencyOut:
    return _mode_out(await _active_mode(session))


@router.post("/emergency-mode", response_model=EmergencyOut)
async def start_emergency_mode(
    body: EmergencyIn, user: AdminUser, session: SessionDep, context: Ctx
) -> EmergencyOut:
    """突发公共事件或重大灾害: tighten inactivity windows and visit requirements town-wide."""
    factors = context.settings.rules.emergency_mode
    now = context.clock.now()
    mode = await _active_mode(session)
    if mode is not None:
        raise HTTPException(status.HTTP_409_CONFLICT, "emergency mode is already on")
    mode = EmergencyMode(
        reason=body.reason,
        inactivity_factor=body.inactivity_factor or factors.inactivity,
        visit_factor=body.visit_factor or factors.visits,
        started_at=now,
        started_by=user.username,
    )
    session.add(mode)
    await session.flush()
    out = _mode_out(mode)
    audit_entity(
        session,
        now=now,
        actor=user.username,
        action="start",
        entity="emergency_mode",
        entity_id=mode.id,
        before=None,
        after=out.model_dump(mode="json"),
    )
    await session.commit()
    return out


@router.delete("/emergency-mode", response_model=EmergencyOut)
async def end_emergency_mode(user: AdminUser, session: SessionDep, context: Ctx) -> EmergencyOut:
    mode = await _active_mode(session)
    if mode is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "emergency mode is not on")
    now = context.clock.now()
    before = _mode_out(mode).model_dump(mode="json")
    mode.ended_at = now
    mode.ended_by = user.username
    out = _mode_out(mode)
    audit_entity(
        session,
        now=now,
        actor=user.username,
        action="end",
        entity="emergency_mode",
        entity_id=mode.id,
        before=before,
        after=out.model_dump(mode="json"),
    )
    await session.commit()
    return out
