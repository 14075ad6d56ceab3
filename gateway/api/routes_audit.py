"""``GET /api/v1/audit`` (SPEC §10): the trail, for town admins only."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from gateway.api.deps import AdminUser, SessionDep
from gateway.api.errors import field_error
from gateway.api.schemas_register import AuditOut
from gateway.audit import read_trail

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["audit"])


@router.get("/audit", response_model=list[AuditOut])
async def audit_trail(
    user: AdminUser,
    session: SessionDep,
    actor: Annotated[str | None, Query(max_length=100)] = None,
    entity: Annotated[
        str | None, Query(max_length=150, description="a kind (person) or a record (person:12)")
    ] = None,
    since: datetime | None = None,
    before_id: Annotated[int | None, Query(ge=1)] = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> list[AuditOut]:
    """Newest first; page with ``before_id`` = the last ``id`` seen."""
    if since is not None and since.tzinfo is None:
        field_error("since", "must carry a UTC offset, e.g. 2026-03-01T00:00:00+08:00")
    entries = await read_trail(
        session, actor=actor, entity=entity, since=since, before_id=before_id, limit=limit
    )
    return [AuditOut.of(e, mask_id=False) for e in entries]
