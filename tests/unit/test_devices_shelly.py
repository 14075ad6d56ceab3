"""The Shelly adapter: Gen1 (``shellies/<id>/...``) and Gen2+ (``<prefix>/events/rpc``)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gateway.devices import DeviceSpec, TopicRole, device_topics
from gateway.events import EventKind
from gateway.register.vocabulary import DeviceKind, Protocol
from tests.unit.device_payloads import NOW, kinds, msg, rejected

TS = datetime(2025, 3, 1, 7, 59, 58, tzinfo=UTC).timestamp()

DW2 = DeviceSpec("bm-dw", DeviceKind.DOOR, Protocol.SHELLY, "shellies/shellydw2-483FDA825A31")
MOTION = DeviceSpec("bm-mo", DeviceKind.MOTION, Protocol.SHELLY, "shellies/shellymotionsensor-1")
BUTTON1 = DeviceSpec("bm-b1", DeviceKind.SOS, Protocol.SHELLY, "shellies/shellybutton1-A4CF12")
PLUS_SOS = DeviceSpec("bm-i4", DeviceKind.SOS, Protocol.SHELLY, "shellyplusi4-a8032ab1c2d3")
PLUS_DOOR = DeviceSpec("bm-p1", DeviceKind.DOOR, Protocol.SHELLY, "shellyplus1-a8032ab1c2d4")
PLUS_HT = DeviceSpec("bm-ht", DeviceKind.MULTI, Protocol.SHELLY, "shellyplusht-b8d61a8b17cc")


def test_topics_cover_both_generations() -> None:
    gen1 = device_topics(DW2)
    assert gen1["shellies/shellydw2-483FDA825A31/sensor/state"] is TopicRole.CONTACT
    assert gen1["shellies/shellydw2-483FDA825A31/online"] is TopicRole.AVAILABILITY
    assert gen1["shellies/shellydw2-483FDA825A31/input_event/0"] is TopicRole.BUTTON
    gen2 = device_topics(PLUS_SOS)
    assert gen2["shellyplusi4-a8032ab1c2d3/events/rpc"] is TopicRole.RPC
    assert gen2["shellyplusi4-a8032ab1c2d3/online"] is TopicRole.AVAILABILITY
    assert gen2["shellyplusi4-a8032ab1c2d3/status/input:0"] is TopicRole.INPUT
    assert gen2["shellyplusi4-a8032ab1c2d3/status/devicepower:0"] is TopicRole.DEVICE_POWER


# -- Gen1 -------------------------------------------------------------------------------


@pytest.mark.parametrize(("payload", "is_open"), [(b"open", True), (b"close", False)])
def test_door_window_2(payload: bytes, is_open: bool) -> None:
    [door] = msg(DW2, TopicRole.CONTACT, payload)
    assert (door.kind, door.state) == (EventKind.DOOR, is_open)


def test_door_window_unknown_state() -> None:
    error = rejected(DW2, TopicRole.CONTACT, b"ajar")
    assert error.reason == "unknown_value"
    assert "sensor/state" in error.detail


@pytest.mark.parametrize(("payload", "moving"), [(b"true", True), (b"false", False)])
def test_motion(payload: bytes, moving: bool) -> None:
    [motion] = msg(MOTION, TopicRole.MOTION, payload)
    assert (motion.kind, motion.state) == (EventKind.MOTION, moving)


def test_battery_topic_is_a_heartbeat_with_battery() -> None:
    [beat] = msg(DW2, TopicRole.BATTERY, b"87")
    assert (beat.kind, beat.battery) == (EventKind.HEARTBEAT, 87)


def test_battery_topic_not_a_number() -> None:
    assert rejected(DW2, TopicRole.BATTERY, b"full").reason == "wrong_type"


@pytest.mark.parametrize(("payload", "online"), [(b"true", True), (b"false", False)])
def test_online(payload: bytes, online: bool) -> None:
    [event] = msg(DW2, TopicRole.AVAILABILITY, payload, retained=True)
    assert (event.kind, event.state, event.retained) == (EventKind.AVAILABILITY, online, True)


@pytest.mark.parametrize("press", ["S", "SS", "SSS", "L"])
def test_button1_press_is_sos(press: str) -> None:
    [sos] = msg(BUTTON1, TopicRole.BUTTON, {"event": press, "event_cnt": 7})
    assert sos.kind is EventKind.SOS
    assert sos.extra == (("event", press),)


def test_button1_before_any_press() -> None:
    assert kinds(msg(BUTTON1, TopicRole.BUTTON, {"event": "", "event_cnt": 0})) == [
        EventKind.HEARTBEAT
    ]


def test_button_press_elsewhere_is_check_in() -> None:
    assert kinds(msg(MOTION, TopicRole.BUTTON, {"event": "S", "event_cnt": 1})) == [
        EventKind.CHECK_IN
    ]


def test_retained_button_press_is_no_sos() -> None:
    [beat] = msg(BUTTON1, TopicRole.BUTTON, {"event": "S", "event_cnt": 7}, retained=True)
    assert (beat.kind, beat.retained) == (EventKind.HEARTBEAT, True)


def test_gen1_input_on_door_device() -> None:
    [door] = msg(DW2, TopicRole.INPUT, b"1")
    assert (door.kind, door.state) == (EventKind.DOOR, True)


def test_gen1_door_window_info() -> None:
    info = {
        "wifi_sta": {"connected": True, "ssid": "home", "ip": "192.168.1.40", "rssi": -62},
        "unixtime": 1740815998,
        "sensor": {"state": "open", "is_valid": True},
        "lux": {"value": 31, "illumination": "dark", "is_valid": True},
        "accel": {"tilt": 0, "vibration": 0},
        "bat": {"value": 98, "voltage": 5.939},
        "act_reasons": ["sensor"],
    }
    [door] = msg(DW2, TopicRole.INFO, info)
    assert (door.kind, door.state, door.battery, door.link_quality) == (
        EventKind.DOOR,
        True,
        98,
        76,
    )


def test_gen1_motion_status() -> None:
    status = {
        "motion": True,
        "timestamp": 1614416952,
        "active": True,
        "vibration": True,
        "lux": 303,
        "bat": 87,
    }
    [motion] = msg(MOTION, TopicRole.INFO, status)
    assert (motion.kind, motion.state, motion.battery) == (EventKind.MOTION, True, 87)


def test_gen1_info_past_button_events_are_not_presses() -> None:
    info = {"inputs": [{"input": 0, "event": "S", "event_cnt": 3}], "bat": {"value": 60}}
    [beat] = msg(BUTTON1, TopicRole.INFO, info)
    assert (beat.kind, beat.battery) == (EventKind.HEARTBEAT, 60)


def test_announce_is_a_heartbeat() -> None:
    assert kinds(msg(DW2, TopicRole.TELEMETRY, {"id": "shellydw2-483FDA825A31"})) == [
        EventKind.HEARTBEAT
    ]


# -- Gen2 -------------------------------------------------------------------------------


def notify_event(event: str, component: str = "input:0") -> dict[str, object]:
    return {
        "src": "shellyplusi4-a8032ab1c2d3",
        "dst": "shellyplusi4-a8032ab1c2d3/events",
        "method": "NotifyEvent",
        "params": {
            "ts": TS,
            "events": [{"component": component, "id": 0, "event": event, "ts": TS}],
        },
    }


@pytest.mark.parametrize("event", ["single_push", "double_push", "triple_push", "long_push"])
def test_gen2_push_on_sos_device(event: str) -> None:
    [sos] = msg(PLUS_SOS, TopicRole.RPC, notify_event(event))
    assert sos.kind is EventKind.SOS
    assert sos.occurred_at == datetime(2025, 3, 1, 7, 59, 58, tzinfo=UTC)


@pytest.mark.parametrize("event", ["btn_down", "btn_up"])
def test_gen2_button_edges_are_not_presses(event: str) -> None:
    assert kinds(msg(PLUS_SOS, TopicRole.RPC, notify_event(event))) == [EventKind.HEARTBEAT]


def test_gen2_events_of_other_components_are_not_presses() -> None:
    event = notify_event("single_push", component="sys")
    assert kinds(msg(PLUS_SOS, TopicRole.RPC, event)) == [EventKind.HEARTBEAT]


def test_gen2_push_elsewhere_is_check_in() -> None:
    assert kinds(msg(PLUS_DOOR, TopicRole.RPC, notify_event("single_push"))) == [EventKind.CHECK_IN]


def test_gen2_notify_status_input_and_battery() -> None:
    payload = {
        "src": "shellyplus1-a8032ab1c2d4",
        "dst": "shellyplus1-a8032ab1c2d4/events",
        "method": "NotifyStatus",
        "params": {"ts": TS, "input:0": {"id": 0, "state": True}, "wifi": {"rssi": -70}},
    }
    [door] = msg(PLUS_DOOR, TopicRole.RPC, payload)
    assert (door.kind, door.state, door.link_quality) == (EventKind.DOOR, True, 60)


def test_gen2_full_status_battery() -> None:
    payload = {
        "src": "shellyplusht-b8d61a8b17cc",
        "dst": "shellyplusht-b8d61a8b17cc/events",
        "method": "NotifyFullStatus",
        "params": {
            "ts": TS,
            "devicepower:0": {
                "id": 0,
                "battery": {"V": 4.43, "percent": 71},
                "external": {"present": False},
            },
            "humidity:0": {"id": 0, "rh": 42.2},
            "sys": {"mac": "B8D61A8B17CC", "unixtime": None},
        },
    }
    [beat] = msg(PLUS_HT, TopicRole.RPC, payload)
    assert (beat.kind, beat.battery) == (EventKind.HEARTBEAT, 71)


@pytest.mark.parametrize(("state", "is_open"), [(True, True), (False, False)])
def test_gen2_status_input(state: bool, is_open: bool) -> None:
    [door] = msg(PLUS_DOOR, TopicRole.INPUT, {"id": 0, "state": state})
    assert (door.kind, door.state) == (EventKind.DOOR, is_open)


def test_gen2_status_input_in_button_mode() -> None:
    assert kinds(msg(PLUS_SOS, TopicRole.INPUT, {"id": 0, "state": None})) == [EventKind.HEARTBEAT]


def test_gen2_status_input_switch_on_sos_device() -> None:
    assert kinds(msg(PLUS_SOS, TopicRole.INPUT, {"id": 0, "state": True})) == [EventKind.SOS]


def test_gen2_devicepower() -> None:
    payload = {"id": 0, "battery": {"V": 5.1, "percent": 93}, "external": {"present": False}}
    [beat] = msg(PLUS_HT, TopicRole.DEVICE_POWER, payload)
    assert beat.battery == 93


def test_gen2_unsynchronised_clock_falls_back() -> None:
    payload = notify_event("single_push")
    payload["params"] = {"ts": 12.5, "events": [{"component": "input:0", "event": "single_push"}]}
    [sos] = msg(PLUS_SOS, TopicRole.RPC, payload)
    assert (sos.occurred_at, sos.timestamp_fallback) == (NOW, True)


@pytest.mark.parametrize(
    ("payload", "reason", "field"),
    [
        ({"params": {}}, "missing_field", "method"),
        ({"method": 7, "params": {}}, "wrong_type", "method"),
        ({"method": "NotifyEvent", "params": []}, "wrong_type", "params"),
        ({"method": "NotifyEvent", "params": {"events": {}}}, "wrong_type", "events"),
        (
            {"method": "NotifyStatus", "params": {"input:0": {"state": "on"}}},
            "wrong_type",
            "input:0",
        ),
    ],
)
def test_bad_rpc(payload: dict[str, object], reason: str, field: str) -> None:
    error = rejected(PLUS_DOOR, TopicRole.RPC, payload)
    assert (error.reason, field in error.detail) == (reason, True)


def test_other_rpc_methods_are_signs_of_life() -> None:
    payload = {"method": "NotifyWakeup", "params": {"ts": TS}}
    assert kinds(msg(PLUS_HT, TopicRole.RPC, payload)) == [EventKind.HEARTBEAT]


@pytest.mark.parametrize(
    ("role", "payload", "reason"),
    [
        (TopicRole.CONTACT, b"\xfe", "not_utf8"),
        (TopicRole.BUTTON, b"S", "not_json"),
        (TopicRole.RPC, b"[]", "wrong_type"),
        (TopicRole.INPUT, b"2", "wrong_type"),
        (TopicRole.AVAILABILITY, b"", "empty"),
    ],
)
def test_malformed(role: TopicRole, payload: bytes, reason: str) -> None:
    assert rejected(DW2, role, payload).reason == reason
