"""Alert vocabulary shared by the rules (which raise alerts) and escalation (which sends)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

__all__ = ["ALERT_LABELS", "AlertGroup", "AlertStatus", "AlertTrigger", "AlertType"]


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
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class AlertTrigger:
    """A rule's decision that a person needs an alert of ``type``."""

    type: AlertType
    person_id: int
    at: datetime
    device_uid: str | None = None
    detail: dict[str, str] = field(default_factory=dict)
