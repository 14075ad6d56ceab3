"""Zigbee2MQTT devices (SPEC §3 "zigbee2mqtt").

The registered topic is ``<base>/<friendly_name>`` (default ``zigbee2mqtt/<uid>``). The device
state is a JSON object on that topic; ``<topic>/availability`` is ``{"state": "online"}`` or,
with the legacy availability payload, plain ``online``/``offline``.

Fields, as Zigbee2MQTT's device pages expose them:

* ``contact``: ``true`` means the magnet is near, i.e. the door is CLOSED (``DOOR`` false).
* ``occupancy``: ``MOTION``.
* ``action`` is momentary, never state; ``""`` or ``null`` means "no action". ``emergency``
  (TS0215A_sos, BT400B, HM1RC-2-E), ``sos`` and ``panic`` are an SOS on any device; on a
  device registered as an SOS button any plain press (``single``, ``double``, ``hold``,
  ``on``, ``off`` -- HS1EB, MIR-SO100) is an SOS too; elsewhere a press is a check-in.
* ``sos: true`` (IAS SOS buttons such as Feibit SEB01ZB) is an SOS; on an SOS button an IAS
  ``alarm: true`` is too.
* Falls: ``fall_down_status: "fall"`` (Tuya MIR-HE200-TY_fall; ``maybe_fall`` and ``none``
  are not falls), ``fall_status: "fall_alarm"`` (Heiman HS2FD-EF1-3.0; ``fall_warning`` is
  not), ``status: "falling"`` (OWON FDS315).
* ``battery`` (%), ``linkquality`` (LQI 0-255); ``battery_low: true`` yields a ``BATTERY``
  event with state true.
* ``last_seen`` (if Zigbee2MQTT is configured to add it, ISO 8601 or epoch milliseconds) is
  the event time.
"""

from __future__ import annotations

from datetime import datetime

from gateway.devices._common import (
    DeviceSpec,
    Reading,
    TopicRole,
    add_action,
    availability,
    epoch_time,
    iso_time,
    load_object,
    loose_bool,
    parent,
    read_battery,
    read_link_quality,
    strict_bool,
    string,
)
from gateway.devices.vocabulary import DeviceKind
from gateway.events import EventKind, PayloadError

#: Filters covering every device of the default family, registered or not.
STANDARD_FILTERS = ("zigbee2mqtt/+", "zigbee2mqtt/+/availability")

# field -> the value that means a fall; every other value of these enums is not one.
_FALL_VALUES = {
    "fall_down_status": "fall",
    "fall_status": "fall_alarm",
    "status": "falling",
}
_AVAILABILITY_WORDS = {"online": True, "offline": False}


def topics(spec: DeviceSpec) -> dict[str, TopicRole]:
    """The exact topics a zigbee2mqtt device publishes on."""
    return {spec.topic: TopicRole.STATE, f"{spec.topic}/availability": TopicRole.AVAILABILITY}


def family_filters(topic: str) -> list[str]:
    """Filters for the devices under the same base topic, or ``[]`` without a base."""
    base = parent(topic)
    return [f"{base}/+", f"{base}/+/availability"] if base else []


def read(spec: DeviceSpec, role: TopicRole, payload: bytes, received_at: datetime) -> Reading:
    """Read one zigbee2mqtt payload."""
    if role is TopicRole.STATE:
        return _state(spec, payload, received_at)
    if role is TopicRole.AVAILABILITY:
        return availability(payload, _AVAILABILITY_WORDS, "availability")
    raise PayloadError("unexpected_topic", f"zigbee2mqtt devices have no {role} topic")


def _state(spec: DeviceSpec, payload: bytes, received_at: datetime) -> Reading:
    obj = load_object(payload)
    reading = Reading()
    _emergencies(reading, spec, obj)
    contact = strict_bool(reading, obj.get("contact"), "contact")
    if contact is not None:
        reading.add(EventKind.DOOR, not contact, source=("contact", str(contact).lower()))
    occupancy = strict_bool(reading, obj.get("occupancy"), "occupancy")
    if occupancy is not None:
        reading.add(EventKind.MOTION, occupancy)
    if strict_bool(reading, obj.get("battery_low"), "battery_low"):
        reading.add(EventKind.BATTERY, True, source=("battery_low", "true"))
    read_battery(reading, obj.get("battery"), "battery")
    read_link_quality(reading, obj.get("linkquality"), "linkquality")
    last_seen = obj.get("last_seen")
    if isinstance(last_seen, str):
        iso_time(reading, last_seen, received_at)
    else:
        epoch_time(reading, last_seen, received_at, scale=1000.0)
    return reading


def _emergencies(reading: Reading, spec: DeviceSpec, obj: dict[str, object]) -> None:
    action = string(reading, obj.get("action"), "action")
    if action is not None:
        add_action(reading, spec, action, "action")
    if loose_bool(reading, obj.get("sos"), "sos"):
        reading.add(EventKind.SOS, source=("sos", "true"))
    # ``alarm`` is a siren or smoke alarm on other devices; only an SOS button's is a call.
    if spec.kind == DeviceKind.SOS and loose_bool(reading, obj.get("alarm"), "alarm"):
        reading.add(EventKind.SOS, source=("alarm", "true"))
    for name, fall_value in _FALL_VALUES.items():
        value = obj.get(name)
        if isinstance(value, str):
            if value.strip().lower() == fall_value:
                reading.add(EventKind.FALL, source=(name, value))
        elif name != "status":
            # ``status`` is too generic a name to reject when some other device puts a
            # number or an object there; the fall-specific names are ours to check.
            string(reading, value, name)
