"""The notice's paperwork in the console: ``/compliance`` (visits against the notice's
pace), ``/register`` (台账 export, and import with a dry-run preview as a table of
changes) and ``/reports`` (time to acknowledge against the target, alerts by type and
village, the false-alarm share). Everything goes through the API's own helpers, so scope
and refusals are the API's."""

from __future__ import annotations

import base64
import binascii
import statistics
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, HTTPException, Query, UploadFile, status
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from gateway.api.deps import Ctx, Principal, SessionDep
from gateway.api.routes_reports import (
    MAX_WORKBOOK_BYTES,
    compliance_rows,
    import_workbook,
    month_or_current,
    register_workbook,
    villages_in_scope,
    xlsx_response,
)
from gateway.console.board import AMBER_AFTER_SECONDS
from gateway.console.web import ConsoleUser, CsrfChecked, Page, PageDep
from gateway.register.compliance import summarize
from gateway.register.vocabulary import Role
from gateway.storage import register_queries as rq
from gateway.storage.models import Alert

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

MonthQuery = Annotated[str | None, Query(pattern=r"^(\d{4}-\d{2})?$")]
#: The telecare answer-time standard: 97.5 % of emergency calls answered within 60 s.
ACK_TARGET_SHARE = 0.975


def _refused(page: Page, user: Principal, error: HTTPException) -> HTMLResponse:
    """The API's refusal (403 for helpers, 404 out of scope) as a page."""
    return page.render(
        "not_found.html",
        user,
        status_code=error.status_code,
        forbidden=error.status_code == status.HTTP_403_FORBIDDEN,
    )


@router.get("/compliance", response_class=HTMLResponse)
async def compliance_page(
    user: ConsoleUser,
    session: SessionDep,
    context: Ctx,
    page: PageDep,
    month: MonthQuery = None,
    village: Annotated[str | None, Query(max_length=100)] = None,
) -> HTMLResponse:
    chosen = month_or_current(month or None, context)
    try:
        rows = await compliance_rows(user, session, context, chosen, village or None)
    except HTTPException as error:
        return _refused(page, user, error)
    villages = [] if user.role is Role.HELPER else await villages_in_scope(user, session, None)
    return page.render(
        "compliance.html",
        user,
        month=chosen,
        rows=sorted(rows, key=lambda r: ({"overdue": 0, "due": 1}.get(r.status, 2), r.name)),
        summary=summarize(rows, "village"),
        villages=[v.name for v in villages],
        chosen_village=village or "",
    )


# --------------------------------------------------------------------------- 台账


async def _register_page(
    page: Page, user: Principal, session: Any, *, status_code: int = 200, **values: Any
) -> HTMLResponse:
    villages = await villages_in_scope(user, session, None)
    defaults: dict[str, Any] = {"report": None, "village": "", "workbook": ""}
    return page.render(
        "register.html",
        user,
        status_code=status_code,
        villages=[v.name for v in villages],
        **(defaults | values),
    )


@router.get("/register", response_class=HTMLResponse)
async def register_page(user: ConsoleUser, session: SessionDep, page: PageDep) -> HTMLResponse:
    if user.role is Role.HELPER:
        return page.render("not_found.html", user, status_code=403, forbidden=True)
    return await _register_page(page, user, session)


@router.get("/register/export.xlsx", response_model=None)
async def export(
    user: ConsoleUser,
    session: SessionDep,
    context: Ctx,
    page: PageDep,
    village: Annotated[str | None, Query(max_length=100)] = None,
    month: MonthQuery = None,
) -> StreamingResponse | HTMLResponse:
    try:
        data, filename = await register_workbook(
            user, session, context, village or None, month or None
        )
    except HTTPException as error:
        return _refused(page, user, error)
    return xlsx_response(data, filename)


@router.post("/register/import", dependencies=[CsrfChecked])
async def import_register(
    user: ConsoleUser,
    session: SessionDep,
    context: Ctx,
    page: PageDep,
    village: Annotated[str, Form(max_length=100)],
    file: Annotated[UploadFile | None, File()] = None,
    workbook: Annotated[str, Form(max_length=MAX_WORKBOOK_BYTES * 2)] = "",
    apply: Annotated[str, Form()] = "",
) -> Response:
    """Without ``apply`` a dry run: the table of what would change, and nothing changed.
    The preview carries the workbook back (``workbook``, base64) so that 确认导入 applies
    exactly the file that was previewed, without choosing it again."""
    if file is not None and file.filename:
        data = await file.read(MAX_WORKBOOK_BYTES + 1)
    else:
        try:
            data = base64.b64decode(workbook, validate=True)
        except binascii.Error:
            data = b""
    try:
        _target, report = await import_workbook(
            user, session, context, village, data, dry_run=not apply
        )
    except HTTPException as error:
        return _refused(page, user, error)
    return await _register_page(
        page,
        user,
        session,
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT if report.problems else 200,
        report=report,
        village=village,
        workbook=base64.b64encode(data).decode() if report.dry_run else "",
    )


# --------------------------------------------------------------------------- reports


@dataclass(frozen=True, slots=True)
class MonthFigures:
    month: str
    emergencies: int
    median_ack_seconds: float | None
    within_target: float | None


def _month_of(moment: datetime, tz: Any) -> str:
    return moment.astimezone(tz).strftime("%Y-%m")


def month_figures(alerts: list[Alert], tz: Any) -> list[MonthFigures]:
    """Per month: emergencies, their median time to acknowledge, the share taken in 60 s."""
    by_month: dict[str, list[Alert]] = {}
    for alert in alerts:
        if alert.group == "emergency":
            by_month.setdefault(_month_of(alert.raised_at, tz), []).append(alert)
    figures = []
    for month in sorted(by_month):
        taken = [
            (a.acknowledged_at - a.raised_at).total_seconds()
            for a in by_month[month]
            if a.acknowledged_at is not None
        ]
        emergencies = len(by_month[month])
        figures.append(
            MonthFigures(
                month=month,
                emergencies=emergencies,
                median_ack_seconds=statistics.median(taken) if taken else None,
                within_target=(
                    sum(1 for s in taken if s <= AMBER_AFTER_SECONDS) / emergencies
                    if emergencies
                    else None
                ),
            )
        )
    return figures


@router.get("/reports", response_class=HTMLResponse)
async def reports_page(
    user: ConsoleUser,
    session: SessionDep,
    page: PageDep,
    year: Annotated[int | None, Query(ge=2000, le=2100)] = None,
) -> HTMLResponse:
    if user.role is Role.HELPER:
        return page.render("not_found.html", user, status_code=403, forbidden=True)
    chosen = year or page.now.astimezone(page.tz).year
    since = datetime(chosen, 1, 1, tzinfo=page.tz).astimezone(UTC)
    until = datetime(chosen + 1, 1, 1, tzinfo=page.tz).astimezone(UTC)
    _persons, _visits, rows = await rq.year_rows(session, since, until)
    own = {v.name for v in await villages_in_scope(user, session, None)}
    alerts = [(a, village) for a, village in rows if village in own]
    closed = [a for a, _v in alerts if a.status == "resolved"]
    false_alarms = sum(1 for a in closed if a.close_cause == "false_alarm")
    return page.render(
        "reports.html",
        user,
        year=chosen,
        months=month_figures([a for a, _v in alerts], page.tz),
        by_type=Counter(a.type for a, _v in alerts).most_common(),
        by_village=Counter(v for _a, v in alerts).most_common(),
        total=len(alerts),
        closed=len(closed),
        false_alarms=false_alarms,
        false_share=false_alarms / len(closed) if closed else None,
        target_share=ACK_TARGET_SHARE,
        target_seconds=AMBER_AFTER_SECONDS,
    )
