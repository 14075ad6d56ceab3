"""The Tasmota adapter: LWT, switches, buttons, Zigbee2Tasmota ``ZbReceived``."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gateway.devices import DeviceSpec, TopicRole, device_topics
from gateway.events import EventKind
from gateway.register.vocabulary import DeviceKind, Protocol
from tests.unit.device_payloads import NOW, kinds, msg, rejected


def spec(kind: DeviceKind, topic: str = "bm-dev") -> DeviceSpec:
    return DeviceSpec(f"uid-{topic}", kind, Protocol.TASMOTA, topic)


DOOR = spec(DeviceKind.DOOR, "bm-door")
PIR = spec(DeviceKind.MOTION, "bm-pir")
SOS = spec(DeviceKind.SOS, "bm-sos")
FALL = spec(DeviceKind.FALL, "bm-fall")
MULTI = spec(DeviceKind.MULTI, "bm-multi")
ZB_DOOR = spec(DeviceKind.DOOR, "zbbridge/662E")


def test_topics_follow_the_default_full_topic() -> None:
    topics = device_topics(DOOR)
    assert topics["tele/bm-door/SENSOR"] is TopicRole.SENSOR
    assert topics["tele/bm-door/STATE"] is TopicRole.STATE
    assert topics["tele/bm-door/LWT"] is TopicRole.AVAILABILITY
    assert topics["stat/bm-door/RESULT"] is TopicRole.RESULT
    assert topics["tele/bm-door/RESULT"] is TopicRole.RESULT
    assert topics["stat/bm-door/POWER"] is TopicRole.POWER
    assert topics["stat/bm-door/BUTTON1"] is TopicRole.BUTTON


@pytest.mark.parametrize(("payload", "online"), [(b"Online", True), (b"Offline", False)])
def test_lwt(payload: bytes, online: bool) -> None:
    [event] = msg(DOOR, TopicRole.AVAILABILITY, payload, retained=True)
    assert (event.kind, event.state, event.retained) == (EventKind.AVAILABILITY, online, True)


def test_lwt_unknown() -> None:
    assert rejected(DOOR, TopicRole.AVAILABILITY, b"Zombie").reason == "unknown_value"


# -- switches ---------------------------------------------------------------------------


@pytest.mark.parametrize(("word", "is_open"), [("ON", True), ("OFF", False)])
def test_door_switch_on_means_open(word: str, is_open: bool) -> None:
    # SwitchMode 15: tele/<t>/SENSOR = {"Time": ..., "Switch1": "ON"}
    [door] = msg(DOOR, TopicRole.SENSOR, {"Time": "2021-01-01T00:00:00", "Switch1": word})
    assert (door.kind, door.state) == (EventKind.DOOR, is_open)
    assert door.extra == (("Switch1", word),)


def test_detached_switch_action() -> None:
    # SetOption114: stat/<t>/RESULT = {"Switch1": {"Action": "ON"}}
    [door] = msg(DOOR, TopicRole.RESULT, {"Switch1": {"Action": "ON"}})
    assert (door.kind, door.state) == (EventKind.DOOR, True)


def test_toggle_tells_no_door_direction() -> None:
    assert kinds(msg(DOOR, TopicRole.RESULT, {"Switch1": {"Action": "TOGGLE"}})) == [
        EventKind.HEARTBEAT
    ]


@pytest.mark.parametrize(("word", "moving"), [("ON", True), ("OFF", False)])
def test_pir_switch(word: str, moving: bool) -> None:
    [motion] = msg(PIR, TopicRole.SENSOR, {"Switch1": word})
    assert (motion.kind, motion.state) == (EventKind.MOTION, moving)


def test_sos_switch_on_is_sos_off_is_not() -> None:
    assert kinds(msg(SOS, TopicRole.SENSOR, {"Switch1": "ON"})) == [EventKind.SOS]
    assert kinds(msg(SOS, TopicRole.SENSOR, {"Switch1": "OFF"})) == [EventKind.HEARTBEAT]
    assert kinds(msg(SOS, TopicRole.RESULT, {"Switch1": {"Action": "TOGGLE"}})) == [EventKind.SOS]


def test_fall_switch() -> None:
    assert kinds(msg(FALL, TopicRole.SENSOR, {"Switch1": "ON"})) == [EventKind.FALL]


def test_switch_on_multi_device_has_no_known_meaning() -> None:
    assert kinds(msg(MULTI, TopicRole.SENSOR, {"Switch1": "ON"})) == [EventKind.HEARTBEAT]


def test_two_switches() -> None:
    events = msg(DOOR, TopicRole.SENSOR, {"Switch1": "ON", "Switch2": "OFF"})
    assert [(e.kind, e.state) for e in events] == [(EventKind.DOOR, True), (EventKind.DOOR, False)]


def test_retained_sos_switch_yields_no_sos() -> None:
    [beat] = msg(SOS, TopicRole.SENSOR, {"Switch1": "ON"}, retained=True)
    assert (beat.kind, beat.retained) == (EventKind.HEARTBEAT, True)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [({"Switch1": 5}, "wrong_type"), ({"Switch1": "AJAR"}, "unknown_value")],
)
def test_bad_switch(payload: dict[str, object], reason: str) -> None:
    error = rejected(DOOR, TopicRole.SENSOR, payload)
    assert error.reason == reason
    assert "Switch1" in error.detail


# -- buttons ----------------------------------------------------------------------------


@pytest.mark.parametrize("action", ["SINGLE", "DOUBLE", "TRIPLE", "HOLD"])
def test_button_on_sos_device_is_sos(action: str) -> None:
    [sos] = msg(SOS, TopicRole.RESULT, {"Button1": {"Action": action}})
    assert sos.kind is EventKind.SOS
    assert sos.extra == (("Button1", action),)


def test_button_elsewhere_is_check_in() -> None:
    assert kinds(msg(PIR, TopicRole.RESULT, {"Button1": {"Action": "SINGLE"}})) == [
        EventKind.CHECK_IN
    ]


def test_legacy_button_topic() -> None:
    # SetOption73 on older firmware: stat/<t>/BUTTON1 = {"ACTION":"DOUBLE"}
    assert kinds(msg(SOS, TopicRole.BUTTON, {"ACTION": "DOUBLE"})) == [EventKind.SOS]


def test_button_without_action() -> None:
    assert rejected(SOS, TopicRole.RESULT, {"Button1": "SINGLE"}).reason == "wrong_type"


def test_command_results_are_signs_of_life() -> None:
    assert kinds(msg(DOOR, TopicRole.RESULT, {"POWER": "ON"})) == [EventKind.HEARTBEAT]
    assert kinds(msg(DOOR, TopicRole.RESULT, {"SetOption114": "ON"})) == [EventKind.HEARTBEAT]


# -- Zigbee2Tasmota ---------------------------------------------------------------------


def zb(attributes: dict[str, object]) -> dict[str, object]:
    return {"ZbReceived": {"0x662E": {"Device": "0x662E", "Name": "door_sensor", **attributes}}}


def test_zigbee_contact_open() -> None:
    payload = zb(
        {
            "0500<00": "210000010000",
            "ZoneStatusChange": 33,
            "ZoneStatusChangeZone": 1,
            "Contact": 1,
            "Endpoint": 1,
            "LinkQuality": 157,
        }
    )
    [door] = msg(ZB_DOOR, TopicRole.SENSOR, payload)
    assert (door.kind, door.state, door.link_quality) == (EventKind.DOOR, True, 157)


def test_zigbee_contact_closed() -> None:
    [door] = msg(ZB_DOOR, TopicRole.SENSOR, zb({"Contact": 0, "ZoneStatusChange": 32}))
    assert (door.kind, door.state) == (EventKind.DOOR, False)


def test_zigbee_occupancy_and_battery() -> None:
    payload = zb({"Occupancy": 1, "BatteryPercentage": 100, "BatteryVoltage": 3.01})
    [motion] = msg(PIR, TopicRole.SENSOR, payload)
    assert (motion.kind, motion.state, motion.battery) == (EventKind.MOTION, True, 100)


def test_zigbee_sos_button_press() -> None:
    assert kinds(msg(SOS, TopicRole.SENSOR, zb({"Power": 1, "Endpoint": 1}))) == [EventKind.SOS]
    assert kinds(msg(SOS, TopicRole.SENSOR, zb({"Click": "single"}))) == [EventKind.SOS]
    assert kinds(msg(SOS, TopicRole.SENSOR, zb({"ZoneStatusChange": 1}))) == [EventKind.SOS]
    assert kinds(msg(SOS, TopicRole.SENSOR, zb({"ZoneStatusChange": 0}))) == [EventKind.HEARTBEAT]


def test_zigbee_power_on_other_devices_is_no_press() -> None:
    assert kinds(msg(DOOR, TopicRole.SENSOR, zb({"Power": 1}))) == [EventKind.HEARTBEAT]


@pytest.mark.parametrize(
    ("payload", "reason", "field"),
    [
        ({"ZbReceived": [1]}, "wrong_type", "ZbReceived"),
        ({"ZbReceived": {"0x1": "x"}}, "wrong_type", "ZbReceived"),
        (zb({"Contact": "open"}), "wrong_type", "Contact"),
        (zb({"Contact": 7}), "unknown_value", "Contact"),
    ],
)
def test_bad_zigbee(payload: dict[str, object], reason: str, field: str) -> None:
    error = rejected(ZB_DOOR, TopicRole.SENSOR, payload)
    assert (error.reason, field in error.detail) == (reason, True)


# -- state, power, time -----------------------------------------------------------------


def test_state_is_a_heartbeat_with_wifi_quality() -> None:
    payload = {
        "Time": "2025-03-01T16:00:00",
        "Uptime": "0T01:00:00",
        "Wifi": {"AP": 1, "SSId": "home", "RSSI": 76, "Signal": -62, "LinkCount": 1},
        "POWER": "OFF",
    }
    [beat] = msg(DOOR, TopicRole.STATE, payload)
    assert (beat.kind, beat.link_quality) == (EventKind.HEARTBEAT, 76)


def test_power_is_a_heartbeat() -> None:
    assert kinds(msg(DOOR, TopicRole.POWER, b"ON")) == [EventKind.HEARTBEAT]


def test_time_with_offset_is_used() -> None:
    [door] = msg(DOOR, TopicRole.SENSOR, {"Time": "2025-03-01T15:59:00+08:00", "Switch1": "ON"})
    assert door.occurred_at == datetime(2025, 3, 1, 7, 59, tzinfo=UTC)


def test_local_time_without_offset_is_ignored_silently() -> None:
    [door] = msg(DOOR, TopicRole.SENSOR, {"Time": "2025-03-01T15:59:00", "Switch1": "ON"})
    assert door.occurred_at == NOW
    assert not door.timestamp_fallback


@pytest.mark.parametrize(
    ("role", "payload", "reason"),
    [
        (TopicRole.SENSOR, b"Switch1 ON", "not_json"),
        (TopicRole.STATE, b"[]", "wrong_type"),
        (TopicRole.POWER, b"\xc3\x28", "not_utf8"),
        (TopicRole.SENSOR, b"", "empty"),
    ],
)
def test_malformed(role: TopicRole, payload: bytes, reason: str) -> None:
    assert rejected(DOOR, role, payload).reason == reason
