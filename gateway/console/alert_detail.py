"""``/alerts/{id}``: everything the duty officer needs about one alert on one page."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from alerts.service import AlertConflictError, AlertStateError
from gateway.api.deps import Ctx, Principal, SessionDep
from gateway.console.board import CLOSE_CAUSES, visible_alert
from gateway.console.web import ConsoleUser, CsrfChecked, Page, PageDep
from gateway.storage import console_queries as cq
from gateway.storage import register_queries as rq
from gateway.storage.models import Alert, AlertNote, Notification

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

_RECENT_ACTIVITY = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class Moment:
    """One line of the alert's timeline."""

    at: datetime
    kind: str
    text: str
    status: str = ""


def _taken_how(alert: Alert, notifications: list[Notification]) -> str:
    """By SMS reply or key press when the taker was one of the notified; else the web."""
    if alert.acknowledged_by is None:
        return ""
    for row in notifications:
        if row.purpose == "confirm":
            return "sms"
    if any(n.recipient_name == alert.acknowledged_by for n in notifications):
        return "voice"
    return "web"


def _timeline(
    alert: Alert, notifications: list[Notification], notes: Sequence[AlertNote]
) -> list[Moment]:
    moments = [Moment(alert.raised_at, "raised", alert.type)]
    moments.extend(Moment(note.at, "note", f"{note.author}：{note.text}") for note in notes)
    for row in notifications:
        moments.append(
            Moment(row.sent_at or row.created_at, "notified", row.recipient_name, row.status)
        )
    if alert.acknowledged_at is not None:
        moments.append(Moment(alert.acknowledged_at, "taken", alert.acknowledged_by or ""))
    if alert.resolved_at is not None:
        moments.append(Moment(alert.resolved_at, "resolved", alert.resolved_by or ""))
    if alert.cancelled_at is not None:
        moments.append(Moment(alert.cancelled_at, "cancelled", ""))
    return sorted(moments, key=lambda m: m.at)


@router.get("/alerts/{alert_id}", response_class=HTMLResponse)
async def alert_page(
    alert_id: int, user: ConsoleUser, session: SessionDep, context: Ctx, page: PageDep
) -> HTMLResponse:
    alert = await visible_alert(session, user, alert_id)
    person = await rq.person_with_relations(session, alert.person_id)
    village = await rq.village_with_team(session, alert.person.village_id)
    notifications = list(alert.notifications)
    events = await cq.person_events(session, alert.person_id, page.now - _RECENT_ACTIVITY, 30)
    notes = await cq.notes_of_alert(session, alert.id)
    steps = context.alerts.chain_of(alert)
    countdown = (
        max(int((alert.next_step_at - page.now).total_seconds()), 0)
        if alert.next_step_at is not None and alert.status == "open"
        else None
    )
    return page.render(
        "alert.html",
        user,
        alert=alert,
        person=person,
        team=village.team if village else [],
        notifications=notifications,
        steps=steps,
        countdown=countdown,
        next_step_ms=int(alert.next_step_at.timestamp() * 1000) if alert.next_step_at else 0,
        taken_how=_taken_how(alert, notifications),
        timeline=_timeline(alert, notifications, notes),
        notes=notes,
        events=events,
        causes=CLOSE_CAUSES,
    )


@router.post("/alerts/{alert_id}/notes", dependencies=[CsrfChecked])
async def add_note(
    alert_id: int,
    user: ConsoleUser,
    session: SessionDep,
    page: PageDep,
    text: Annotated[str, Form(min_length=1, max_length=2000)],
) -> Response:
    """A line in the alert's log (who was called, what they said), by whoever sees it."""
    await visible_alert(session, user, alert_id)
    await cq.add_note(session, alert_id, user.username, text.strip(), page.now)
    return RedirectResponse(f"/alerts/{alert_id}#notes", status_code=status.HTTP_303_SEE_OTHER)


@router.post("/alerts/{alert_id}/reopen", dependencies=[CsrfChecked])
async def reopen(
    alert_id: int,
    user: ConsoleUser,
    session: SessionDep,
    context: Ctx,
    page: PageDep,
    note: Annotated[str, Form(min_length=1, max_length=2000)],
) -> Response:
    """Closed by mistake, or the resident is not fine after all: escalate again."""
    await visible_alert(session, user, alert_id)
    try:
        await context.alerts.reopen(alert_id, user.username, note.strip())
    except AlertConflictError as error:
        return _refused(page, user, alert_id, "reopen_conflict", error.other_code)
    except AlertStateError:
        return _refused(page, user, alert_id, "state_changed")
    return RedirectResponse(f"/alerts/{alert_id}", status_code=status.HTTP_303_SEE_OTHER)


@router.post("/alerts/{alert_id}/handover", dependencies=[CsrfChecked])
async def hand_over(
    alert_id: int,
    user: ConsoleUser,
    session: SessionDep,
    context: Ctx,
    page: PageDep,
    to: Annotated[str, Form(min_length=1, max_length=100)],
    note: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """Whoever has the alert passes it on (end of shift, a team member goes instead)."""
    await visible_alert(session, user, alert_id)
    try:
        await context.alerts.hand_over(alert_id, user.username, to, note)
    except AlertStateError:
        return _refused(page, user, alert_id, "state_changed")
    except ValueError as error:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(error)) from error
    return RedirectResponse(f"/alerts/{alert_id}#notes", status_code=status.HTTP_303_SEE_OTHER)


def _refused(
    page: Page, user: Principal, alert_id: int, reason: str, other_code: str = ""
) -> HTMLResponse:
    """409 in words the duty officer reads, with the way back to the alert."""
    return page.render(
        "alert_refused.html",
        user,
        status_code=status.HTTP_409_CONFLICT,
        alert_id=alert_id,
        reason=reason,
        other_code=other_code,
    )
