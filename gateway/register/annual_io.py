"""The annual summary from the database: the rows :func:`build_annual_summary` needs."""

from __future__ import annotations

import io
from datetime import UTC, datetime, tzinfo

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.register.annual import (
    AlertSummaryRow,
    PersonSummaryRow,
    VisitSummaryRow,
    build_annual_summary,
)
from gateway.register.vocabulary import CareLevel, Category, Service
from gateway.storage import register_queries as rq

__all__ = ["annual_workbook"]


async def annual_workbook(
    session: AsyncSession, year: int, tz: tzinfo, village_id: int | None = None
) -> bytes:
    """The year's summary workbook as xlsx bytes: every village, or only ``village_id``."""
    # A day's margin either side: build_annual_summary itself keeps what is in the local year.
    since = datetime(year - 1, 12, 31, tzinfo=UTC)
    until = datetime(year + 1, 1, 2, tzinfo=UTC)
    persons, visits, alerts = await rq.year_rows(session, since, until)
    villages = await rq.list_villages(session, village_id)
    names = {v.name for v in villages}
    workbook = build_annual_summary(
        year,
        await rq.town_name(session),
        [
            PersonSummaryRow(
                p.village.name, tuple(Category(c) for c in p.categories), CareLevel(p.care_level)
            )
            for p in persons
            if p.village.name in names
        ],
        [
            VisitSummaryRow(name, tuple(Service(s) for s in v.services), v.visited_at)
            for v, name in visits
            if name in names
        ],
        [
            AlertSummaryRow(name, a.type, a.raised_at, a.acknowledged_at)
            for a, name in alerts
            if name in names
        ],
        villages=[v.name for v in villages],
        tz=tz,
    )
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()
