"""Shelly devices, Gen1 and Gen2+ (SPEC §3 "shelly").

Gen1 devices publish under ``shellies/<device-id>`` (the registered topic, the default):
``<t>/online`` ``true``/``false`` (retained last will), ``<t>/sensor/state`` ``open``/``close``
(Door/Window 2), ``<t>/sensor/motion`` ``true``/``false``, ``<t>/sensor/battery`` (%),
``<t>/input/<n>`` ``0``/``1``, ``<t>/input_event/<n>`` ``{"event": "S", "event_cnt": 4}``
(Button1, i3: ``S``, ``SS``, ``SSS``, ``L``, ``SL``, ``LS``), ``<t>/info`` (full status) and
``<t>/status`` (Shelly Motion: ``{"motion": true, "bat": 87, ...}``).

Gen2+ devices publish under their MQTT topic prefix (the registered topic, by default the
device id such as ``shellyplusi4-a8032ab1c2d3``): ``<t>/online``, ``<t>/events/rpc`` carrying
``NotifyEvent`` (``single_push``, ``double_push``, ``triple_push``, ``long_push`` on
``input:<n>``) and ``NotifyStatus``/``NotifyFullStatus``, and, with "generic status update over
MQTT" enabled, ``<t>/status/input:<n>`` and ``<t>/status/devicepower:<n>``.

The two generations are told apart by the topic a message arrives on (its role), so a
registration covers both. A press is an SOS on an SOS button and a check-in elsewhere; an
input that is on follows :func:`gateway.devices._common.add_input` (on = open door).
``btn_down``/``btn_up`` are not presses: the ``*_push`` event that follows them is.
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
    epoch_time,
    load_json,
    load_object,
    number,
    parent,
    read_battery,
    rssi_quality,
    strict_bool,
    string,
    type_name,
)
from gateway.devices.vocabulary import DeviceKind
from gateway.events import EventKind, PayloadError

#: Filters covering every device of the default families, registered or not.
STANDARD_FILTERS = (
    "shellies/+/online",
    "shellies/+/info",
    "shellies/+/status",
    "shellies/+/announce",
    "shellies/+/sensor/+",
    "shellies/+/input/+",
    "shellies/+/input_event/+",
    # Gen2+ devices whose topic prefix was set to ``shellies/<id>`` to match Gen1.
    "shellies/+/events/rpc",
    "shellies/+/status/+",
    "+/events/rpc",
    "+/online",
    "+/status/+",
)
_INPUTS = 4
_GEN1 = (
    {
        "online": TopicRole.AVAILABILITY,
        "info": TopicRole.INFO,
        "status": TopicRole.INFO,
        "announce": TopicRole.TELEMETRY,
        "sensor/state": TopicRole.CONTACT,
        "sensor/motion": TopicRole.MOTION,
        "sensor/battery": TopicRole.BATTERY,
    }
    | {f"input/{n}": TopicRole.INPUT for n in range(_INPUTS)}
    | {f"input_event/{n}": TopicRole.BUTTON for n in range(_INPUTS)}
)
_GEN2 = {
    "online": TopicRole.AVAILABILITY,
    "events/rpc": TopicRole.RPC,
    "status/devicepower:0": TopicRole.DEVICE_POWER,
} | {f"status/input:{n}": TopicRole.INPUT for n in range(_INPUTS)}
# The topic tails that carry news, for both generations (a Gen2 may use ``shellies/<id>``).
_MEANINGFUL_UNDER_SHELLIES = re.compile(
    r"online|info|status|announce|sensor/(state|motion|battery)|input/\d+|input_event/\d+"
    r"|events/rpc|status/(input|devicepower):\d+"
)
_GEN2_STATUS_MEANINGFUL = re.compile(r"input:\d+|devicepower:\d+")
_GEN2_COMPONENT = re.compile(r"[a-z0-9_]+(:\d+)?")

_ONLINE_WORDS = {"true": True, "false": False}
_CONTACT_WORDS = {"open": True, "close": False, "closed": False}
_MOTION_WORDS = {"true": True, "false": False, "1": True, "0": False}
_GEN1_PRESSES = frozenset({"S", "SS", "SSS", "L", "SL", "LS"})
_INPUT_COMPONENT = re.compile(r"input:\d+")
_POWER_COMPONENT = re.compile(r"devicepower:\d+")


def topics(spec: DeviceSpec) -> dict[str, TopicRole]:
    """The exact topics a Shelly publishes on, for both generations."""
    t = spec.topic
    return {f"{t}/{suffix}": role for suffix, role in (_GEN1 | _GEN2).items()}


def family_filters(topic: str) -> list[str]:
    """Filters for the Shellies under the same prefix, or ``[]`` without a prefix."""
    base = parent(topic)
    if not base:
        return []
    return [
        f.replace("shellies/", f"{base}/", 1) if f.startswith("shellies/") else f"{base}/{f}"
        for f in STANDARD_FILTERS
    ]


def is_noise(parts: list[str]) -> bool:
    """A Shelly topic that is never a device's news.

    Relay power, energy, temperature, commands and the broadcast ``shellies/announce``
    (Gen1); component statuses other than inputs and battery, and RPC requests (Gen2).
    """
    if parts[0] == "shellies":
        if len(parts) <= 2:
            return True
        return not _MEANINGFUL_UNDER_SHELLIES.fullmatch("/".join(parts[2:]))
    if "homewatch" in parts:
        return False
    if len(parts) >= 3 and parts[-2] == "status" and _GEN2_COMPONENT.fullmatch(parts[-1]):
        return not _GEN2_STATUS_MEANINGFUL.fullmatch(parts[-1])
    # ``<id>/rpc`` is a request to the device; ``<id>/events/rpc`` is the device speaking.
    return len(parts) >= 2 and parts[-1] in ("rpc", "command") and parts[-2] != "events"


def read(spec: DeviceSpec, role: TopicRole, payload: bytes, received_at: datetime) -> Reading:
    """Read one Shelly payload."""
    match role:
        case TopicRole.AVAILABILITY:
            return availability(payload, _ONLINE_WORDS, "online")
        case TopicRole.CONTACT:
            return _word(payload, _CONTACT_WORDS, EventKind.DOOR, "sensor/state")
        case TopicRole.MOTION:
            return _word(payload, _MOTION_WORDS, EventKind.MOTION, "sensor/motion")
        case TopicRole.BATTERY:
            return _battery(payload)
        case TopicRole.INPUT:
            return _input(spec, payload)
        case TopicRole.BUTTON:
            return _input_event(spec, payload)
        case TopicRole.INFO:
            return _info(payload)
        case TopicRole.RPC:
            return _rpc(spec, payload, received_at)
        case TopicRole.DEVICE_POWER:
            reading = Reading()
            _device_power(reading, load_object(payload))
            return reading
        case TopicRole.TELEMETRY:
            return Reading()
        case _:
            raise PayloadError("unexpected_topic", f"Shelly devices have no {role} topic")


def _word(payload: bytes, words: dict[str, bool], kind: EventKind, name: str) -> Reading:
    text = decode_text(payload)
    state = words.get(text.lower())
    if state is None:
        raise PayloadError("unknown_value", f"{name}: unknown value {text[:40]!r}")
    reading = Reading()
    reading.add(kind, state)
    return reading


def _battery(payload: bytes) -> Reading:
    text = decode_text(payload)
    try:
        value: object = float(text)
    except ValueError:
        raise PayloadError(
            "wrong_type", f"sensor/battery: expected a number, got {text[:40]!r}"
        ) from None
    reading = Reading()
    # float("nan") parses; comparisons with NaN are false, so read_battery drops it.
    read_battery(reading, value, "sensor/battery")
    return reading


def _input(spec: DeviceSpec, payload: bytes) -> Reading:
    reading = Reading()
    text = decode_text(payload)
    if text in ("0", "1"):
        # Gen1 ``input/<n>``.
        add_input(reading, spec, text == "1", "input")
        return reading
    obj = as_object(load_json(payload))
    if obj is None:
        raise PayloadError("wrong_type", "input: expected 0, 1 or a status object")
    # Gen2 ``status/input:<n>``: ``state`` is null for inputs in button mode.
    state = strict_bool(reading, obj.get("state"), "state")
    if state is not None:
        add_input(reading, spec, state, "input")
    return reading


def _input_event(spec: DeviceSpec, payload: bytes) -> Reading:
    obj = load_object(payload)
    reading = Reading()
    event = string(reading, obj.get("event"), "event")
    # ``""`` is what a Gen1 device reports before any press.
    if event and event.strip().upper() in _GEN1_PRESSES:
        kind = EventKind.SOS if spec.kind == DeviceKind.SOS else EventKind.CHECK_IN
        reading.add(kind, source=("event", event.strip()))
    return reading


def _info(payload: bytes) -> Reading:
    obj = load_object(payload)
    reading = Reading()
    bat = obj.get("bat")
    bat_obj = as_object(bat)
    read_battery(reading, bat_obj.get("value") if bat_obj is not None else bat, "bat")
    wifi = as_object(obj.get("wifi_sta"))
    rssi = number(wifi.get("rssi")) if wifi is not None else None
    if rssi is not None and -120 <= rssi <= 0:
        reading.link_quality = rssi_quality(rssi)
    sensor = as_object(obj.get("sensor"))
    # The Door/Window's full status nests the contact in ``sensor``; the Motion's status
    # carries ``motion`` at the top. Button events in ``inputs`` are past events: ignored.
    motion = strict_bool(reading, obj.get("motion"), "motion")
    if sensor is not None:
        state = sensor.get("state")
        if isinstance(state, str) and state.lower() in _CONTACT_WORDS:
            reading.add(EventKind.DOOR, _CONTACT_WORDS[state.lower()])
        if motion is None:
            motion = strict_bool(reading, sensor.get("motion"), "sensor.motion")
    if motion is not None:
        reading.add(EventKind.MOTION, motion)
    return reading


def _rpc(spec: DeviceSpec, payload: bytes, received_at: datetime) -> Reading:
    obj = load_object(payload)
    reading = Reading()
    method = obj.get("method")
    if method is None:
        raise PayloadError("missing_field", "field 'method' is missing")
    if not isinstance(method, str):
        raise PayloadError(
            "wrong_type", f"field 'method': expected a string, got {type_name(method)}"
        )
    params = as_object(obj.get("params"))
    if params is None:
        raise PayloadError("wrong_type", "field 'params': expected an object")
    epoch_time(reading, params.get("ts"), received_at)
    if method == "NotifyEvent":
        _notify_event(reading, spec, params.get("events"))
    elif method in ("NotifyStatus", "NotifyFullStatus"):
        _notify_status(reading, spec, params)
    return reading


def _notify_event(reading: Reading, spec: DeviceSpec, events: object) -> None:
    if not isinstance(events, list):
        reading.problem(
            "wrong_type", f"field 'params.events': expected an array, got {type_name(events)}"
        )
        return
    for item in events:
        event = as_object(item)
        if event is None:
            reading.problem("wrong_type", "field 'params.events[]': expected an object")
            continue
        name = event.get("event")
        component = event.get("component")
        # Gen2 names events in words (``single_push``); non-input components emit
        # ``config_changed`` and the like, which carry no press.
        if isinstance(name, str) and isinstance(component, str) and component.startswith("input"):
            add_action(reading, spec, name, "event")


def _notify_status(reading: Reading, spec: DeviceSpec, params: dict[str, object]) -> None:
    for component, status in params.items():
        obj = as_object(status)
        if obj is None:
            continue
        if _INPUT_COMPONENT.fullmatch(component):
            state = strict_bool(reading, obj.get("state"), f"{component}.state")
            if state is not None:
                add_input(reading, spec, state, component)
        elif _POWER_COMPONENT.fullmatch(component):
            _device_power(reading, obj)
        elif component == "wifi":
            rssi = number(obj.get("rssi"))
            if rssi is not None and -120 <= rssi <= 0:
                reading.link_quality = rssi_quality(rssi)


def _device_power(reading: Reading, obj: dict[str, object]) -> None:
    battery = as_object(obj.get("battery"))
    if battery is not None:
        read_battery(reading, battery.get("percent"), "battery.percent")
