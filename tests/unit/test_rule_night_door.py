"""The night-door rule: open for 15 minutes inside the night window raises; closing
withdraws an untaken alert; a faulty door and an opening already dealt with raise nothing."""

from __future__ import annotations

from datetime import timedelta

from alerts.types import AlertStatus, AlertType
from gateway.rules.decisions import Actor, Closing, DoorOpenDetail, Raise, Withdraw
from gateway.rules.night_door import NightDoorRule
from tests.unit.rule_facts import PERSON, TZ, alert, clock_at, door, home, local

RULE = NightDoorRule(TZ)


def test_a_door_open_since_nine_raises_at_a_quarter_past_ten() -> None:
    facts = home(door(door_open=True, door_changed_at=local(10, 21)))
    clock = clock_at(local(10, 22, 14, 59))
    assert RULE.decide(facts, clock.now()).next_check == local(10, 22, 15)
    clock.advance(timedelta(seconds=1))
    verdict = RULE.decide(facts, clock.now())
    assert verdict.decisions == (
        Raise(
            AlertType.DOOR_OPEN_NIGHT,
            PERSON,
            local(10, 22, 15),
            DoorOpenDetail(local(10, 21), "door"),
            "door",
        ),
    )


def test_a_door_closed_by_day_needs_no_look() -> None:
    verdict = RULE.decide(home(door(door_open=False, door_changed_at=local(10, 9))), local(10, 23))
    assert verdict.decisions == () and verdict.next_check is None


def test_closing_the_door_withdraws_an_untaken_alert_but_not_a_taken_one() -> None:
    closed_door = door(door_open=False, door_changed_at=local(10, 22, 30))
    untaken = home(closed_door, alerts=(alert(AlertType.DOOR_OPEN_NIGHT, local(10, 22, 15)),))
    assert RULE.decide(untaken, local(10, 22, 31)).decisions == (
        Withdraw(100, Actor.SYSTEM, Closing.DOOR_CLOSED),
    )
    taken = home(
        closed_door,
        alerts=(alert(AlertType.DOOR_OPEN_NIGHT, local(10, 22, 15), AlertStatus.ACKNOWLEDGED),),
    )
    assert RULE.decide(taken, local(10, 22, 31)).decisions == ()


def test_a_flapping_door_is_not_trusted_to_be_open() -> None:
    facts = home(door(door_open=True, door_changed_at=local(10, 21), faulty=True))
    assert RULE.decide(facts, local(10, 23)).decisions == ()


def test_an_opening_already_dealt_with_is_not_raised_again() -> None:
    facts = home(
        door(door_open=True, door_changed_at=local(10, 21)),
        closed={AlertType.DOOR_OPEN_NIGHT: local(10, 22, 40)},
    )
    assert RULE.decide(facts, local(10, 23)).decisions == ()
