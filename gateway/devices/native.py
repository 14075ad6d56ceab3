"""Homewatch's own protocol (SPEC §3 "native").

``<topic>/event`` carries a JSON object::

    {"type": "sos"|"fall"|"motion"|"door"|"check_in"|"heartbeat",
     "state": ..., "ts": "<ISO 8601 with offset>", "id": "<unique id>", "battery": 0-100}

door ``state`` is ``"open"``/``"closed"``, motion ``state`` is ``true``/``false``.
``<topic>/status`` is ``online``/``offline`` (retained, last will); ``{"state": "online"}`` is
accepted too. The registered topic defaults to ``homewatch/<uid>``.
"""

from __future__ import annotations

from datetime import datetime

from gateway.devices._common import (
    MAX_EVENT_ID_CHARS,
    DeviceSpec,
    Reading,
    TopicRole,
    availability,
    iso_time,
    load_object,
    parent,
    read_battery,
    type_name,
)
from gateway.events import EventKind, PayloadError

#: Filters covering every device of the default family, registered or not.
STANDARD_FILTERS = ("homewatch/+/event", "homewatch/+/status")

_TYPES = {
    "sos": EventKind.SOS,
    "fall": EventKind.FALL,
    "motion": EventKind.MOTION,
    "door": EventKind.DOOR,
    "check_in": EventKind.CHECK_IN,
    "heartbeat": EventKind.HEARTBEAT,
}
_DOOR_STATES = {"open": True, "closed": False}
_STATUS_WORDS = {"online": True, "offline": False}


def topics(spec: DeviceSpec) -> dict[str, TopicRole]:
    """The exact topics a native device publishes on."""
    return {f"{spec.topic}/event": TopicRole.EVENT, f"{spec.topic}/status": TopicRole.AVAILABILITY}


def family_filters(topic: str) -> list[str]:
    """Filters for the device's siblings (same prefix), or ``[]`` for a single-level topic."""
    base = parent(topic)
    return [f"{base}/+/event", f"{base}/+/status"] if base else []


def read(spec: DeviceSpec, role: TopicRole, payload: bytes, received_at: datetime) -> Reading:
    """Read one native payload."""
    if role is TopicRole.EVENT:
        return _event(payload, received_at)
    if role is TopicRole.AVAILABILITY:
        return availability(payload, _STATUS_WORDS, "status")
    raise PayloadError("unexpected_topic", f"native devices have no {role} topic")


def _event(payload: bytes, received_at: datetime) -> Reading:
    obj = load_object(payload)
    kind = _kind(obj)
    reading = Reading()
    if kind in (EventKind.SOS, EventKind.FALL, EventKind.CHECK_IN, EventKind.HEARTBEAT):
        # These kinds have no state; whatever ``state`` holds is ignored, never rejected.
        reading.add(kind)
    elif kind is EventKind.DOOR:
        _door(reading, obj)
    else:
        _motion(reading, obj)
    read_battery(reading, obj.get("battery"), "battery")
    _event_id(reading, obj.get("id"))
    iso_time(reading, obj.get("ts"), received_at)
    return reading


def _kind(obj: dict[str, object]) -> EventKind:
    raw = obj.get("type")
    if raw is None:
        raise PayloadError("missing_field", "field 'type' is missing")
    if not isinstance(raw, str):
        raise PayloadError("wrong_type", f"field 'type': expected a string, got {type_name(raw)}")
    # " SOS " from a hand-rolled firmware is still an SOS.
    kind = _TYPES.get(raw.strip().lower())
    if kind is None:
        raise PayloadError("unknown_value", f"field 'type': unknown value {raw[:40]!r}")
    return kind


def _door(reading: Reading, obj: dict[str, object]) -> None:
    state = obj.get("state")
    if state is None:
        reading.problem("missing_field", "field 'state' is missing (door needs open/closed)")
    elif not isinstance(state, str):
        reading.problem(
            "wrong_type", f'field \'state\': expected "open"/"closed", got {type_name(state)}'
        )
    elif (is_open := _DOOR_STATES.get(state.strip().lower())) is None:
        reading.problem("unknown_value", f"field 'state': unknown door state {state[:40]!r}")
    else:
        reading.add(EventKind.DOOR, is_open)


def _motion(reading: Reading, obj: dict[str, object]) -> None:
    state = obj.get("state")
    if state is None:
        reading.problem("missing_field", "field 'state' is missing (motion needs true/false)")
    elif not isinstance(state, bool):
        reading.problem("wrong_type", f"field 'state': expected true/false, got {type_name(state)}")
    else:
        reading.add(EventKind.MOTION, state)


def _event_id(reading: Reading, raw: object) -> None:
    if raw is None:
        return
    if isinstance(raw, int) and not isinstance(raw, bool):
        raw = str(raw)
    if not isinstance(raw, str):
        reading.problem("wrong_type", f"field 'id': expected a string, got {type_name(raw)}")
        return
    if len(raw) > MAX_EVENT_ID_CHARS:
        reading.problem("too_long", f"field 'id': longer than {MAX_EVENT_ID_CHARS} characters")
        return
    # An empty id would make every id-less message a duplicate of the first.
    reading.event_id = raw or None
