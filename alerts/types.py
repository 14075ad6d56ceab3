"""Alert vocabulary shared by the rules (which raise alerts) and escalation (which sends)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

__all__ = [
    "ACTIVE_STATUSES",
    "ALERT_LABELS",
    "CLOSED_STATUSES",
    "AlertAction",
    "AlertGroup",
    "AlertStatus",
    "AlertTrigger",
    "AlertType",
    "Transition",
    "transition",
]


class AlertGroup(StrEnum):
    EMERGENCY = "emergency"
    WELLBEING = "wellbeing"
    TECHNICAL = "technical"


class AlertType(StrEnum):
    SOS = "sos"
    FALL = "fall"
    INACTIVITY = "inactivity"
    DOOR_OPEN_NIGHT = "door_open_night"
    DEVICE_OFFLINE = "device_offline"
    BATTERY_LOW = "battery_low"
    GATEWAY_LINK = "gateway_link"
    #: A door flapping or a motion sensor stuck "occupied" (extension of SPEC §6).
    SENSOR_FAULT = "sensor_fault"

    @property
    def group(self) -> AlertGroup:
        if self in (AlertType.SOS, AlertType.FALL):
            return AlertGroup.EMERGENCY
        if self in (AlertType.INACTIVITY, AlertType.DOOR_OPEN_NIGHT):
            return AlertGroup.WELLBEING
        return AlertGroup.TECHNICAL


ALERT_LABELS: dict[AlertType, str] = {
    AlertType.SOS: "SOS求助",
    AlertType.FALL: "疑似跌倒",
    AlertType.INACTIVITY: "长时间无活动",
    AlertType.DOOR_OPEN_NIGHT: "夜间门未关",
    AlertType.DEVICE_OFFLINE: "设备离线",
    AlertType.BATTERY_LOW: "电池电量低",
    AlertType.GATEWAY_LINK: "网关断线",
    AlertType.SENSOR_FAULT: "传感器异常",
}


class AlertStatus(StrEnum):
    """The values of ``alerts.status`` (a plain string column: the enum is the vocabulary)."""

    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"
    CANCELLED = "cancelled"


#: Still being handled: one such alert per person and type (the partial unique index).
ACTIVE_STATUSES = frozenset({AlertStatus.OPEN, AlertStatus.ACKNOWLEDGED})
CLOSED_STATUSES = frozenset({AlertStatus.RESOLVED, AlertStatus.CANCELLED})


class AlertAction(StrEnum):
    """What a person (or a rule) may do to an alert; the audit log's ``action``."""

    ACKNOWLEDGE = "acknowledge"
    RESOLVE = "resolve"
    CANCEL = "cancel"
    REOPEN = "reopen"
    HAND_OVER = "handover"


@dataclass(frozen=True, slots=True)
class Transition:
    """An action is allowed from ``sources`` and leaves the alert ``target``."""

    sources: frozenset[AlertStatus]
    target: AlertStatus

    def allows(self, status: str) -> bool:
        return status in self.sources

    def source_values(self) -> list[str]:
        """For ``WHERE status IN (…)`` compare-and-set updates."""
        return sorted(s.value for s in self.sources)


#: The lifecycle state machine: raising makes an ``open`` alert; everything else is here.
#: (Raising again while active joins the alert instead of changing it.)
_TRANSITIONS: dict[AlertAction, Transition] = {
    AlertAction.ACKNOWLEDGE: Transition(frozenset({AlertStatus.OPEN}), AlertStatus.ACKNOWLEDGED),
    AlertAction.RESOLVE: Transition(ACTIVE_STATUSES, AlertStatus.RESOLVED),
    AlertAction.CANCEL: Transition(ACTIVE_STATUSES, AlertStatus.CANCELLED),
    AlertAction.REOPEN: Transition(CLOSED_STATUSES, AlertStatus.OPEN),
    AlertAction.HAND_OVER: Transition(
        frozenset({AlertStatus.ACKNOWLEDGED}), AlertStatus.ACKNOWLEDGED
    ),
}


def transition(action: AlertAction) -> Transition:
    return _TRANSITIONS[action]


@dataclass(frozen=True, slots=True)
class AlertTrigger:
    """A rule's decision that a person needs an alert of ``type``."""

    type: AlertType
    person_id: int
    at: datetime
    device_uid: str | None = None
    detail: dict[str, str] = field(default_factory=dict)
