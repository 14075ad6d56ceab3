"""A check-in withdraws the person's open wellbeing alerts, and only those."""

from __future__ import annotations

from alerts.types import AlertStatus, AlertType
from gateway.events import EventKind, SensorEvent
from gateway.rules.check_in import CheckInRule
from gateway.rules.decisions import Actor, Closing, Withdraw
from tests.unit.rule_facts import alert, local

RULE = CheckInRule()
AT = local(10, 12)
OPEN = [
    alert(AlertType.INACTIVITY, AT, alert_id=1),
    alert(AlertType.DOOR_OPEN_NIGHT, AT, AlertStatus.ACKNOWLEDGED, alert_id=2),
    alert(AlertType.BATTERY_LOW, AT, alert_id=3),
    alert(AlertType.SOS, AT, alert_id=4),
]


def test_a_check_in_withdraws_wellbeing_alerts_by_the_resident() -> None:
    press = SensorEvent(EventKind.CHECK_IN, "sos-1", AT, AT)
    assert RULE.decide(press, OPEN) == [
        Withdraw(1, Actor.RESIDENT, Closing.CHECK_IN),
        Withdraw(2, Actor.RESIDENT, Closing.CHECK_IN),
    ]


def test_a_retained_check_in_or_another_report_withdraws_nothing() -> None:
    assert RULE.decide(SensorEvent(EventKind.CHECK_IN, "sos-1", AT, AT, retained=True), OPEN) == []
    assert RULE.decide(SensorEvent(EventKind.MOTION, "pir", AT, AT, state=True), OPEN) == []
