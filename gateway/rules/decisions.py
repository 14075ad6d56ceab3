"""What the rules decide: raise, withdraw or resolve an alert, tell the duty line, or
keep a learned routine honest. Typed all the way; the runner renders text and applies them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from alerts.types import AlertType
from gateway.rules.sensors import SensorFault

__all__ = [
    "Actor",
    "AlertDetail",
    "BatteryDetail",
    "CensorRoutine",
    "Closing",
    "Decision",
    "DoorOpenDetail",
    "EmergencyDetail",
    "ExcludeFromRoutine",
    "InactivityDetail",
    "LinkChange",
    "OfflineDetail",
    "Raise",
    "Resolve",
    "ResolveAllOpen",
    "SensorFaultDetail",
    "TellDuty",
    "Verdict",
    "Withdraw",
]


# -- one detail per alert type ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EmergencyDetail:
    """SOS and fall: the press itself says it all."""


@dataclass(frozen=True, slots=True)
class InactivityDetail:
    #: Where the silence is counted from.
    baseline: datetime
    #: When the learned routine expected activity (None: the fixed windows decided).
    usual_by: datetime | None = None
    #: When the silence was judged too long.
    noticed_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class DoorOpenDetail:
    opened_at: datetime
    device_kind: str


@dataclass(frozen=True, slots=True)
class OfflineDetail:
    device_kind: str
    since: datetime


@dataclass(frozen=True, slots=True)
class BatteryDetail:
    device_kind: str
    battery: int


@dataclass(frozen=True, slots=True)
class SensorFaultDetail:
    fault: SensorFault


AlertDetail = (
    EmergencyDetail
    | InactivityDetail
    | DoorOpenDetail
    | OfflineDetail
    | BatteryDetail
    | SensorFaultDetail
)


# -- the decisions ---------------------------------------------------------------------


class Actor(StrEnum):
    """Who closes an alert the rules close."""

    SYSTEM = "system"
    RESIDENT = "resident"


class Closing(StrEnum):
    """Why the rules close an alert (reasons for a withdrawal, notes for a resolution)."""

    ACTIVITY_RESUMED = "activity resumed"
    DOOR_CLOSED = "door closed"
    CHECK_IN = "check_in"
    DEVICE_ONLINE = "device_online"
    BATTERY_REPLACED = "battery_replaced"
    SENSOR_HEALTHY = "sensor_healthy"


@dataclass(frozen=True, slots=True)
class Raise:
    type: AlertType
    person_id: int
    at: datetime
    detail: AlertDetail
    device_uid: str | None = None


@dataclass(frozen=True, slots=True)
class Withdraw:
    """Cancel an alert that turned out unnecessary."""

    alert_id: int
    by: Actor
    why: Closing


@dataclass(frozen=True, slots=True)
class Resolve:
    """Close an alert because what it reported is over."""

    alert_id: int
    why: Closing


@dataclass(frozen=True, slots=True)
class ResolveAllOpen:
    """Close every open alert of ``type`` for the person (ids looked up when applied)."""

    person_id: int
    type: AlertType
    why: Closing


class LinkChange(StrEnum):
    DOWN = "down"
    RESTORED = "restored"


@dataclass(frozen=True, slots=True)
class TellDuty:
    """The town duty line hears about the gateway itself (no person, no alert)."""

    change: LinkChange
    #: Since when the link has been down (DOWN) or up again (RESTORED).
    since: datetime


@dataclass(frozen=True, slots=True)
class ExcludeFromRoutine:
    """An absence or an emergency is going on: the silence around ``at`` teaches nothing."""

    person_id: int
    at: datetime


@dataclass(frozen=True, slots=True)
class CensorRoutine:
    """An inactivity alert was raised at ``at``: learn the silence only up to it."""

    person_id: int
    at: datetime


Decision = (
    Raise | Withdraw | Resolve | ResolveAllOpen | TellDuty | ExcludeFromRoutine | CensorRoutine
)


@dataclass(frozen=True, slots=True)
class Verdict:
    """A time-based rule's answer for one home: what to do now, and when to look again
    (None: only when a fact about the home changes)."""

    decisions: tuple[Decision, ...] = ()
    next_check: datetime | None = None
