"""SOS and fall raise at once, at the receive time; a retained press is history."""

from __future__ import annotations

from datetime import timedelta

from alerts.types import AlertType
from gateway.events import EventKind, SensorEvent
from gateway.rules.decisions import EmergencyDetail, Raise
from gateway.rules.emergency import EmergencyRule
from tests.unit.rule_facts import local

RULE = EmergencyRule()
AT = local(10, 9)


def event(kind: EventKind, *, retained: bool = False) -> SensorEvent:
    # A device clock an hour slow: the alert still counts from when we heard.
    return SensorEvent(kind, "sos-1", AT - timedelta(hours=1), AT, retained=retained)


def test_a_press_raises_an_sos_at_the_receive_time() -> None:
    assert RULE.decide(event(EventKind.SOS), 3) == [
        Raise(AlertType.SOS, 3, AT, EmergencyDetail(), "sos-1")
    ]


def test_a_fall_raises_a_fall() -> None:
    [decision] = RULE.decide(event(EventKind.FALL), 3)
    assert decision.type is AlertType.FALL


def test_a_retained_press_and_other_reports_raise_nothing() -> None:
    assert RULE.decide(event(EventKind.SOS, retained=True), 3) == []
    assert RULE.decide(event(EventKind.MOTION), 3) == []
    assert RULE.decide(event(EventKind.CHECK_IN), 3) == []
