"""Sensor-fault changes become alerts: raise on a fault, resolve once none is left."""

from __future__ import annotations

from datetime import timedelta

from alerts.types import AlertType
from gateway.events import EventKind, SensorEvent
from gateway.rules.decisions import Closing, Raise, ResolveAllOpen, SensorFaultDetail
from gateway.rules.sensor_faults import SensorFaultRule
from gateway.rules.sensors import FaultChange, SensorFault, SensorHealth
from tests.unit.rule_facts import DEFAULTS, clock_at, local

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


def test_a_flapping_door_is_found_and_its_calm_ends_the_fault_on_a_sweep() -> None:
    health = SensorHealth(lambda _pid: DEFAULTS)
    clock = clock_at(AT)
    for n in range(DEFAULTS.flapping.changes):
        clock.advance(timedelta(seconds=2))
        now = clock.now()
        event = SensorEvent(EventKind.DOOR, "door", now, now, state=n % 2 == 0)
        health.counts_as_activity(event, 7, door_changed=True)
    [started] = health.take_changes()
    assert started.active and health.faulty("door")
    last_change = clock.now()
    health.sweep(last_change + DEFAULTS.flapping.calm - timedelta(seconds=1))
    assert health.take_changes() == []
    health.sweep(last_change + DEFAULTS.flapping.calm)
    [ended] = health.take_changes()
    assert not ended.active and not health.faulty("door")
