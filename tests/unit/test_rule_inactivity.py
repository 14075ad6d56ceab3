"""The inactivity rule on typed facts: raise at the deadline, withdraw on activity, quiet
while away or while an emergency is handled. No database; time is injected."""

from __future__ import annotations

from datetime import timedelta

from alerts.types import AlertStatus, AlertType
from gateway.config import LearnedRoutine
from gateway.rules.decisions import (
    Actor,
    CensorRoutine,
    Closing,
    ExcludeFromRoutine,
    InactivityDetail,
    Raise,
    Withdraw,
)
from gateway.rules.inactivity import InactivityRule
from gateway.rules.routine import RoutineModel
from tests.unit.rule_facts import PERSON, TZ, alert, clock_at, home, local, pir, rules

RULE = InactivityRule(TZ)


def test_four_quiet_hours_by_day_raise_exactly_at_the_deadline() -> None:
    clock = clock_at(local(10, 13, 59, 59))
    facts = home(pir(local(10, 10)), last_activity=local(10, 10))
    early = RULE.decide(facts, clock.now())
    assert early.decisions == () and early.next_check == local(10, 14)
    clock.advance(timedelta(seconds=1))
    verdict = RULE.decide(facts, clock.now())
    assert verdict.decisions == (
        Raise(
            AlertType.INACTIVITY,
            PERSON,
            local(10, 14),
            InactivityDetail(local(10, 10), None, local(10, 14)),
        ),
    )
    assert verdict.next_check is None


def test_an_early_sleeper_is_due_twelve_hours_later_not_at_dawn() -> None:
    facts = home(pir(local(10, 20)), last_activity=local(10, 20))
    assert RULE.decide(facts, local(11, 6)).next_check == local(11, 8)


def test_a_home_whose_sensors_never_reported_is_not_judged() -> None:
    facts = home(pir(None), last_activity=None)
    verdict = RULE.decide(facts, local(12, 8))
    assert verdict.decisions == () and verdict.next_check is None


def test_an_ignored_bedroom_sensor_does_not_make_a_home_watched() -> None:
    facts = home(
        pir(local(10, 8), uid="bed"),
        rule_set=rules(inactivity={"ignore_devices": ["bed"]}),
        last_activity=local(10, 8),
    )
    assert RULE.decide(facts, local(11, 8)).decisions == ()


def test_activity_after_the_alert_withdraws_it_while_untaken() -> None:
    raised = local(10, 14)
    facts = home(
        pir(local(10, 14, 5)),
        alerts=(alert(AlertType.INACTIVITY, raised),),
        last_activity=local(10, 14, 5),
    )
    verdict = RULE.decide(facts, local(10, 14, 6))
    assert verdict.decisions == (Withdraw(100, Actor.SYSTEM, Closing.ACTIVITY_RESUMED),)


def test_a_taken_alert_is_left_to_the_helper() -> None:
    facts = home(
        pir(local(10, 14, 5)),
        alerts=(alert(AlertType.INACTIVITY, local(10, 14), AlertStatus.ACKNOWLEDGED),),
        last_activity=local(10, 14, 5),
    )
    assert RULE.decide(facts, local(10, 14, 6)).decisions == ()


def test_an_open_alert_with_no_new_activity_is_not_raised_again() -> None:
    facts = home(
        pir(local(10, 10)),
        alerts=(alert(AlertType.INACTIVITY, local(10, 14)),),
        last_activity=local(10, 10),
    )
    assert RULE.decide(facts, local(10, 18)).decisions == ()


def test_away_suspends_the_rule_until_the_return() -> None:
    facts = home(pir(local(10, 8)), last_activity=local(10, 8), away_until=local(12, 8))
    verdict = RULE.decide(facts, local(11, 8))
    assert verdict.decisions == () and verdict.next_check == local(12, 8)


def test_the_return_starts_a_fresh_quiet_period() -> None:
    facts = home(pir(local(10, 8)), last_activity=local(10, 8), returned_at=local(12, 8))
    assert RULE.decide(facts, local(12, 11)).next_check == local(12, 12)


def test_an_absence_about_to_start_is_looked_at_when_it_starts() -> None:
    facts = home(pir(local(10, 8)), last_activity=local(10, 8), next_away_start=local(10, 9))
    assert RULE.decide(facts, local(10, 8, 30)).next_check == local(10, 9)


def test_no_alarm_about_the_silence_while_a_fall_is_handled() -> None:
    facts = home(
        pir(local(10, 8)),
        alerts=(alert(AlertType.FALL, local(10, 8), AlertStatus.ACKNOWLEDGED, alert_id=5),),
        last_activity=local(10, 8),
    )
    verdict = RULE.decide(facts, local(10, 13))
    assert verdict.decisions == () and verdict.next_check is None


def test_a_closed_alert_moves_the_baseline() -> None:
    facts = home(
        pir(local(10, 8)),
        closed={AlertType.INACTIVITY: local(10, 12, 30)},
        last_activity=local(10, 8),
    )
    assert RULE.decide(facts, local(10, 13)).next_check == local(10, 16, 30)


def test_emergency_mode_halves_the_quiet_period() -> None:
    facts = home(pir(local(10, 8)), last_activity=local(10, 8), inactivity_factor=0.5)
    assert RULE.decide(facts, local(10, 9)).next_check == local(10, 10)


def test_a_learned_routine_is_censored_on_raising_and_excluded_while_away() -> None:
    learning = rules(inactivity={"learned": {"enabled": True}})
    routine = RoutineModel(TZ, LearnedRoutine(enabled=True))
    # With its model, and while the model still warms from the history (none yet): the
    # runner keeps what it is told for the model to come.
    for model in (routine, None):
        silent = home(
            pir(local(10, 8)), last_activity=local(10, 8), routine=model, rule_set=learning
        )
        raised = RULE.decide(silent, local(10, 12)).decisions
        assert raised[-1] == CensorRoutine(PERSON, local(10, 12))
        away = home(
            pir(local(10, 8)),
            last_activity=local(10, 8),
            routine=model,
            away_until=local(11, 8),
            rule_set=learning,
        )
        excluded = RULE.decide(away, local(10, 9)).decisions
        assert excluded == (ExcludeFromRoutine(PERSON, local(10, 9)),)
    # A home that does not learn is told nothing of the kind.
    fixed = home(pir(local(10, 8)), last_activity=local(10, 8))
    assert not any(
        isinstance(d, CensorRoutine) for d in RULE.decide(fixed, local(10, 12)).decisions
    )
