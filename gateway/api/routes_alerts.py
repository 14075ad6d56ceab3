"""Alerts: list, detail with every notification, acknowledge, resolve."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status

from alerts.types import AlertStatus
from gateway.api.deps import Ctx, CurrentUser, SessionDep
from gateway.api.schemas import AlertDetailOut, AlertOut, NotificationOut, ResolveIn
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
