"""``/visits/new``: a helper logs a visit from a phone, photo from the camera included.

Fields are named as the API's (``person_id``, ``visited_at``, ``helper_phone``,
``services``, ``notes``) and go through the API's own checks (``store_visit``,
``store_photo``). ``visited_at`` comes from the phone's date-time picker without a zone: it
is read in the town's time zone, which is what the helper's watch says.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, HTTPException, UploadFile, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from gateway.api.deps import Ctx, Principal, SessionDep
from gateway.api.routes_visits import MAX_PHOTO_BYTES, check_photo, store_photo, store_visit
from gateway.api.schemas_register import VisitIn
from gateway.console.web import ConsoleUser, CsrfChecked, Page, PageDep
from gateway.register.vocabulary import Role, Service
from gateway.storage import queries
from gateway.storage import register_queries as rq
from gateway.storage.models import Helper

__all__ = ["router"]

router = APIRouter(include_in_schema=False)


async def _form_values(session: Any, user: Principal) -> dict[str, Any]:
    persons = await queries.list_persons(session, include_removed=False, **user.scope())
    if user.role is Role.HELPER:
        own = await session.get(Helper, user.helper_id) if user.helper_id else None
        helpers = [own] if own else []
    else:
        helpers = list(await rq.list_helpers(session, **user.scope()))
    return {"persons": persons, "helpers": helpers, "services": [s.value for s in Service]}


def _problems(error: Exception) -> list[tuple[str, str]]:
    """(field, message) pairs from the API's 422s and pydantic's validation errors."""
    if isinstance(error, ValidationError):
        return [(str(e["loc"][-1]) if e["loc"] else "", e["msg"]) for e in error.errors()]
    if isinstance(error, HTTPException):
        detail = error.detail
        if isinstance(detail, list):
            return [(str(d.get("loc", [""])[-1]), str(d.get("msg", ""))) for d in detail]
        return [("photo" if error.status_code in (413, 415) else "", str(detail))]
    return [("", str(error))]


def _render(
    page: Page, user: Principal, values: dict[str, Any], *, status_code: int = 200, **extra: Any
) -> HTMLResponse:
    defaults: dict[str, Any] = {
        "chosen": None,
        "saved": None,
        "problems": [],
        "entered": {},
        "now_local": page.local(page.now, "%Y-%m-%dT%H:%M"),
    }
    return page.render(
        "visit_new.html", user, status_code=status_code, **(defaults | values | extra)
    )


@router.get("/visits/new", response_class=HTMLResponse)
async def visit_form(
    user: ConsoleUser,
    session: SessionDep,
    page: PageDep,
    person_id: int | None = None,
    saved: int | None = None,
) -> HTMLResponse:
    return _render(page, user, await _form_values(session, user), chosen=person_id, saved=saved)


@router.post("/visits/new", dependencies=[CsrfChecked])
async def log_visit(
    user: ConsoleUser,
    session: SessionDep,
    context: Ctx,
    page: PageDep,
    person_id: Annotated[str, Form()] = "",
    visited_at: Annotated[str, Form()] = "",
    helper_phone: Annotated[str, Form()] = "",
    services: Annotated[list[str] | None, Form()] = None,
    notes: Annotated[str, Form()] = "",
    photo: Annotated[UploadFile | None, File()] = None,
) -> Response:
    entered = {
        "person_id": person_id,
        "visited_at": visited_at,
        "helper_phone": helper_phone,
        "services": services or [],
        "notes": notes,
    }
    data = b""
    if photo is not None and photo.filename:
        data = await photo.read(MAX_PHOTO_BYTES + 1)
    try:
        when = datetime.fromisoformat(visited_at) if visited_at else None
        if when is not None and when.tzinfo is None:
            when = when.replace(tzinfo=page.tz)
        body = VisitIn.model_validate(
            {
                "person_id": person_id or None,
                "visited_at": when,
                "helper_phone": helper_phone,
                "services": services or [],
                "notes": notes,
            }
        )
        if data:
            check_photo(data)
        visit = await store_visit(body, user, session, context.clock.now())
        if data:
            await store_photo(visit, data, session, context.settings.data_dir, page.tz)
    except (ValidationError, HTTPException, ValueError) as error:
        await session.rollback()
        return _render(
            page,
            user,
            await _form_values(session, user),
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
            problems=_problems(error),
            entered=entered,
            chosen=int(person_id) if person_id.isdigit() else None,
        )
    return RedirectResponse(
        f"/visits/new?saved={visit.id}&person_id={visit.person_id}",
        status_code=status.HTTP_303_SEE_OTHER,
    )
