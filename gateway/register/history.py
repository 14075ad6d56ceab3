"""The register's change history beyond persons: helpers, team members, devices, villages.

The register service (gateway.register.service) records every register change through
:func:`audit_entity`, as the visit and watch routes record theirs: all in one table, so one
query answers "who changed what, when".
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.storage.models import AuditEntry

__all__ = ["audit_entity", "columns_of", "person_history"]


def columns_of(record: Any, fields: Sequence[str]) -> dict[str, Any]:
    """``fields`` of ``record``, copied so later edits do not change the record kept."""
    return {name: copy.copy(getattr(record, name)) for name in fields}


def audit_entity(
    session: AsyncSession,
    *,
    now: datetime,
    actor: str,
    entity: str,
    entity_id: str | int,
    action: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> None:
    """Keep one change (``create``, ``update`` or ``delete``) with who made it and when."""
    session.add(
        AuditEntry(
            at=now,
            actor=actor,
            action=action,
            entity=entity,
            entity_id=str(entity_id),
            before=before,
            after=after,
        )
    )


async def person_history(session: AsyncSession, person_id: int) -> list[AuditEntry]:
    """Changes of the person and of the devices assigned to or taken from them, oldest first."""
    person_entries = (
        (
            await session.execute(
                select(AuditEntry).where(
                    AuditEntry.entity == "person", AuditEntry.entity_id == str(person_id)
                )
            )
        )
        .scalars()
        .all()
    )
    # Device entries name their person inside the JSON; JSON queries differ between SQLite
    # and PostgreSQL, and a town has a few hundred devices, so filter here.
    device_entries = [
        entry
        for entry in (
            await session.execute(
                select(AuditEntry).where(
                    AuditEntry.entity == "device",
                    or_(AuditEntry.before.is_not(None), AuditEntry.after.is_not(None)),
                )
            )
        ).scalars()
        if person_id
        in {(entry.before or {}).get("person_id"), (entry.after or {}).get("person_id")}
    ]
    return sorted([*person_entries, *device_entries], key=lambda e: (e.at, e.id))
