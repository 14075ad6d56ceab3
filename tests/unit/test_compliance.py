"""Visit compliance across week and month boundaries, in the town's local time."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from gateway.register.compliance import (
    ComplianceStatus,
    PersonVisits,
    assess,
    month_bounds,
    month_weeks,
    summarize,
    visit_factor,
    week_needs_visit,
)
from gateway.register.vocabulary import CareLevel

TZ = ZoneInfo("Asia/Shanghai")
OK, DUE, OVERDUE = ComplianceStatus.OK, ComplianceStatus.DUE, ComplianceStatus.OVERDUE


def local(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=TZ)


def person(level: CareLevel, *visits: datetime, helper: str = "李四") -> PersonVisits:
    return PersonVisits(
        person_id=1,
        name="张三",
        village="坝芒村",
        care_level=level,
        visits=visits,
        helper_id=7,
        helper_name=helper,
    )


def test_march_2026_touches_six_iso_weeks_and_april_five() -> None:
    # 1 March 2026 is a Sunday, 31 March a Tuesday: both ends straddle a week.
    assert month_weeks("2026-03") == [
        date(2026, 2, 23),
        date(2026, 3, 2),
        date(2026, 3, 9),
        date(2026, 3, 16),
        date(2026, 3, 23),
        date(2026, 3, 30),
    ]
    assert month_weeks("2026-04")[0] == date(2026, 3, 30)
    assert len(month_weeks("2026-04")) == 5
    assert len(month_weeks("2021-02")) == 4  # Monday 1st to Sunday 28th


def test_month_bounds_are_local_midnights() -> None:
    start, end = month_bounds("2026-03", TZ)
    assert start.astimezone(UTC) == datetime(2026, 2, 28, 16, 0, tzinfo=UTC)
    assert end.astimezone(UTC) == datetime(2026, 3, 31, 16, 0, tzinfo=UTC)
    with pytest.raises(ValueError, match="YYYY-MM"):
        month_bounds("2026-13", TZ)


def test_special_one_visit_counts_for_its_week_in_both_months() -> None:
    visits = (
        local(2026, 2, 27, 10),  # Friday of the week that holds 1 March
        local(2026, 3, 3, 10),
        local(2026, 3, 10, 10),
        local(2026, 3, 17, 10),
        local(2026, 3, 24, 10),
        local(2026, 4, 2, 10),  # Thursday of the week that holds 30 and 31 March
    )
    after_april = local(2026, 5, 10)
    march = assess(person(CareLevel.SPECIAL, *visits), "2026-03", after_april, TZ)
    assert (march.required, march.done, march.status) == (6, 6, OK)
    april = assess(person(CareLevel.SPECIAL, *visits), "2026-04", after_april, TZ)
    # Only the straddling week (30 Mar - 5 Apr) is covered in April.
    assert (april.required, april.done, april.status) == (5, 1, OVERDUE)


def test_special_visits_in_one_week_do_not_make_up_for_another() -> None:
    crammed = tuple(local(2026, 3, day, 9) for day in (9, 10, 11, 12, 13))
    row = assess(person(CareLevel.SPECIAL, *crammed), "2026-03", local(2026, 4, 30), TZ)
    assert (row.required, row.done, row.status) == (6, 1, OVERDUE)


def test_special_is_due_until_a_week_passes_without_a_visit() -> None:
    visits = (local(2026, 2, 24, 9), local(2026, 3, 2, 9))
    row = person(CareLevel.SPECIAL, *visits)
    # Sunday 15 March, 23:59 local: the week of 9 March can still be covered.
    assert assess(row, "2026-03", local(2026, 3, 15, 23, 59), TZ).status is DUE
    # Monday 16 March, 00:00 local (still Sunday in UTC): that week is over, unmet.
    assert assess(row, "2026-03", local(2026, 3, 16, 0, 0), TZ).status is OVERDUE


def test_special_week_of_a_visit_is_the_local_week_not_the_utc_week() -> None:
    # 00:30 on Monday 9 March in the town is 16:30 on Sunday 8 March in UTC.
    late = local(2026, 3, 9, 0, 30)
    assert late.astimezone(UTC).day == 8
    row = person(CareLevel.SPECIAL, late)
    assert not week_needs_visit(row, local(2026, 3, 11, 12), TZ)
    assert week_needs_visit(row, local(2026, 3, 8, 12), TZ)


def test_general_last_evening_of_the_month_in_local_time_versus_utc() -> None:
    last_evening = local(2026, 3, 31, 23, 30)  # 15:30 UTC, March either way
    after_midnight = local(2026, 4, 1, 0, 30)  # 16:30 UTC on 31 March, but April locally
    assert after_midnight.astimezone(UTC).month == 3
    row = person(CareLevel.GENERAL, local(2026, 3, 10, 9), last_evening)
    march = assess(row, "2026-03", local(2026, 4, 2), TZ)
    assert (march.required, march.done, march.status) == (2, 2, OK)

    late = person(CareLevel.GENERAL, local(2026, 3, 10, 9), after_midnight)
    march = assess(late, "2026-03", local(2026, 4, 2), TZ)
    assert (march.done, march.status) == (1, OVERDUE)
    april = assess(late, "2026-04", local(2026, 4, 2), TZ)
    assert (april.done, april.status) == (1, DUE)


def test_general_is_due_until_local_midnight_ending_the_month() -> None:
    row = person(CareLevel.GENERAL, local(2026, 3, 10, 9))
    assert assess(row, "2026-03", local(2026, 3, 31, 23, 59), TZ).status is DUE
    assert assess(row, "2026-03", local(2026, 4, 1, 0, 0), TZ).status is OVERDUE


def test_emergency_factor_multiplies_and_rounds_up() -> None:
    general = person(CareLevel.GENERAL, *(local(2026, 3, d, 9) for d in (2, 9)))
    row = assess(general, "2026-03", local(2026, 3, 20), TZ, factor=1.5)
    assert (row.required, row.done, row.status) == (3, 2, DUE)
    # Special: 6 weeks x 1.5 = 9 visits, at most 2 counted in any one week.
    twice_weekly = tuple(
        local(2026, month, day, hour)
        for month, day in ((2, 24), (3, 3), (3, 10), (3, 17), (3, 24), (3, 31))
        for hour in (9, 15)
    )
    row = assess(person(CareLevel.SPECIAL, *twice_weekly), "2026-03", local(2026, 4, 9), TZ, 1.5)
    assert (row.required, row.done, row.status) == (9, 12, OK)
    assert week_needs_visit(
        person(CareLevel.SPECIAL, local(2026, 3, 10, 9)), local(2026, 3, 11), TZ, 2.0
    )


def test_visit_factor_takes_the_highest_period_overlapping_the_month() -> None:
    periods = [
        (local(2026, 2, 1), local(2026, 3, 1, 0, 0), 3.0),  # ends as March begins: no overlap
        (local(2026, 3, 20), None, 1.5),
        (local(2026, 3, 5), local(2026, 3, 8), 2.0),
    ]
    assert visit_factor(periods, "2026-03", TZ) == 2.0
    assert visit_factor(periods, "2026-02", TZ) == 3.0
    assert visit_factor([], "2026-03", TZ) == 1.0


def test_summaries_by_village_and_helper() -> None:
    now = local(2026, 4, 2)
    rows = [
        assess(person(CareLevel.GENERAL, local(2026, 3, 3), local(2026, 3, 4)), "2026-03", now, TZ),
        assess(person(CareLevel.GENERAL, helper="吴芳"), "2026-03", now, TZ),
    ]
    (village,) = summarize(rows, "village")
    assert (village.key, village.persons, village.ok, village.overdue) == ("坝芒村", 2, 1, 1)
    assert (village.required, village.done) == (4, 2)
    by_helper = {s.key: s for s in summarize(rows, "helper")}
    assert by_helper["吴芳"].overdue == 1 and by_helper["李四"].ok == 1


def test_naive_visit_time_is_refused() -> None:
    with pytest.raises(ValueError, match="time zone"):
        assess(person(CareLevel.GENERAL, datetime(2026, 3, 3)), "2026-03", local(2026, 3, 4), TZ)


def test_a_person_entering_mid_month_owes_only_the_rest_of_it() -> None:
    def joined(level: CareLevel, at: datetime, *visits: datetime) -> PersonVisits:
        return PersonVisits(1, "张三", "坝芒村", level, visits, registered_at=at)

    # Registered on Wednesday 18 March: the weeks of 16, 23 and 30 March remain.
    special = joined(CareLevel.SPECIAL, local(2026, 3, 18, 10), local(2026, 3, 19, 9))
    row = assess(special, "2026-03", local(2026, 3, 20), TZ)
    assert (row.required, row.done, row.status) == (3, 1, DUE)
    assert assess(special, "2026-04", local(2026, 4, 20), TZ).required == 5
    # General, registered on the last day: one visit owed, not two; 16 March: 16/31 of two.
    last_day = joined(CareLevel.GENERAL, local(2026, 3, 31, 9))
    assert assess(last_day, "2026-03", local(2026, 3, 31, 12), TZ).required == 1
    middle = joined(CareLevel.GENERAL, local(2026, 3, 16, 9))
    assert assess(middle, "2026-03", local(2026, 3, 20), TZ).required == 2
    assert assess(middle, "2026-03", local(2026, 3, 20), TZ, factor=2.0).required == 3
    # Registered before the month: the whole month counts.
    early = joined(CareLevel.GENERAL, local(2026, 1, 5))
    assert assess(early, "2026-03", local(2026, 3, 20), TZ).required == 2
