"""``/wall``: the duty office's wall screen, without a login, so it shows numbers only —
no names, no addresses, nothing that identifies a resident."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from gateway.api.deps import Ctx, SessionDep
from gateway.console.board import SEVERITY_ORDER
from gateway.console.web import PageDep
from gateway.storage import console_queries as cq

__all__ = ["router"]

router = APIRouter(include_in_schema=False)


@router.get("/wall", response_class=HTMLResponse)
async def wall(session: SessionDep, context: Ctx, page: PageDep) -> HTMLResponse:
    counts = await cq.wall_counts(session)
    by_group = {
        group: sum(n for (g, _s), n in counts.by_group_status.items() if g == group)
        for group in SEVERITY_ORDER
    }
    by_status = {
        state: sum(n for (_g, s), n in counts.by_group_status.items() if s == state)
        for state in ("open", "acknowledged")
    }
    return page.render(
        "wall.html",
        None,
        counts=counts,
        by_group=by_group,
        by_status=by_status,
        mqtt=context.health(),
    )
