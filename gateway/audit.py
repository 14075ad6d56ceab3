"""The one audit trail (SPEC §10): who read a person's full record, exported the 台账 or the
annual summary, changed the register or a user, took, closed or cancelled an alert (and by
which channel), or switched the emergency mode.

Register changes keep their before/after (gateway.register.history); everything else is an
event with a small ``detail``. The table is append-only: the migration installs triggers that
refuse DELETE and any UPDATE of who/what/when (re-encryption under a new key only rewrites
the encrypted before/after).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.storage.db import Database
from gateway.storage.models import AuditEntry

__all__ = ["read_trail", "record", "record_now"]


def record(
    session: AsyncSession,
    *,
    now: datetime,
    actor: str,
    action: str,
    entity: str,
    entity_id: str | int,
    detail: dict[str, Any] | None = None,
) -> None:
    """Add one entry to the trail in the caller's transaction (kept only if it commits)."""
    session.add(
        AuditEntry(
            at=now,
            actor=actor[:100],
            action=action,
            entity=entity,
            entity_id=str(entity_id),
            before=None,
            after=detail,
        )
    )


async def read_trail(
    session: AsyncSession,
    *,
    actor: str | None = None,
    entity: str | None = None,
    since: datetime | None = None,
    before_id: int | None = None,
    limit: int = 500,
) -> Sequence[AuditEntry]:
    """Newest first. ``entity`` is a kind (``person``) or one record (``person:12``)."""
    query = select(AuditEntry)
    if actor:
        query = query.where(AuditEntry.actor == actor)
    if entity:
        kind, _, entity_id = entity.partition(":")
        query = query.where(AuditEntry.entity == kind)
        if entity_id:
            query = query.where(AuditEntry.entity_id == entity_id)
    if since is not None:
        query = query.where(AuditEntry.at >= since)
    if before_id is not None:
        query = query.where(AuditEntry.id < before_id)
    query = query.order_by(AuditEntry.id.desc()).limit(limit)
    return (await session.execute(query)).scalars().all()


async def record_now(
    db: Database,
    *,
    now: datetime,
    actor: str,
    action: str,
    entity: str,
    entity_id: str | int,
    detail: dict[str, Any] | None = None,
) -> None:
    """:func:`record` in a transaction of its own (the command line's exports)."""
    async with db.session() as session, session.begin():
        record(
            session,
            now=now,
            actor=actor,
            action=action,
            entity=entity,
            entity_id=entity_id,
            detail=detail,
        )
