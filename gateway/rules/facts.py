"""What the rules are told: typed facts, read by the runner from storage or from the ingest.

A rule never reads a database: the runner hands it one :class:`HomeFacts` per home (a
snapshot of what the database knows about that person), the stored events, and ``now``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType

from alerts.types import AlertStatus, AlertType
from gateway.config import RulesConfig
from gateway.events import EventKind
from gateway.rules.routine import RoutineModel

__all__ = [
    "ACTIVITY_KINDS",
    "DeviceFacts",
    "EmergencyCandidate",
    "HomeFacts",
    "OpenAlert",
]

#: Devices whose reports can show a person moving about (an SOS button alone cannot).
ACTIVITY_KINDS = frozenset({"motion", "door", "multi"})


@dataclass(frozen=True, slots=True)
class OpenAlert:
    """An alert still being handled (open or acknowledged)."""

    id: int
    type: AlertType
    status: AlertStatus
    raised_at: datetime

    @property
    def untaken(self) -> bool:
        """Nobody has taken it yet: the system may still withdraw it."""
        return self.status is AlertStatus.OPEN


@dataclass(frozen=True, slots=True)
class DeviceFacts:
    """One device of a home and what it last told us."""

    uid: str
    kind: str
    online: bool | None = None
    last_seen_at: datetime | None = None
    battery: int | None = None
    door_open: bool | None = None
    door_changed_at: datetime | None = None
    #: The sensor-fault rule currently distrusts its reports (flapping, stuck).
    faulty: bool = False


def _no_alerts() -> Mapping[AlertType, OpenAlert]:
    return MappingProxyType({})


def _no_closures() -> Mapping[AlertType, datetime]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class HomeFacts:
    """One watched person's home as the time-based rules see it at one moment."""

    person_id: int
    created_at: datetime
    rules: RulesConfig
    last_activity: datetime | None = None
    #: In device id order: the first matching device names an alert, as before.
    devices: tuple[DeviceFacts, ...] = ()
    open_alerts: Mapping[AlertType, OpenAlert] = field(default_factory=_no_alerts)
    #: When the person's last alert of each type was closed (resolved or cancelled).
    last_closed: Mapping[AlertType, datetime] = field(default_factory=_no_closures)
    #: Away now: until when (None: not away).
    away_until: datetime | None = None
    #: The next marked absence that has not started yet.
    next_away_start: datetime | None = None
    #: When the person's last marked absence ended.
    returned_at: datetime | None = None
    #: The town's emergency mode tightens quiet periods (1.0: none).
    inactivity_factor: float = 1.0
    #: The person's learned routine (only when their rules enable it); read, never changed.
    routine: RoutineModel | None = None

    def alert(self, alert_type: AlertType) -> OpenAlert | None:
        return self.open_alerts.get(alert_type)


@dataclass(frozen=True, slots=True)
class EmergencyCandidate:
    """A stored SOS or fall press, and whether an alert already covers it."""

    person_id: int
    kind: EventKind
    received_at: datetime
    device_uid: str
    covered: bool
