"""``GET /api/v1/whatif`` (SPEC §12): the town's last weeks replayed under other thresholds,
per home next to what was actually raised. Town admins only: it replays every home, and a
month of a hundred homes costs about a minute of CPU (in a child process, one at a time:
gateway.whatif)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel

from gateway.api.deps import AdminUser, Ctx
from gateway.whatif import (
    MAX_DAYS,
    WhatIfBusyError,
    WhatIfChoice,
    WhatIfError,
    WhatIfResult,
    WhatIfTimeoutError,
    run_what_if,
)

__all__ = ["choice_of", "router"]

router = APIRouter(prefix="/api/v1", tags=["replay"])


class WhatIfHomeOut(BaseModel):
    person_id: int
    name: str
    village: str
    #: Alerts by type the chosen thresholds would have raised in the period...
    would: dict[str, int]
    #: ...and those the gateway actually raised.
    actual: dict[str, int]


class WhatIfOut(BaseModel):
    start: str
    end: str
    learned: bool
    day_quiet_minutes: int
    night_quiet_minutes: int
    homes: list[WhatIfHomeOut]


def choice_of(
    days: int, mode: str, day_hours: float | None, night_hours: float | None
) -> WhatIfChoice:
    """The form's (or query's) fields as a choice; a bad value is a 422 naming it."""
    try:
        return WhatIfChoice(
            days=days,
            learned=mode == "learned",
            day_quiet=None if day_hours is None else timedelta(hours=day_hours),
            night_quiet=None if night_hours is None else timedelta(hours=night_hours),
        )
    except ValueError as error:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(error)) from error


def result_out(result: WhatIfResult) -> WhatIfOut:
    inactivity = result.rules.inactivity
    return WhatIfOut(
        start=result.start.isoformat(),
        end=result.end.isoformat(),
        learned=inactivity.learned.enabled,
        day_quiet_minutes=int(inactivity.day.quiet.total_seconds() // 60),
        night_quiet_minutes=int(inactivity.night.quiet.total_seconds() // 60),
        homes=[
            WhatIfHomeOut(
                person_id=home.person_id,
                name=home.name,
                village=home.village,
                would=dict(home.would),
                actual=dict(home.actual),
            )
            for home in result.homes
        ],
    )


@router.get("/whatif", response_model=WhatIfOut)
async def what_if(
    user: AdminUser,
    context: Ctx,
    days: Annotated[int, Query(ge=1, le=MAX_DAYS)] = 28,
    mode: Annotated[str, Query(pattern="^(fixed|learned)$")] = "fixed",
    day_hours: Annotated[float | None, Query(ge=0.5, le=48)] = None,
    night_hours: Annotated[float | None, Query(ge=0.5, le=48)] = None,
) -> WhatIfOut:
    """Replay the last ``days`` days of stored events with fixed quiet hours (``day_hours``,
    ``night_hours``; the configured ones where not given) or learned routines; nothing is
    sent or stored.

    One what-if runs at a time: asking again for the choice that is running waits for its
    answer; asking for another while one runs is a 409 (``Retry-After``). One that runs
    longer than ``whatif_timeout`` is stopped: 503."""
    del user  # admins only, by the dependency
    choice = choice_of(days, mode, day_hours, night_hours)
    settings = context.settings
    try:
        result = await run_what_if(
            context.db,
            settings.rules,
            settings.tz,
            choice,
            context.clock.now(),
            time_limit=settings.whatif_timeout,
        )
    except WhatIfError as error:
        raise HTTPException(*refusal(error)) from error
    return result_out(result)


def refusal(error: WhatIfError) -> tuple[int, str, dict[str, str] | None]:
    """The status, detail and headers a what-if that gave no result is answered with."""
    if isinstance(error, WhatIfBusyError):
        return status.HTTP_409_CONFLICT, str(error), {"Retry-After": "60"}
    if isinstance(error, WhatIfTimeoutError):
        return status.HTTP_503_SERVICE_UNAVAILABLE, str(error), None
    return status.HTTP_500_INTERNAL_SERVER_ERROR, f"the what-if failed: {error}", None
