"""The alert board ``/``: active alerts by severity then age, live over server-sent events,
taken and closed through the same AlertService as the API's ack/resolve.

The live stream is a poll of the database (one per open board, once a second), so it sees
alerts raised by any gateway process sharing the database. Each new alert goes out as an
``alert`` event whose SSE id is the alert's database id: a board that reconnects sends
``Last-Event-ID`` (or ``after=`` when htmx opens a fresh EventSource) and is replayed every
alert it missed, then the re-rendered board.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse

from gateway.api.deps import Ctx, Principal, SessionDep
from gateway.console.web import ConsoleUser, CsrfChecked, Page, PageDep
from gateway.storage import console_queries as cq
from gateway.storage import queries
from gateway.storage.models import Alert, Person

__all__ = ["CLOSE_CAUSES", "SEVERITY_ORDER", "board_state", "router", "visible_alert"]

router = APIRouter(include_in_schema=False)

SEVERITY_ORDER = {"emergency": 0, "wellbeing": 1, "technical": 2}
#: Ageing thresholds of an unanswered alert (the telecare answer-time standard is 60 s).
AMBER_AFTER_SECONDS = 60
RED_AFTER_SECONDS = 180
CLOSE_CAUSES = ("real", "false_alarm", "test", "away", "device_fault", "handled_by_family", "other")
_POLL_SECONDS = 1.0
_PING_EVERY = 5
#: A stream ends now and then; the browser reconnects at once with Last-Event-ID.
_STREAM_LIFETIME_SECONDS = 300.0


def _alert_key(alert: Alert) -> tuple[int, int, float]:
    return (
        SEVERITY_ORDER.get(alert.group, 9),
        0 if alert.status == "open" else 1,
        alert.raised_at.timestamp(),
    )


@dataclass
class PersonAlerts:
    """One row per person: repeats and several alerts of one person fold together."""

    person: Person
    alerts: list[Alert] = field(default_factory=list)

    @property
    def worst(self) -> Alert:
        return self.alerts[0]

    @property
    def any_open(self) -> bool:
        return any(a.status == "open" for a in self.alerts)


@dataclass
class BoardState:
    rows: list[PersonAlerts]
    open_count: int
    ack_count: int
    by_group: dict[str, int]
    fingerprint: tuple[tuple[int, str, int], ...]


async def _active_alerts(session: Any, user: Principal) -> list[Alert]:
    # An alert taken between the two reads is in both: the session hands back the same
    # object (still "open") twice, which the board drew as two identical rows.
    found: dict[int, Alert] = {}
    for wanted in ("open", "acknowledged"):
        for alert in await queries.list_alerts(session, status=wanted, limit=1000, **user.scope()):
            found.setdefault(alert.id, alert)
    return list(found.values())


def _fold(alerts: Sequence[Alert]) -> list[PersonAlerts]:
    rows: dict[int, PersonAlerts] = {}
    for alert in sorted(alerts, key=_alert_key):
        rows.setdefault(alert.person_id, PersonAlerts(alert.person)).alerts.append(alert)
    return sorted(rows.values(), key=lambda row: _alert_key(row.worst))


async def board_state(session: Any, user: Principal) -> BoardState:
    alerts = await _active_alerts(session, user)
    by_group = dict.fromkeys(SEVERITY_ORDER, 0)
    for alert in alerts:
        by_group[alert.group] = by_group.get(alert.group, 0) + 1
    return BoardState(
        rows=_fold(alerts),
        open_count=sum(1 for a in alerts if a.status == "open"),
        ack_count=sum(1 for a in alerts if a.status == "acknowledged"),
        by_group=by_group,
        fingerprint=tuple(sorted((a.id, a.status, a.version) for a in alerts)),
    )


def ageing_class(page: Page, alert: Alert) -> str:
    if alert.status != "open":
        return ""
    waited = page.age_seconds(alert.raised_at)
    if waited >= RED_AFTER_SECONDS:
        return "age-red"
    if waited >= AMBER_AFTER_SECONDS:
        return "age-amber"
    return ""


def _board_values(page: Page, state: BoardState) -> dict[str, Any]:
    return {
        "board": state,
        "ageing_class": lambda alert: ageing_class(page, alert),
        "causes": CLOSE_CAUSES,
        "amber_after": AMBER_AFTER_SECONDS,
        "red_after": RED_AFTER_SECONDS,
    }


@router.get("/", response_class=HTMLResponse)
async def board_page(user: ConsoleUser, session: SessionDep, page: PageDep) -> HTMLResponse:
    state = await board_state(session, user)
    last_id = await cq.max_alert_id(session, **user.scope())
    return page.render("board.html", user, last_id=last_id, **_board_values(page, state))


def _sse(event: str, data: str, event_id: int | None = None) -> str:
    lines = [f"event: {event}"]
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.extend(f"data: {line}" for line in data.splitlines() or [""])
    return "\n".join(lines) + "\n\n"


def _cursor(request: Request, after: int | None) -> int | None:
    header = request.headers.get("last-event-id", "")
    candidates = [after] if after is not None else []
    if header.isdigit():
        candidates.append(int(header))
    return max(candidates) if candidates else None


@router.get("/live/board")
async def board_stream(
    request: Request, user: ConsoleUser, context: Ctx, page: PageDep, after: int | None = None
) -> StreamingResponse:
    cursor = _cursor(request, after)

    async def events() -> AsyncIterator[str]:
        nonlocal cursor
        seen: tuple[tuple[int, str, int], ...] | None = None
        loop = asyncio.get_running_loop()
        ends_at = loop.time() + _STREAM_LIFETIME_SECONDS
        polls = 0
        yield "retry: 1000\n\n"
        while loop.time() < ends_at and not await request.is_disconnected():
            page.now = context.clock.now()
            async with context.db.session() as session:
                if cursor is None:
                    cursor = await cq.max_alert_id(session, **user.scope())
                missed = await cq.alerts_after(session, cursor, **user.scope())
                state = await board_state(session, user)
            for alert in missed:
                yield _sse(
                    "alert",
                    page.text("_announce.html", user, alert=alert, causes=CLOSE_CAUSES),
                    alert.id,
                )
                cursor = alert.id
            if missed or state.fingerprint != seen:
                seen = state.fingerprint
                yield _sse("board", page.text("_board.html", user, **_board_values(page, state)))
            elif polls % _PING_EVERY == 0:
                yield _sse("ping", str(page.now.timestamp()))
            polls += 1
            await asyncio.sleep(_POLL_SECONDS)

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def visible_alert(session: Any, user: Principal, alert_id: int) -> Alert:
    alert = await queries.alert_with_notifications(session, alert_id)
    if alert is None or not user.can_see_person(alert.person):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no alert {alert_id}")
    return alert


async def _after_action(
    request: Request, user: Principal, session: Any, page: Page, alert_id: int
) -> Response:
    """htmx gets the re-rendered board; a plain form post goes back where it came from."""
    if request.headers.get("hx-request") == "true":
        session.expire_all()
        state = await board_state(session, user)
        return page.render("_board.html", user, **_board_values(page, state))
    back = request.headers.get("referer") or f"/alerts/{alert_id}"
    if "/alerts/" not in back:
        back = "/"
    return RedirectResponse(back, status_code=status.HTTP_303_SEE_OTHER)


@router.post("/alerts/{alert_id}/ack", dependencies=[CsrfChecked])
async def ack(
    alert_id: int,
    request: Request,
    user: ConsoleUser,
    session: SessionDep,
    context: Ctx,
    page: PageDep,
) -> Response:
    await visible_alert(session, user, alert_id)
    await context.alerts.acknowledge(alert_id, user.username)
    return await _after_action(request, user, session, page, alert_id)


@router.post("/alerts/{alert_id}/resolve", dependencies=[CsrfChecked])
async def resolve(
    alert_id: int,
    request: Request,
    user: ConsoleUser,
    session: SessionDep,
    context: Ctx,
    page: PageDep,
    cause: Annotated[str, Form()] = "",
    note: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    await visible_alert(session, user, alert_id)
    if cause and cause not in CLOSE_CAUSES:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"cause: unknown {cause!r}")
    await context.alerts.resolve(alert_id, user.username, note.strip() or None)
    if cause:
        await cq.set_close_cause(session, alert_id, cause)
    return await _after_action(request, user, session, page, alert_id)
