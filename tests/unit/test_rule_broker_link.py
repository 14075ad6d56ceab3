"""The broker link: the duty line hears once after five minutes down, and once on return."""

from __future__ import annotations

from datetime import timedelta

from gateway.rules.broker_link import BrokerLinkRule
from gateway.rules.decisions import LinkChange, TellDuty
from tests.unit.rule_facts import clock_at, local


def test_down_for_the_threshold_tells_once_then_the_return() -> None:
    rule = BrokerLinkRule(timedelta(minutes=5))
    clock = clock_at(local(10, 8))
    assert rule.decide(False, clock.now()) is None
    clock.advance(timedelta(minutes=4, seconds=59))
    assert rule.decide(False, clock.now()) is None
    clock.advance(timedelta(seconds=1))
    told = rule.decide(False, clock.now())
    assert told == TellDuty(LinkChange.DOWN, local(10, 8))
    rule.told(told, delivered=True)
    assert rule.decide(False, clock.now()) is None, "once"
    clock.advance(timedelta(minutes=1))
    assert rule.decide(True, clock.now()) == TellDuty(LinkChange.RESTORED, local(10, 8, 6))
    assert rule.decide(True, clock.now()) is None


def test_no_duty_line_registered_means_trying_again() -> None:
    rule = BrokerLinkRule(timedelta(minutes=5))
    rule.decide(False, local(10, 8))
    told = rule.decide(False, local(10, 8, 5))
    assert told is not None
    rule.told(told, delivered=False)
    assert rule.decide(False, local(10, 8, 6)) == told


def test_a_blip_shorter_than_the_threshold_tells_nobody() -> None:
    rule = BrokerLinkRule(timedelta(minutes=5))
    assert rule.decide(False, local(10, 8)) is None
    assert rule.decide(True, local(10, 8, 3)) is None
    assert rule.decide(False, local(10, 8, 4)) is None
    assert rule.decide(False, local(10, 8, 8)) is None, "counting restarted at 08:04"
