"""Learned routines (gateway.rules.routine): pure, fed signs of life, no database.

Town time is Asia/Shanghai (UTC+8, no DST); dates are fixed, never today.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from gateway.config import InactivityRule, LearnedRoutine
from gateway.register.provisioning import ProvisioningError, parse_provisioning
from gateway.rules.quiet import QuietFacts, inactivity_detail, inactivity_due
from gateway.rules.routine import RoutineModel
from gateway.rules_runner.learning import PendingRoutine
from tests.helpers import register_yaml

TZ = ZoneInfo("Asia/Shanghai")
RULE = LearnedRoutine(enabled=True)


def local(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=TZ).astimezone(UTC)


def live_day(
    model: RoutineModel, day: int, *, wake: int = 6, out: tuple[int, int] = (13, 16)
) -> None:
    """Up at ``wake``:00, about the house every half hour, out of the door for the
    afternoon, in bed at 21:00."""
    moment = local(day, wake)
    while moment < local(day, 21):
        hour = moment.astimezone(TZ).hour
        if hour == out[0] and moment.astimezone(TZ).minute == 0:
            model.observe(moment, left_home=True)
            moment = local(day, out[1])
            model.observe(moment, left_home=True)  # back in through the door
        else:
            model.observe(moment, left_home=False)
        moment += timedelta(minutes=30)
    model.observe(local(day, 21), left_home=False)


def trained(days: int = 10, *, wake: int = 6, out: tuple[int, int] = (13, 16)) -> RoutineModel:
    model = RoutineModel(TZ, RULE)
    for day in range(1, days + 1):
        live_day(model, day, wake=wake, out=out)
    return model


def test_no_learned_deadline_until_enough_history() -> None:
    model = trained(days=RULE.min_days - 1)
    assert model.deadline(local(RULE.min_days, 10)) is None
    assert not model.ready(local(RULE.min_days, 10))


def test_a_silence_indoors_by_day_alerts_far_sooner_than_four_hours() -> None:
    model = trained()
    model.observe(local(11, 10), left_home=False)
    learned = model.deadline(local(11, 10))
    assert learned is not None
    # Half-hour gaps, widened by factor 1.25 and the margin.
    assert learned.at == local(11, 10) + timedelta(minutes=30 * 1.25) + RULE.margin
    assert learned.usual_by == local(11, 10, 30)


def sensor_day(model: RoutineModel, day: int) -> None:
    """Pottering in the kitchen every quarter hour, except for two hours in front of the TV
    in the living room from 10:30."""
    moment = local(day, 6)
    while moment <= local(day, 21):
        if local(day, 10, 30) < moment < local(day, 12, 30):
            moment += timedelta(minutes=15)
            continue
        sensor = "living-pir" if moment == local(day, 10, 30) else "kitchen-pir"
        model.observe(moment, left_home=False, where=sensor)
        moment += timedelta(minutes=15)


def test_a_silence_is_judged_by_the_sensor_that_saw_the_last_movement() -> None:
    by_sensor = RoutineModel(TZ, RULE)
    pooled = RoutineModel(TZ, LearnedRoutine(enabled=True, by_sensor=False))
    for model in (by_sensor, pooled):
        for day in range(1, 11):
            sensor_day(model, day)
        for minute in range(0, 61, 15):  # pottering in the kitchen since nine
            model.observe(
                local(11, 9) + timedelta(minutes=minute), left_home=False, where="kitchen-pir"
            )
    # After pottering in the kitchen: its quarter-hour gaps, not the TV's two hours that
    # also begin in the ten o'clock hour.
    kitchen = by_sensor.deadline(local(11, 10))
    assert kitchen is not None
    assert kitchen.at == local(11, 10) + timedelta(minutes=15 * 1.25) + RULE.margin
    together = pooled.deadline(local(11, 10))
    assert together is not None
    assert together.at == local(11, 10) + timedelta(minutes=120 * 1.25) + RULE.margin
    # Sat down in the living room: the TV's two hours.
    by_sensor.observe(local(11, 10, 30), left_home=False, where="living-pir")
    living = by_sensor.deadline(local(11, 10, 30))
    assert living is not None
    assert living.at == local(11, 10, 30) + timedelta(minutes=120 * 1.25) + RULE.margin


def test_out_of_the_door_with_no_movement_since_waits_for_the_door() -> None:
    model = trained()
    model.observe(local(11, 12, 58), left_home=False)
    model.observe(local(11, 13), left_home=True)
    model.observe(local(11, 13, 1), left_home=True)  # shut behind: the same passage
    learned = model.deadline(local(11, 13, 1))
    assert learned is not None
    # The house is empty: no alarm before out_max, however long the usual outing.
    assert learned.at == local(11, 13, 1) + RULE.out_max
    assert learned.usual_by == local(11, 16, 1)  # three-hour afternoons out


def test_the_next_passage_through_the_door_is_somebody_coming_back_in() -> None:
    model = trained()
    model.observe(local(11, 13), left_home=True)
    model.observe(local(11, 16), left_home=True)  # back in; no movement seen yet
    learned = model.deadline(local(11, 16))
    assert learned is not None
    # Judged as a silence indoors (fallen in the doorway), not as an outing.
    assert learned.at == local(11, 16) + timedelta(minutes=30 * 1.25) + RULE.margin


def test_a_silence_after_a_closed_alert_is_judged_as_the_one_it_continues() -> None:
    model = trained()
    model.observe(local(11, 13), left_home=True)
    checked = model.deadline(local(12, 13, 30), checked=True)
    assert checked is not None
    assert checked.at == local(12, 13, 30) + RULE.out_max  # still out: the door decides
    model.observe(local(12, 17), left_home=False)
    indoors = model.deadline(local(12, 18), checked=True)
    assert indoors is not None
    assert indoors.at == local(12, 18) + timedelta(minutes=30 * 1.25) + RULE.margin


def test_the_night_is_judged_by_the_usual_wake_up() -> None:
    model = trained()
    model.observe(local(11, 19), left_home=False)  # an early night
    learned = model.deadline(local(11, 19))
    assert learned is not None
    assert learned.usual_by == local(12, 6)
    assert learned.at == local(12, 6) + RULE.margin


def test_an_evening_silence_long_before_the_usual_bedtime_is_not_the_night() -> None:
    model = trained()  # in bed at 21:00 every night
    model.observe(local(11, 17), left_home=False)  # a fall after an early supper
    learned = model.deadline(local(11, 17))
    assert learned is not None
    assert learned.at == local(11, 17) + timedelta(minutes=30 * 1.25) + RULE.margin


def test_max_quiet_bounds_whatever_the_history_says() -> None:
    model = RoutineModel(TZ, RULE)
    for day in range(1, 11):  # still indoors from ten in the morning to eleven at night
        model.observe(local(day, 6), left_home=False)
        model.observe(local(day, 10), left_home=False)
        model.observe(local(day, 23), left_home=False)
    model.observe(local(11, 10), left_home=False)
    learned = model.deadline(local(11, 10))
    assert learned is not None
    assert learned.at == local(11, 10) + RULE.max_quiet


def test_an_alert_caps_what_a_long_silence_teaches() -> None:
    """Days of illness in bed (silent 06:00-18:00) must not teach the model to wait 12 h:
    the silence is learned only up to the alert that it raised."""
    model = trained()
    for day in (11, 12, 13):
        model.observe(local(day, 6), left_home=False)
        model.censor(local(day, 7))  # the inactivity alert an hour in
        model.observe(local(day, 18), left_home=False)
        model.observe(local(day, 21), left_home=False)
    model.observe(local(14, 6), left_home=False)
    learned = model.deadline(local(14, 6))
    assert learned is not None
    # Three one-hour values among ten half-hour ones: 60 min x 1.25 + the margin, not 12 h.
    assert learned.at - local(14, 6) <= timedelta(minutes=60 * 1.25) + RULE.margin


def test_marked_absences_and_emergency_days_teach_nothing() -> None:
    model = trained(days=7)
    model.exclude(local(8, 0), local(9, 0))
    model.observe(local(8, 6), left_home=False)
    model.observe(local(8, 18), left_home=False)  # twelve silent hours, but away
    model.exclude_day(date(2026, 3, 7))
    assert model.history_days(date(2026, 3, 9)) == 6
    assert not model.ready(local(9, 6))


def test_the_alert_explains_itself_in_chinese() -> None:
    model = trained()
    model.observe(local(11, 19), left_home=False)
    rule = InactivityRule(learned=RULE)
    facts = QuietFacts(last_activity=local(11, 19), created_at=local(1, 0))
    due = inactivity_due(facts, rule, TZ, routine=model)
    assert due.at == local(12, 6) + RULE.margin
    detail = inactivity_detail(due, local(12, 7, 51), TZ)
    assert detail["explanation"] == "通常 06:00 前有活动，现在 07:51 仍无活动"
    assert detail["now"] == "07:51"
    assert detail["since"] == "19:00"


def test_disabled_or_unready_learning_keeps_the_fixed_windows() -> None:
    facts = QuietFacts(last_activity=local(11, 10), created_at=local(1, 0))
    model = trained()
    fixed = inactivity_due(facts, InactivityRule(), TZ, routine=model)
    assert fixed.at == local(11, 14)
    assert fixed.usual_by is None
    assert "explanation" not in inactivity_detail(fixed, local(11, 14), TZ)
    fresh = RoutineModel(TZ, RULE)
    unready = inactivity_due(facts, InactivityRule(learned=RULE), TZ, routine=fresh)
    assert unready.at == local(11, 14)


def test_a_person_can_be_put_on_learned_routines_in_the_provisioning_file() -> None:
    extra = """    rules:
      inactivity:
        learned: {enabled: true, max_quiet: 8h}
"""
    text = register_yaml("lr", persons=1).replace("    devices:\n", extra + "    devices:\n", 1)
    doc = parse_provisioning(text, env={"HW_TEST_ADMIN_PASSWORD": "pw-123456789"})
    assert doc.persons[0].rules_override == {
        "inactivity": {"learned": {"enabled": True, "max_quiet": "8h"}}
    }
    wrong = text.replace("max_quiet: 8h", "max_quiet: 30m")
    with pytest.raises(ProvisioningError, match="min_quiet must be shorter than max_quiet"):
        parse_provisioning(wrong, env={"HW_TEST_ADMIN_PASSWORD": "pw-123456789"})


def test_a_gateway_running_for_months_holds_a_bounded_history() -> None:
    model = RoutineModel(TZ, RULE)
    start = local(1, 6)
    for day in range(120):
        for hour in (0, 4, 8, 12):
            model.observe(start + timedelta(days=day, hours=hour), left_home=False)
        model.exclude(start + timedelta(days=day, hours=13), start + timedelta(days=day, hours=14))
    # history (28 days) and a week's slack, not four months.
    assert model.days_held <= RULE.history.days + 7 + 1
    assert model.history_days((start + timedelta(days=120)).date()) == RULE.history.days
    model.observe(start + timedelta(days=120, hours=4), left_home=False)
    learned = model.deadline(start + timedelta(days=120, hours=4))  # 10:00, as every day
    assert learned is not None
    # Still the four-hour gaps of its last weeks (x 1.25 + the margin).
    moment = start + timedelta(days=120, hours=4)
    assert learned.at == moment + timedelta(minutes=240 * 1.25) + RULE.margin


def test_what_a_warming_routine_is_told_reaches_the_model_it_becomes() -> None:
    """The runner tells a routine still warming from the history what it would tell the
    model (signs of life, a censored silence, an emergency day, an absence): handed over,
    the model is the one it would have been."""
    direct = trained()
    warmed = trained()
    pending = PendingRoutine()
    for model in (direct, pending):
        model.observe(local(11, 6), left_home=False, where="kitchen-pir")
        model.censor(local(11, 8))  # an alert two hours in: learn two hours, not three
        model.observe(local(11, 9), left_home=False, where="kitchen-pir")
        model.observe(local(11, 10), left_home=False, where="kitchen-pir")
        model.exclude(local(11, 10, 30), local(11, 10, 45))  # away: not learned
        model.observe(local(11, 11, 30), left_home=False, where="kitchen-pir")
        model.exclude_day(date(2026, 3, 9))
        model.observe(local(11, 17), left_home=False, where="kitchen-pir")
    pending.hand_to(warmed)
    for moment in (local(11, 17), local(12, 6), local(12, 10), local(12, 19)):
        assert warmed.deadline(moment) == direct.deadline(moment)
    assert warmed.history_days(date(2026, 3, 12)) == direct.history_days(date(2026, 3, 12)) == 10
