"""Tasmota devices (SPEC §3 "tasmota").

The registered topic is the device's ``%topic%`` (the default ``FullTopic`` is
``%prefix%/%topic%/``), so a device publishes on ``tele/<t>/SENSOR``, ``tele/<t>/STATE``,
``tele/<t>/LWT`` (``Online``/``Offline``), ``tele/<t>/RESULT``, ``stat/<t>/RESULT``,
``stat/<t>/POWER[n]`` and, on older firmware with ``SetOption73``, ``stat/<t>/BUTTON<n>``.

What is understood:

* Switches: ``{"Switch1": "ON"}`` in ``SENSOR`` (``SwitchMode 15``/``16`` or TelePeriod) and
  ``{"Switch1": {"Action": "ON"}}`` in ``RESULT`` (``SetOption114``). ON means OPEN on a door
  sensor, movement on a PIR, a press on an SOS button and a fall on a fall sensor (see
  :func:`gateway.devices._common.add_input`): wire a plain reed with ``SwitchMode 2`` (or
  ``16``) so that ON is the open door. ``TOGGLE`` (``SwitchMode 0``) tells neither
  direction and yields no door or motion fact.
* Buttons: ``{"Button1": {"Action": "SINGLE"}}`` (``SetOption73``) or ``{"ACTION": "SINGLE"}``
  on ``stat/<t>/BUTTON1``: a press is an SOS on an SOS button, a check-in elsewhere.
* Zigbee2Tasmota: ``{"ZbReceived": {"0x8F20": {...}}}``. ``Contact`` is the IAS alarm bit,
  ``1`` = OPEN (the opposite of zigbee2mqtt's ``contact``); ``Occupancy`` 1 = movement;
  ``Click`` is a button action; on an SOS button ``Power`` (on/off cluster command) and
  ``ZoneStatusChange`` with the alarm bit are presses. ``BatteryPercentage`` and
  ``LinkQuality`` are read. Register a Zigbee device as ``<bridge topic>/<ShortAddr>`` with
  ``SetOption89 1`` (one topic per device); on a shared topic every ``ZbReceived`` entry is
  attributed to the registered device.
* ``STATE``: a sign of life; ``Wifi.RSSI`` (0-100 %) is the link quality. ``POWER``: a sign
  of life only.
* ``Time`` is the event time only when it carries an offset (``SetOption52 1``); Tasmota's
  default local time without offset is ignored.
"""

from __future__ import annotations

import re
from datetime import datetime

from gateway.devices._common import (
    DeviceSpec,
    Reading,
    TopicRole,
    add_action,
    add_input,
    as_object,
    availability,
    decode_text,
    iso_time,
    load_object,
    lower_keys,
    number,
    parent,
    read_battery,
    read_link_quality,
    type_name,
)
from gateway.devices.vocabulary import DeviceKind
from gateway.events import EventKind, PayloadError

#: Filters covering every device of the default family, registered or not.
STANDARD_FILTERS = ("tele/+/+", "stat/+/+")
#: The last topic levels that carry something; other ``tele``/``stat`` topics
#: (``INFO1``, ``STATUS5``, ``UPGRADE`` ...) are noise, see :func:`is_noise`.
_TELE = {"SENSOR": TopicRole.SENSOR, "STATE": TopicRole.STATE, "LWT": TopicRole.AVAILABILITY}
_STAT_POWER = re.compile(r"POWER\d*")
_STAT_BUTTON = re.compile(r"BUTTON\d+")

_SWITCH_KEY = re.compile(r"switch(\d+)")
_BUTTON_KEY = re.compile(r"button(\d+)")
_SWITCH_ON = frozenset({"on", "1", "true"})
_SWITCH_OFF = frozenset({"off", "0", "false"})
# Switch actions that are a press but tell no on/off direction.
_SWITCH_EDGES = frozenset({"toggle", "hold", "double", "inc_dec", "inv", "clear"})
_LWT_WORDS = {"online": True, "offline": False}
_ALARM_BIT = 0x01


def topics(spec: DeviceSpec) -> dict[str, TopicRole]:
    """The exact topics a Tasmota device publishes on."""
    t = spec.topic
    result: dict[str, TopicRole] = {f"tele/{t}/{suffix}": role for suffix, role in _TELE.items()}
    result[f"tele/{t}/RESULT"] = TopicRole.RESULT
    result[f"stat/{t}/RESULT"] = TopicRole.RESULT
    result[f"stat/{t}/POWER"] = TopicRole.POWER
    for n in range(1, 9):
        result[f"stat/{t}/POWER{n}"] = TopicRole.POWER
    for n in range(1, 5):
        result[f"stat/{t}/BUTTON{n}"] = TopicRole.BUTTON
    return result


def family_filters(topic: str) -> list[str]:
    """Filters for the devices whose ``%topic%`` shares this one's prefix."""
    base = parent(topic)
    return [f"tele/{base}/+/+", f"stat/{base}/+/+"] if base else list(STANDARD_FILTERS)


def is_noise(parts: list[str]) -> bool:
    """A ``tele``/``stat``/``cmnd`` topic that is never a device's news.

    ``cmnd`` is what controllers send to devices; ``tele/<t>/INFO1``, ``stat/<t>/STATUS5``
    and the like describe firmware and settings.
    """
    if parts[0] == "cmnd":
        return True
    if parts[0] not in ("tele", "stat") or len(parts) < 3:
        return False
    last = parts[-1]
    if parts[0] == "tele":
        return last not in _TELE and last != "RESULT"
    return not (last == "RESULT" or _STAT_POWER.fullmatch(last) or _STAT_BUTTON.fullmatch(last))


def read(spec: DeviceSpec, role: TopicRole, payload: bytes, received_at: datetime) -> Reading:
    """Read one Tasmota payload."""
    match role:
        case TopicRole.AVAILABILITY:
            return availability(payload, _LWT_WORDS, "LWT")
        case TopicRole.POWER:
            decode_text(payload)
            return Reading()
        case TopicRole.STATE:
            return _state(payload, received_at)
        case TopicRole.SENSOR | TopicRole.RESULT:
            return _sensor(spec, payload, received_at)
        case TopicRole.BUTTON:
            return _legacy_button(spec, payload)
        case _:
            raise PayloadError("unexpected_topic", f"Tasmota devices have no {role} topic")


def _state(payload: bytes, received_at: datetime) -> Reading:
    obj = lower_keys(load_object(payload))
    reading = Reading()
    wifi = as_object(obj.get("wifi"))
    if wifi is not None:
        read_link_quality(reading, lower_keys(wifi).get("rssi"), "Wifi.RSSI", top=100)
    _time(reading, obj, received_at)
    return reading


def _sensor(spec: DeviceSpec, payload: bytes, received_at: datetime) -> Reading:
    obj = lower_keys(load_object(payload))
    reading = Reading()
    for key, value in obj.items():
        if match := _SWITCH_KEY.fullmatch(key):
            _switch(reading, spec, f"Switch{match[1]}", value)
        elif match := _BUTTON_KEY.fullmatch(key):
            _button(reading, spec, f"Button{match[1]}", value)
        elif key == "zbreceived":
            _zigbee(reading, spec, value)
    _time(reading, obj, received_at)
    return reading


def _time(reading: Reading, obj: dict[str, object], received_at: datetime) -> None:
    moment = obj.get("time")
    if isinstance(moment, str):
        try:
            aware = datetime.fromisoformat(moment.strip()).tzinfo is not None
        except ValueError:
            aware = False
        if aware:
            iso_time(reading, moment, received_at)


def _switch(reading: Reading, spec: DeviceSpec, name: str, value: object) -> None:
    obj = as_object(value)
    if obj is not None:
        # {"Switch1": {"Action": "ON"}} -- SetOption114 detached switch.
        value = lower_keys(obj).get("action")
    if not isinstance(value, str):
        reading.problem("wrong_type", f"field {name!r}: expected a string, got {type_name(value)}")
        return
    word = value.strip().lower()
    if word in _SWITCH_ON or word in _SWITCH_OFF:
        add_input(reading, spec, word in _SWITCH_ON, name)
    elif word in _SWITCH_EDGES:
        if spec.kind == DeviceKind.SOS:
            reading.add(EventKind.SOS, source=(name, value))
    else:
        reading.problem("unknown_value", f"field {name!r}: unknown switch state {value[:40]!r}")


def _button(reading: Reading, spec: DeviceSpec, name: str, value: object) -> None:
    obj = as_object(value)
    action = lower_keys(obj).get("action") if obj is not None else None
    if not isinstance(action, str):
        reading.problem(
            "wrong_type", f'field {name!r}: expected {{"Action": ...}}, got {type_name(value)}'
        )
        return
    add_action(reading, spec, action, name)


def _legacy_button(spec: DeviceSpec, payload: bytes) -> Reading:
    reading = Reading()
    _button(reading, spec, "Button", load_object(payload))
    return reading


def _zigbee(reading: Reading, spec: DeviceSpec, value: object) -> None:
    devices = as_object(value)
    if devices is None:
        reading.problem(
            "wrong_type", f"field 'ZbReceived': expected an object, got {type_name(value)}"
        )
        return
    for address, attributes in devices.items():
        obj = as_object(attributes)
        if obj is None:
            reading.problem(
                "wrong_type",
                f"field 'ZbReceived.{address[:20]}': expected an object, "
                f"got {type_name(attributes)}",
            )
            continue
        _zigbee_device(reading, spec, lower_keys(obj))


def _zigbee_device(reading: Reading, spec: DeviceSpec, attrs: dict[str, object]) -> None:
    contact = _bit(reading, attrs.get("contact"), "Contact")
    if contact is not None:
        reading.add(EventKind.DOOR, contact, source=("Contact", str(int(contact))))
    occupancy = _bit(reading, attrs.get("occupancy"), "Occupancy")
    if occupancy is not None:
        reading.add(EventKind.MOTION, occupancy)
    click = attrs.get("click")
    if isinstance(click, str):
        add_action(reading, spec, click, "Click")
    if spec.kind == DeviceKind.SOS:
        if "power" in attrs:
            # An on/off command from a Zigbee button: pressing it is all it means.
            reading.add(EventKind.SOS, source=("Power", "command"))
        zone = number(attrs.get("zonestatuschange"))
        if zone is not None and zone.is_integer() and int(zone) & _ALARM_BIT:
            reading.add(EventKind.SOS, source=("ZoneStatusChange", str(int(zone))))
    read_battery(reading, attrs.get("batterypercentage"), "BatteryPercentage")
    read_link_quality(reading, attrs.get("linkquality"), "LinkQuality")


def _bit(reading: Reading, value: object, name: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if value in (0, 1):
            return bool(value)
        reading.problem("unknown_value", f"field {name!r}: expected 0 or 1, got {str(value)[:20]}")
        return None
    reading.problem("wrong_type", f"field {name!r}: expected 0 or 1, got {type_name(value)}")
    return None
