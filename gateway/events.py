"""The shared vocabulary: typed sensor events.

Everything after a device adapter sees a :class:`SensorEvent`, never a dict.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

__all__ = [
    "MAX_PAYLOAD_BYTES",
    "EventKind",
    "PayloadError",
    "RawMessage",
    "SensorEvent",
]

#: Payloads larger than this are refused before parsing: real sensor payloads are < 1 KiB.
MAX_PAYLOAD_BYTES = 16 * 1024


class EventKind(StrEnum):
    """What a device reported."""

    SOS = "sos"
    FALL = "fall"
    MOTION = "motion"
    DOOR = "door"
    CHECK_IN = "check_in"
    HEARTBEAT = "heartbeat"
    AVAILABILITY = "availability"
    BATTERY = "battery"

    @property
    def is_emergency(self) -> bool:
        """SOS and fall must never wait behind a batch timer."""
        return self in (EventKind.SOS, EventKind.FALL)

    @property
    def is_activity(self) -> bool:
        """Evidence that somebody is moving about the home."""
        return self in (EventKind.MOTION, EventKind.DOOR, EventKind.CHECK_IN)


@dataclass(slots=True, frozen=True, eq=False)
class RawMessage:
    """An MQTT message as received, before any interpretation."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    received_at: datetime


@dataclass(slots=True, frozen=True)
class SensorEvent:
    """One fact a device reported, in UTC.

    ``state`` carries the kind-specific value: door ``True`` = open, motion ``True`` =
    movement detected, availability ``True`` = online; ``None`` where the kind has no state
    (SOS press, fall, check-in, heartbeat).
    """

    kind: EventKind
    device_uid: str
    occurred_at: datetime
    received_at: datetime
    state: bool | None = None
    battery: int | None = None
    link_quality: int | None = None
    event_id: str | None = None
    retained: bool = False
    #: Set when the payload's own timestamp was unusable and receive time was used instead.
    timestamp_fallback: bool = False
    extra: tuple[tuple[str, str], ...] = field(default=())

    def __post_init__(self) -> None:
        for name in ("occurred_at", "received_at"):
            value: datetime = getattr(self, name)
            if value.tzinfo is None or value.utcoffset() != UTC.utcoffset(None):
                raise ValueError(f"{name} must be an aware UTC datetime, got {value!r}")


class PayloadError(ValueError):
    """A payload that an adapter cannot turn into events.

    ``reason`` is a short machine-readable label used for counting
    (``not_json``, ``wrong_type``, ``unknown_value``, ``too_large``, ``missing_field``, ...).
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
