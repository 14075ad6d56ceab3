"""Sensor-fault changes become alerts: raise on a fault, resolve once none is left."""

from __future__ import annotations

from alerts.types import AlertType
from gateway.rules.decisions import Closing, Raise, ResolveAllOpen, SensorFaultDetail
from gateway.rules.sensor_faults import SensorFaultRule
from gateway.rules.sensors import FaultChange, SensorFault
from tests.unit.rule_facts import local

RULE = SensorFaultRule()
AT = local(10, 9)


def test_a_new_fault_raises_naming_the_device() -> None:
    change = FaultChange("door", 7, SensorFault.FLAPPING, True, AT)
    assert RULE.decide([change], lambda _pid: True) == [
        Raise(AlertType.SENSOR_FAULT, 7, AT, SensorFaultDetail(SensorFault.FLAPPING), "door")
    ]


def test_the_alert_resolves_only_when_no_sensor_of_the_person_misbehaves() -> None:
    ended = FaultChange("door", 7, SensorFault.FLAPPING, False, AT)
    assert RULE.decide([ended], lambda _pid: True) == []
    assert RULE.decide([ended], lambda _pid: False) == [
        ResolveAllOpen(7, AlertType.SENSOR_FAULT, Closing.SENSOR_HEALTHY)
    ]
