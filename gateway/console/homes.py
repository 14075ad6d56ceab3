"""``/homes``: one card per person (last sign of life, worst open alert, devices, away
mode, last and next-due visit) and ``/persons/{id}``: the person's page with an activity
heat map drawn server-side."""

from __future__ import annotations

import calendar
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status
from fastapi.responses import HTMLResponse

from gateway.api.deps import Ctx, Principal, SessionDep, visible_person
from gateway.api.schemas_register import PersonDetailOut
from gateway.console.board import SEVERITY_ORDER, board_state
from gateway.console.web import ConsoleUser, PageDep
from gateway.register.compliance import ComplianceRow, monthly_compliance
from gateway.register.vocabulary import Role
from gateway.storage import console_queries as cq
from gateway.storage import queries
from gateway.storage import register_queries as rq
from gateway.storage.models import Alert, AwayPeriod, Device, Helper, Person

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

_HEATMAP_DAYS = 28


@dataclass
class HomeCard:
    person: Person
    worst: Alert | None
    devices: list[Device]
    away: AwayPeriod | None
    last_visit: datetime | None
    next_due: date | None
    compliance: ComplianceRow | None


def next_visit_due(
    care_level: str,
    last_visit: datetime | None,
    done: int,
    required: int,
    now: datetime,
    tz: tzinfo,
) -> date:
    """The last day by which the next visit keeps the notice's pace: the end of this week
    (or next week, when this week's visit is done) for a special person; the end of this
    month (or next month, when this month's visits are done) for a general one."""
    today = now.astimezone(tz).date()
    if care_level == "special":
        sunday = today + timedelta(days=6 - today.weekday())
        visited_this_week = last_visit is not None and last_visit.astimezone(tz).date() > (
            sunday - timedelta(days=7)
        )
        return sunday + timedelta(days=7) if visited_this_week else sunday
    month_end = today.replace(day=calendar.monthrange(today.year, today.month)[1])
    if done < required:
        return month_end
    following = month_end + timedelta(days=1)
    return following.replace(day=calendar.monthrange(following.year, following.month)[1])


def _month(now: datetime, tz: tzinfo) -> str:
    local = now.astimezone(tz)
    return f"{local.year:04d}-{local.month:02d}"


async def _villages_for(session: Any, user: Principal) -> list[str]:
    if user.role is Role.VILLAGE_OFFICER:
        return [v.name for v in await rq.list_villages(session, user.village_id or -1)]
    if user.role is Role.HELPER:
        helper = await session.get(Helper, user.helper_id) if user.helper_id else None
        return [
            v.name for v in await rq.list_villages(session, helper.village_id if helper else -1)
        ]
    return [v.name for v in await rq.list_villages(session)]


async def home_cards(
    session: Any, user: Principal, now: datetime, tz: tzinfo, village: str | None
) -> list[HomeCard]:
    persons = [
        p
        for p in await queries.list_persons(session, include_removed=False, **user.scope())
        if village is None or p.village.name == village
    ]
    ids = [p.id for p in persons]
    devices: dict[int, list[Device]] = {}
    for device in await queries.list_devices(session, **user.scope()):
        devices.setdefault(device.person_id, []).append(device)
    worst: dict[int, Alert] = {}
    for folded in (await board_state(session, user)).rows:
        worst[folded.person.id] = folded.worst
    away = await cq.active_away(session, ids, now)
    last = await cq.last_visits(session, ids)
    compliance = {
        r.person_id: r
        for r in await monthly_compliance(session, _month(now, tz), now, tz, **user.scope())
    }
    cards = []
    for person in persons:
        row = compliance.get(person.id)
        cards.append(
            HomeCard(
                person=person,
                worst=worst.get(person.id),
                devices=devices.get(person.id, []),
                away=away.get(person.id),
                last_visit=last.get(person.id),
                next_due=next_visit_due(
                    person.care_level,
                    last.get(person.id),
                    row.done if row else 0,
                    row.required if row else 1,
                    now,
                    tz,
                ),
                compliance=row,
            )
        )
    # Homes needing attention first: an open alert, then the longest silence.
    return sorted(
        cards,
        key=lambda c: (
            SEVERITY_ORDER.get(c.worst.group, 9) if c.worst else 9,
            c.person.last_activity_at.timestamp() if c.person.last_activity_at else 0.0,
        ),
    )


@router.get("/homes", response_class=HTMLResponse)
async def homes_page(
    user: ConsoleUser,
    session: SessionDep,
    context: Ctx,
    page: PageDep,
    village: Annotated[str | None, Query(max_length=100)] = None,
) -> HTMLResponse:
    villages = await _villages_for(session, user)
    chosen = village if village in villages else None
    cards = await home_cards(session, user, page.now, page.tz, chosen)
    return page.render("homes.html", user, cards=cards, villages=villages, chosen=chosen)


# --------------------------------------------------------------------------- person


@dataclass(frozen=True, slots=True)
class HeatCell:
    x: int
    y: int
    count: int
    shade: str
    label: str


def heat_cells(
    moments: list[datetime], now: datetime, tz: tzinfo, days: int = _HEATMAP_DAYS
) -> tuple[list[HeatCell], list[tuple[int, str]]]:
    """Hour × day grid of activity counts (local time), oldest day at the top."""
    today = now.astimezone(tz).date()
    first = today - timedelta(days=days - 1)
    counts: Counter[tuple[int, int]] = Counter()
    for moment in moments:
        local = moment.astimezone(tz)
        day = (local.date() - first).days
        if 0 <= day < days:
            counts[(day, local.hour)] += 1
    peak = max(counts.values(), default=0)
    cells = []
    for day in range(days):
        for hour in range(24):
            n = counts.get((day, hour), 0)
            level = 0 if n == 0 else 1 + min(3, (n * 4 - 1) // max(peak, 1))
            shade = ("#eeeeee", "#c6e0f5", "#7fb3e0", "#3a7fc0", "#0b4a8a")[level]
            label = f"{(first + timedelta(days=day)).isoformat()} {hour:02d}:00 {n}"
            cells.append(HeatCell(hour, day, n, shade, label))
    rows = [
        (day, (first + timedelta(days=day)).strftime("%m-%d"))
        for day in range(days)
        if day % 7 == 0 or day == days - 1
    ]
    return cells, rows


@router.get("/persons/{person_id}", response_class=HTMLResponse)
async def person_page(
    person_id: int, user: ConsoleUser, session: SessionDep, context: Ctx, page: PageDep
) -> HTMLResponse:
    try:
        person = await visible_person(person_id, user, session)
    except HTTPException as error:
        if error.status_code == status.HTTP_404_NOT_FOUND:
            return page.render("not_found.html", user, status_code=status.HTTP_404_NOT_FOUND)
        raise
    devices = [
        d for d in await queries.list_devices(session, **user.scope()) if d.person_id == person.id
    ]
    visits = await rq.list_visits(
        session, person_id=person.id, since=None, until=None, helper_phone=None, limit=20
    )
    alerts = await cq.alerts_of_person(session, person.id)
    events = await cq.person_events(session, person.id, page.now - timedelta(days=_HEATMAP_DAYS))
    activity = [e.received_at for e in events if e.kind in ("motion", "door", "check_in")]
    cells, rows = heat_cells(activity, page.now, page.tz)
    return page.render(
        "person.html",
        user,
        person=person,
        # The API's own presentation: ID numbers masked for helpers.
        record=PersonDetailOut.of(person, mask_id=user.role is Role.HELPER),
        devices=devices,
        visits=visits,
        alerts=alerts,
        cells=cells,
        heat_rows=rows,
        heat_days=_HEATMAP_DAYS,
    )
