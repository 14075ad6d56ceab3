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
from gateway.whatif import (
    MAX_DAYS,
    THRESHOLD_TYPES,
    WhatIfBusyError,
    WhatIfError,
    WhatIfTimeoutError,
    run_what_if,
)

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
    error = error_kind = ""
    if run:
        try:
            choice = choice_of(days, mode, day, night)
        except HTTPException as refused:
            error = str(refused.detail)
        else:
            try:
                result = await run_what_if(
                    page.context.db,
                    settings.rules,
                    settings.tz,
                    choice,
                    page.now,
                    time_limit=settings.whatif_timeout,
                )
            except WhatIfError as failed:
                error, error_kind = _refusal(failed, page.words["whatif"])
    return page.render(
        "whatif.html",
        user,
        status_code=_STATUS.get(error_kind, status.HTTP_200_OK),
        error_kind=error_kind,
        form=form,
        max_days=MAX_DAYS,
        result=result,
        error=error,
        types=[alert_type.value for alert_type in THRESHOLD_TYPES],
    )


_STATUS = {
    "busy": status.HTTP_409_CONFLICT,
    "timeout": status.HTTP_503_SERVICE_UNAVAILABLE,
    "failed": status.HTTP_500_INTERNAL_SERVER_ERROR,
}


def _refusal(error: WhatIfError, catalogue: dict[str, str]) -> tuple[str, str]:
    """The officer's sentence for a what-if that gave no result, and its kind."""
    if isinstance(error, WhatIfBusyError):
        return catalogue["busy"].format(days=error.running.days), "busy"
    if isinstance(error, WhatIfTimeoutError):
        minutes = max(1, round(error.timeout.total_seconds() / 60))
        return catalogue["timeout"].format(minutes=minutes), "timeout"
    return catalogue["failed"], "failed"
