"""Monthly visit compliance (四、（四）): who was visited as often as the notice asks.

The notice: a general 关爱对象 is visited at least twice a month, a special (特别困难) one
at least once a week, and more often during a public emergency. All calendar arithmetic is
done on *local* dates in the town's time zone (``HOMEWATCH_TIMEZONE``): a visit at 00:30
on 1 April Beijing time is an April visit, although it is still 31 March in UTC.

Definitions, for a month ``M`` (``YYYY-MM``) and the moment ``now``:

* **special** — the weeks of ``M`` are the ISO weeks (Monday to Sunday) with at least one
  day in ``M`` (four to six of them). ``required`` = number of weeks × factor, rounded up.
  A visit counts for the ISO week it falls in, whichever month that day belongs to: a week
  straddling March and April is covered for both months by one visit on either side.
  Each week counts at most ``ceil(factor)`` visits (one normally), so five visits in one
  week do not make up for four missed weeks. ``done`` = the sum of those capped counts.
* **general** — ``required`` = 2 × factor, rounded up; ``done`` = visits on a local date
  in ``M``.
* **entering the register** — in the month a person entered the register, a special person
  owes only the weeks from the one they entered in, a general person the share of two
  visits for the days left in the month (rounded up: one visit at least).
* **factor** — the highest ``visit_factor`` of any emergency period that overlaps ``M``
  (1 when there was none).
* **status** — ``ok`` when ``done >= required``. Otherwise ``due`` while the requirement
  can still be met by visits from ``now`` on, and ``overdue`` once it cannot: for a general
  person, once ``M`` has ended (local midnight starting the next month); for a special
  person, as soon as the weeks not yet over (a week is over at local midnight starting its
  next Monday) cannot hold enough visits — with factor 1, as soon as one week passed
  without a visit.

:func:`assess` is pure; :func:`monthly_compliance` loads what it needs from the database.
"""

from __future__ import annotations

import calendar
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from enum import StrEnum

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from gateway.register.vocabulary import CareLevel
from gateway.storage.models import EmergencyMode, Person, Visit

__all__ = [
    "GENERAL_VISITS_PER_MONTH",
    "ComplianceRow",
    "ComplianceStatus",
    "ComplianceSummary",
    "PersonVisits",
    "assess",
    "emergency_factor",
    "iso_week_label",
    "load_person_visits",
    "month_bounds",
    "month_weeks",
    "monthly_compliance",
    "parse_month",
    "summarize",
    "visit_factor",
    "week_needs_visit",
]

GENERAL_VISITS_PER_MONTH = 2


class ComplianceStatus(StrEnum):
    OK = "ok"
    DUE = "due"
    OVERDUE = "overdue"


@dataclass(frozen=True, slots=True)
class PersonVisits:
    """A person and every visit that may matter for the month (times aware, any zone)."""

    person_id: int
    name: str
    village: str
    care_level: CareLevel
    visits: tuple[datetime, ...]
    helper_id: int | None = None
    helper_name: str = ""
    #: When the person entered the register; None when unknown (counted from the start).
    registered_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ComplianceRow:
    person_id: int
    name: str
    village: str
    helper_id: int | None
    helper_name: str
    care_level: CareLevel
    required: int
    done: int
    status: ComplianceStatus


@dataclass(frozen=True, slots=True)
class ComplianceSummary:
    """Totals for one group of rows (a village, a helper)."""

    key: str
    persons: int
    ok: int
    due: int
    overdue: int
    required: int
    done: int


def parse_month(month: str) -> tuple[int, int]:
    """``YYYY-MM`` -> (year, month).

    Raises:
        ValueError: not a month written ``YYYY-MM``.
    """
    match = re.fullmatch(r"(\d{4})-(\d{2})", month)
    if match is None or not 1 <= int(match.group(2)) <= 12:
        raise ValueError(f"month must be written YYYY-MM, e.g. 2026-03; got {month!r}")
    return int(match.group(1)), int(match.group(2))


def month_bounds(month: str, tz: tzinfo) -> tuple[datetime, datetime]:
    """The month's first instant and the first instant after it, local midnights (aware)."""
    year, mon = parse_month(month)
    first = date(year, mon, 1)
    after = first + timedelta(days=calendar.monthrange(year, mon)[1])
    return _midnight(first, tz), _midnight(after, tz)


def month_weeks(month: str) -> list[date]:
    """The Mondays of the ISO weeks having at least one day in ``month``."""
    year, mon = parse_month(month)
    first = date(year, mon, 1)
    last = date(year, mon, calendar.monthrange(year, mon)[1])
    monday = first - timedelta(days=first.weekday())
    weeks = []
    while monday <= last:
        weeks.append(monday)
        monday += timedelta(days=7)
    return weeks


def iso_week_label(day: date) -> str:
    """``2026-W11``: the ISO year and week of ``day``."""
    iso = day.isocalendar()
    return f"{iso.year}-W{iso.week:02d}"


def _midnight(day: date, tz: tzinfo) -> datetime:
    return datetime.combine(day, time(0, 0), tzinfo=tz)


def _local_date(moment: datetime, tz: tzinfo) -> date:
    if moment.tzinfo is None:
        raise ValueError(f"visit time without a time zone: {moment.isoformat()}")
    return moment.astimezone(tz).date()


def visit_factor(
    periods: Iterable[tuple[datetime, datetime | None, float]], month: str, tz: tzinfo
) -> float:
    """The highest factor of the emergency periods (start, end or None, factor) overlapping
    ``month``; 1.0 when none does."""
    start, end = month_bounds(month, tz)
    factors = [
        factor
        for began, ended, factor in periods
        if began < end and (ended is None or ended > start)
    ]
    return max(factors, default=1.0)


def assess(
    person: PersonVisits, month: str, now: datetime, tz: tzinfo, factor: float = 1.0
) -> ComplianceRow:
    """Required and done visits of ``person`` in ``month``, and the status at ``now``."""
    if factor <= 0:
        raise ValueError(f"visit factor must be positive, got {factor}")
    local_now = now.astimezone(tz)
    days = [_local_date(moment, tz) for moment in person.visits]
    joined = _local_date(person.registered_at, tz) if person.registered_at else None
    if person.care_level is CareLevel.SPECIAL:
        per_week = math.ceil(factor)
        # Weeks that were over before the person entered the register owe nothing.
        weeks = [m for m in month_weeks(month) if joined is None or m + timedelta(days=7) > joined]
        in_week = Counter(day - timedelta(days=day.weekday()) for day in days)
        counted = {monday: min(in_week[monday], per_week) for monday in weeks}
        required = math.ceil(len(weeks) * factor)
        done = sum(counted.values())
        still_open = sum(
            per_week - counted[monday]
            for monday in weeks
            if _midnight(monday + timedelta(days=7), tz) > local_now
        )
        reachable = done + still_open >= required
    else:
        start, end = month_bounds(month, tz)
        owed = float(GENERAL_VISITS_PER_MONTH)
        if joined is not None and start.date() < joined < end.date():
            # Entered mid-month: the share of the month left (one visit at the least).
            month_days = (end.date() - start.date()).days
            owed *= (end.date() - joined).days / month_days
        required = max(1, math.ceil(owed * factor)) if owed else 0
        done = sum(1 for day in days if start.date() <= day < end.date())
        reachable = local_now < end
    if done >= required:
        status = ComplianceStatus.OK
    elif reachable:
        status = ComplianceStatus.DUE
    else:
        status = ComplianceStatus.OVERDUE
    return ComplianceRow(
        person_id=person.person_id,
        name=person.name,
        village=person.village,
        helper_id=person.helper_id,
        helper_name=person.helper_name,
        care_level=person.care_level,
        required=required,
        done=done,
        status=status,
    )


def week_needs_visit(person: PersonVisits, now: datetime, tz: tzinfo, factor: float = 1.0) -> bool:
    """Whether ``person`` still needs a visit in the ISO week of ``now`` (the weekly digest).

    Special: fewer visits this week than one week asks for. General: this month's
    requirement is not met yet.
    """
    local_now = now.astimezone(tz)
    if person.care_level is CareLevel.SPECIAL:
        monday = local_now.date() - timedelta(days=local_now.weekday())
        this_week = sum(
            1
            for moment in person.visits
            if monday <= _local_date(moment, tz) < monday + timedelta(days=7)
        )
        return this_week < math.ceil(factor)
    month = f"{local_now.year:04d}-{local_now.month:02d}"
    return assess(person, month, now, tz, factor).status is not ComplianceStatus.OK


def summarize(rows: Sequence[ComplianceRow], key: str) -> list[ComplianceSummary]:
    """Totals per ``village`` or per ``helper`` (by name; "" for persons without one)."""
    if key not in ("village", "helper"):
        raise ValueError(f"summarize by village or helper, not {key!r}")
    groups: dict[str, list[ComplianceRow]] = {}
    for row in rows:
        groups.setdefault(row.village if key == "village" else row.helper_name, []).append(row)
    return [
        ComplianceSummary(
            key=name,
            persons=len(members),
            ok=sum(r.status is ComplianceStatus.OK for r in members),
            due=sum(r.status is ComplianceStatus.DUE for r in members),
            overdue=sum(r.status is ComplianceStatus.OVERDUE for r in members),
            required=sum(r.required for r in members),
            done=sum(r.done for r in members),
        )
        for name, members in groups.items()
    ]


# --------------------------------------------------------------------------- database


async def load_person_visits(
    session: AsyncSession,
    *,
    since: datetime,
    until: datetime,
    registered_before: datetime | None = None,
    on_register_at: datetime | None = None,
    village_id: int | None = None,
    helper_id: int | None = None,
) -> list[PersonVisits]:
    """The persons in scope with their visits in [since, until).

    ``registered_before`` leaves out persons who entered the register later;
    ``on_register_at`` those who had left it by then (None: those who have left it now).
    """
    query = (
        select(Person)
        .options(selectinload(Person.village), selectinload(Person.helper))
        .order_by(Person.village_id, Person.id)
    )
    if registered_before is not None:
        query = query.where(Person.created_at < registered_before)
    if on_register_at is None:
        query = query.where(Person.removed_at.is_(None))
    else:
        query = query.where(or_(Person.removed_at.is_(None), Person.removed_at >= on_register_at))
    if village_id is not None:
        query = query.where(Person.village_id == village_id)
    if helper_id is not None:
        query = query.where(Person.helper_id == helper_id)
    persons = (await session.execute(query)).scalars().all()
    visits: dict[int, list[datetime]] = {}
    if persons:
        rows = await session.execute(
            select(Visit.person_id, Visit.visited_at).where(
                Visit.person_id.in_([p.id for p in persons]),
                Visit.visited_at >= since,
                Visit.visited_at < until,
            )
        )
        for person_id, visited_at in rows:
            visits.setdefault(person_id, []).append(visited_at)
    return [
        PersonVisits(
            person_id=p.id,
            name=p.name,
            village=p.village.name,
            care_level=CareLevel(p.care_level),
            visits=tuple(visits.get(p.id, ())),
            helper_id=p.helper_id,
            helper_name=p.helper.name if p.helper else "",
            registered_at=p.created_at,
        )
        for p in persons
    ]


async def emergency_factor(session: AsyncSession, month: str, tz: tzinfo) -> float:
    start, end = month_bounds(month, tz)
    modes = (
        await session.execute(
            select(EmergencyMode).where(
                EmergencyMode.started_at < end,
                or_(EmergencyMode.ended_at.is_(None), EmergencyMode.ended_at > start),
            )
        )
    ).scalars()
    return visit_factor(((m.started_at, m.ended_at, m.visit_factor) for m in modes), month, tz)


async def monthly_compliance(
    session: AsyncSession,
    month: str,
    now: datetime,
    tz: tzinfo,
    *,
    village_id: int | None = None,
    helper_id: int | None = None,
) -> list[ComplianceRow]:
    """One row per person on the register by the end of ``month`` (optionally scoped)."""
    weeks = month_weeks(month)
    start, end = month_bounds(month, tz)
    # Special persons' straddling weeks reach into the neighbouring months.
    since = min(start, _midnight(weeks[0], tz)).astimezone(UTC)
    until = max(end, _midnight(weeks[-1] + timedelta(days=7), tz)).astimezone(UTC)
    factor = await emergency_factor(session, month, tz)
    persons = await load_person_visits(
        session,
        since=since,
        until=until,
        registered_before=end,
        # Whoever left the register during the month owes no visits for it.
        on_register_at=end,
        village_id=village_id,
        helper_id=helper_id,
    )
    return [assess(person, month, now, tz, factor) for person in persons]
