"""The notice's paperwork over HTTP: the 台账 workbook (export, import), monthly visit
compliance, and the annual summary.

Helpers get none of the workbooks (they hold every ID number in full) but see compliance
for their own persons. A village_officer's exports, imports and reports cover their own
village only.
"""

from __future__ import annotations

import io
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, File, HTTPException, Query, UploadFile, status
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from gateway import audit
from gateway.api.deps import ApiContext, Ctx, CurrentUser, Principal, SessionDep
from gateway.api.schemas_register import ComplianceRowOut, ComplianceSummaryOut
from gateway.register.annual_io import annual_workbook
from gateway.register.compliance import monthly_compliance, parse_month, summarize
from gateway.register.ledger import build_workbook
from gateway.register.ledger_io import ImportReport, apply_ledger, build_sheet, read_ledger
from gateway.register.vocabulary import Role
from gateway.storage import register_queries as rq
from gateway.storage.models import Village

__all__ = [
    "compliance_rows",
    "import_workbook",
    "month_or_current",
    "refuse_helpers",
    "register_workbook",
    "router",
    "villages_in_scope",
    "xlsx_response",
]

router = APIRouter(prefix="/api/v1", tags=["reports"])

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
MonthParam = Annotated[str | None, Query(pattern=r"^\d{4}-\d{2}$", description="YYYY-MM")]
#: A village's 台账 is a few hundred rows; anything this big is not one.
MAX_WORKBOOK_BYTES = 10 * 1024 * 1024


class ComplianceSummaryPage(BaseModel):
    month: str
    villages: list[ComplianceSummaryOut]
    helpers: list[ComplianceSummaryOut]


def refuse_helpers(user: Principal) -> None:
    if user.role is Role.HELPER:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "the 台账 and reports are for officers")


def month_or_current(month: str | None, context: Ctx) -> str:
    if month is None:
        local = context.clock.now().astimezone(context.settings.tz)
        return f"{local.year:04d}-{local.month:02d}"
    try:
        parse_month(month)
    except ValueError as error:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(error)) from error
    return month


async def villages_in_scope(
    user: Principal, session: SessionDep, village: str | None
) -> list[Village]:
    """The named village (404 when unknown or out of the user's scope), else all visible."""
    if village is not None:
        found = await rq.village_by_name(session, village)
        if found is None or (user.role is Role.VILLAGE_OFFICER and found.id != user.village_id):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no village {village!r}")
        return [found]
    if user.role is Role.VILLAGE_OFFICER:
        return list(await rq.list_villages(session, user.village_id or -1))
    return list(await rq.list_villages(session))


def xlsx_response(data: bytes, filename: str) -> StreamingResponse:
    # RFC 5987: the Chinese file name survives in every browser.
    disposition = f"attachment; filename*=UTF-8''{quote(filename)}"
    return StreamingResponse(
        io.BytesIO(data), media_type=XLSX, headers={"Content-Disposition": disposition}
    )


# --------------------------------------------------------------------------- 台账


@router.get("/register.xlsx", response_class=StreamingResponse)
async def export_register(
    user: CurrentUser,
    session: SessionDep,
    context: Ctx,
    village: str | None = None,
    month: MonthParam = None,
) -> StreamingResponse:
    """The 台账 as attachment 2 lays it out: one sheet per village (all the user may see
    unless ``village`` names one), as it stood at the end of ``month`` when given."""
    return xlsx_response(*await register_workbook(user, session, context, village, month))


async def register_workbook(
    user: Principal,
    session: AsyncSession,
    context: ApiContext,
    village: str | None,
    month: str | None,
) -> tuple[bytes, str]:
    """The 台账 workbook the user may export, and its file name (the API's and the console's)."""
    refuse_helpers(user)
    if month is not None:
        month_or_current(month, context)
    villages = await villages_in_scope(user, session, village)
    if not villages:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "the register has no villages")
    sheets = [
        await build_sheet(context.db, v.name, month, tz=context.settings.tz) for v in villages
    ]
    buffer = io.BytesIO()
    build_workbook(sheets).save(buffer)
    town = await rq.town_name(session)
    label = village or town
    audit.record(
        session,
        now=context.clock.now(),
        actor=user.username,
        action="export",
        entity="register",
        entity_id=",".join(v.name for v in villages),
        detail={"month": month},
    )
    await session.commit()
    return buffer.getvalue(), f"{label}特殊困难群体关爱帮扶台账{month or ''}.xlsx"


@router.post("/register.xlsx")
async def import_register(
    user: CurrentUser,
    session: SessionDep,
    context: Ctx,
    village: str,
    file: Annotated[UploadFile, File(description="the 台账 workbook (.xlsx)")],
    dry_run: bool = True,
) -> JSONResponse:
    """Read a 台账 back (ours, or a village's own sheet with the same columns).

    A dry run (the default) reports what would change and changes nothing. Any problem —
    a bad cell, an unknown helper — refuses the whole file with 422 and every problem
    listed (sheet, Excel row or 序号, column, message).
    """
    data = await file.read(MAX_WORKBOOK_BYTES + 1)
    target, report = await import_workbook(user, session, context, village, data, dry_run=dry_run)
    problems = report.problems
    if problems:
        return JSONResponse(
            {
                "refused": True,
                "problems": [
                    {
                        "sheet": p.sheet,
                        "row": p.row or None,
                        "number": p.number or None,
                        "column": p.column,
                        "message": p.message,
                        "text": str(p),
                    }
                    for p in problems
                ],
            },
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        )
    return JSONResponse(
        {
            "refused": False,
            "dry_run": report.dry_run,
            "village": target.name,
            "created": report.created,
            "updated": report.updated,
            "unchanged": report.unchanged,
        }
    )


async def import_workbook(
    user: Principal,
    session: AsyncSession,
    context: ApiContext,
    village: str,
    data: bytes,
    *,
    dry_run: bool,
) -> tuple[Village, ImportReport]:
    """Read a 台账 back into ``village``: what changed (or would), or every problem."""
    refuse_helpers(user)
    (target,) = await villages_in_scope(user, session, village)
    if len(data) > MAX_WORKBOOK_BYTES:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, "workbook is larger than 10 MB")
    sheets, problems = read_ledger(data, target.name)
    if problems:
        return target, ImportReport(dry_run=dry_run, problems=problems)
    report = await apply_ledger(
        context.db,
        sheets[0],
        village=target.name,
        dry_run=dry_run,
        actor=user.username,
        now=context.clock.now(),
    )
    return target, report


# --------------------------------------------------------------------------- compliance


async def compliance_rows(
    user: Principal, session: SessionDep, context: Ctx, month: str, village: str | None
) -> list[Any]:
    scope: dict[str, int] = dict(user.scope())
    if village is not None:
        (found,) = await villages_in_scope(user, session, village)
        scope["village_id"] = found.id
    return await monthly_compliance(
        session, month, context.clock.now(), context.settings.tz, **scope
    )


@router.get("/compliance", response_model=list[ComplianceRowOut], tags=["visits"])
async def compliance(
    user: CurrentUser,
    session: SessionDep,
    context: Ctx,
    month: MonthParam = None,
    village: str | None = None,
) -> list[ComplianceRowOut]:
    """Per person: visits required and done in ``month`` (default: this month), and
    ``ok``/``due``/``overdue`` (see gateway.register.compliance for the exact rules)."""
    rows = await compliance_rows(user, session, context, month_or_current(month, context), village)
    return [ComplianceRowOut.of(r) for r in rows]


@router.get("/compliance/summary", response_model=ComplianceSummaryPage, tags=["visits"])
async def compliance_summary(
    user: CurrentUser,
    session: SessionDep,
    context: Ctx,
    month: MonthParam = None,
    village: str | None = None,
) -> ComplianceSummaryPage:
    """The same month totalled per village and per helper."""
    chosen = month_or_current(month, context)
    rows = await compliance_rows(user, session, context, chosen, village)
    return ComplianceSummaryPage(
        month=chosen,
        villages=[ComplianceSummaryOut.of(s) for s in summarize(rows, "village")],
        helpers=[ComplianceSummaryOut.of(s) for s in summarize(rows, "helper")],
    )


# --------------------------------------------------------------------------- annual summary


@router.get("/reports/annual.xlsx", response_class=StreamingResponse)
async def annual_summary(
    user: CurrentUser,
    session: SessionDep,
    context: Ctx,
    year: Annotated[int, Query(ge=2000, le=2100)],
) -> StreamingResponse:
    """The year's 对象统计, 走访统计 and 告警统计 (an officer's: their village only)."""
    refuse_helpers(user)
    data = await annual_workbook(session, year, context.settings.tz, user.scope().get("village_id"))
    town = await rq.town_name(session)
    audit.record(
        session,
        now=context.clock.now(),
        actor=user.username,
        action="export",
        entity="annual_summary",
        entity_id=year,
        detail={"village_id": user.scope().get("village_id")},
    )
    await session.commit()
    return xlsx_response(data, f"{town}{year}年度特殊困难群体关爱帮扶工作统计.xlsx")
