"""The SOS safety net: a stored press with no alert is raised, after a grace period, once."""

from __future__ import annotations

from datetime import timedelta

from alerts.types import AlertType
from gateway.events import EventKind
from gateway.rules.decisions import EmergencyDetail, Raise
from gateway.rules.facts import EmergencyCandidate
from gateway.rules.sos_sweep import GRACE, LOOKBACK, SosSweepRule
from tests.unit.rule_facts import clock_at, local


def test_the_first_window_looks_back_and_leaves_the_normal_path_its_grace() -> None:
    rule = SosSweepRule()
    now = local(10, 9)
    assert rule.window(now) == (now - LOOKBACK, now - GRACE)


def test_an_uncovered_press_is_raised_and_the_window_moves_on() -> None:
    rule = SosSweepRule()
    clock = clock_at(local(10, 9))
    _lower, upper = rule.window(clock.now()) or (None, None)
    assert upper is not None
    lost = EmergencyCandidate(3, EventKind.SOS, upper - timedelta(seconds=1), "sos-1", False)
    handled = EmergencyCandidate(4, EventKind.FALL, upper, "fall-1", True)
    assert rule.decide([lost, handled], upper) == [
        Raise(AlertType.SOS, 3, lost.received_at, EmergencyDetail(), "sos-1")
    ]
    assert rule.window(clock.now()) is None, "nothing new since"
    clock.advance(timedelta(seconds=5))
    assert rule.window(clock.now()) == (upper, clock.now() - GRACE)
