"""``/whatif``: an officer picks thresholds and a period and sees, per home, the alarms they
would have raised next to those actually raised (SPEC §12). The same replay as
``GET /api/v1/whatif``; town admins only."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status
from fastapi.responses import HTMLResponse

from gateway.api.routes_whatif import choice_of
from gateway.console.web import ConsoleUser, PageDep
from gateway.register.vocabulary import Role
from gateway.whatif import MAX_DAYS, THRESHOLD_TYPES, run_what_if

__all__ = ["router"]

router = APIRouter(include_in_schema=False)


@router.get("/whatif", response_class=HTMLResponse)
async def what_if_page(
    user: ConsoleUser,
    page: PageDep,
    run: Annotated[bool, Query()] = False,
    days: Annotated[int, Query(ge=1, le=MAX_DAYS)] = 28,
    mode: Annotated[str, Query(pattern="^(fixed|learned)$")] = "fixed",
    day_hours: Annotated[float | None, Query(ge=0.5, le=48)] = None,
    night_hours: Annotated[float | None, Query(ge=0.5, le=48)] = None,
) -> HTMLResponse:
    if user.role is not Role.TOWN_ADMIN:
        return page.render(
            "not_found.html", user, status_code=status.HTTP_403_FORBIDDEN, forbidden=True
        )
    settings = page.context.settings
    configured = settings.rules.inactivity
    day = day_hours or configured.day.quiet.total_seconds() / 3600
    night = night_hours or configured.night.quiet.total_seconds() / 3600
    form = {"days": days, "mode": mode, "day_hours": day, "night_hours": night}
    result = None
    error = ""
    if run:
        try:
            choice = choice_of(days, mode, day, night)
        except HTTPException as refused:
            error = str(refused.detail)
        else:
            result = await run_what_if(
                page.context.db, settings.rules, settings.tz, choice, page.now
            )
    return page.render(
        "whatif.html",
        user,
        form=form,
        max_days=MAX_DAYS,
        result=result,
        error=error,
        types=[alert_type.value for alert_type in THRESHOLD_TYPES],
    )
