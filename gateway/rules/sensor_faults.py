"""Sensor faults become alerts: a flapping door or a motion sensor stuck "occupied" raises
``sensor_fault``; once none of the person's sensors misbehaves, the alert resolves.

:class:`gateway.rules.sensors.SensorHealth` judges the reports; this rule turns the fault
changes it records into decisions.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from alerts.types import AlertType
from gateway.rules.decisions import Closing, Decision, Raise, ResolveAllOpen, SensorFaultDetail
from gateway.rules.sensors import FaultChange

__all__ = ["SensorFaultRule"]

log = logging.getLogger(__name__)


class SensorFaultRule:
    def decide(
        self, changes: Iterable[FaultChange], person_has_fault: Callable[[int], bool]
    ) -> list[Decision]:
        decisions: list[Decision] = []
        for change in changes:
            if change.active:
                log.warning(
                    "%s is %s: its reports no longer count", change.device_uid, change.fault
                )
                decisions.append(
                    Raise(
                        AlertType.SENSOR_FAULT,
                        change.person_id,
                        change.at,
                        SensorFaultDetail(change.fault),
                        change.device_uid,
                    )
                )
            elif not person_has_fault(change.person_id):
                # (while another of the person's sensors still misbehaves, the alert stays)
                decisions.append(
                    ResolveAllOpen(change.person_id, AlertType.SENSOR_FAULT, Closing.SENSOR_HEALTHY)
                )
        return decisions
