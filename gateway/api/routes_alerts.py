"""Alerts: list, detail with every notification, acknowledge, resolve, re-open, hand over."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status

from alerts.service import AlertStateError
from alerts.types import AlertStatus
from gateway.api.deps import Ctx, CurrentUser, SessionDep
from gateway.api.schemas import (
    AlertDetailOut,
    AlertOut,
    HandoverIn,
    NotificationOut,
    ReopenIn,
    ResolveIn,
)
from gateway.storage import queries

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"])


@router.get("", response_model=list[AlertOut])
async def list_alerts(
    user: CurrentUser,
    session: SessionDep,
    status_filter: Annotated[AlertStatus | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[AlertOut]:
    rows = await queries.list_alerts(
        session,
        status=status_filter.value if status_filter else None,
        limit=limit,
        **user.scope(),
    )
    return [AlertOut.of(a) for a in rows]


async def _visible(alert_id: int, user: CurrentUser, session: SessionDep) -> AlertDetailOut:
    alert = await queries.alert_with_notifications(session, alert_id)
    if alert is None or not user.can_see_person(alert.person):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no alert {alert_id}")
    base = AlertOut.of(alert).model_dump()
    return AlertDetailOut(
        **base, notifications=[NotificationOut.of(n) for n in alert.notifications]
    )


@router.get("/{alert_id}", response_model=AlertDetailOut)
async def get_alert(alert_id: int, user: CurrentUser, session: SessionDep) -> AlertDetailOut:
    return await _visible(alert_id, user, session)


@router.post("/{alert_id}/ack", response_model=AlertDetailOut)
async def ack_alert(
    alert_id: int, user: CurrentUser, session: SessionDep, context: Ctx
) -> AlertDetailOut:
    await _visible(alert_id, user, session)
    await context.alerts.acknowledge(alert_id, user.username, channel="api")
    session.expire_all()
    return await _visible(alert_id, user, session)


@router.post("/{alert_id}/resolve", response_model=AlertDetailOut)
async def resolve_alert(
    alert_id: int,
    user: CurrentUser,
    session: SessionDep,
    context: Ctx,
    body: ResolveIn | None = None,
) -> AlertDetailOut:
    await _visible(alert_id, user, session)
    await context.alerts.resolve(
        alert_id, user.username, body.note if body else None, channel="api"
    )
    session.expire_all()
    return await _visible(alert_id, user, session)


@router.post("/{alert_id}/reopen", response_model=AlertDetailOut)
async def reopen_alert(
    alert_id: int, body: ReopenIn, user: CurrentUser, session: SessionDep, context: Ctx
) -> AlertDetailOut:
    """A closed alert escalates again from its first step; 409 while another is open."""
    await _visible(alert_id, user, session)
    try:
        await context.alerts.reopen(alert_id, user.username, body.note.strip(), channel="api")
    except AlertStateError as error:
        raise HTTPException(status.HTTP_409_CONFLICT, str(error)) from error
    session.expire_all()
    return await _visible(alert_id, user, session)


@router.post("/{alert_id}/handover", response_model=AlertDetailOut)
async def hand_over_alert(
    alert_id: int, body: HandoverIn, user: CurrentUser, session: SessionDep, context: Ctx
) -> AlertDetailOut:
    """An acknowledged alert passes to ``to``; 409 when it is not acknowledged."""
    await _visible(alert_id, user, session)
    try:
        await context.alerts.hand_over(alert_id, user.username, body.to, body.note, channel="api")
    except AlertStateError as error:
        raise HTTPException(status.HTTP_409_CONFLICT, str(error)) from error
    except ValueError as error:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(error)) from error
    session.expire_all()
    return await _visible(alert_id, user, session)
