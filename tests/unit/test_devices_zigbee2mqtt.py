"""The zigbee2mqtt adapter, with payloads as Zigbee2MQTT's device pages expose them."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from gateway.devices import DeviceSpec, TopicRole, parse
from gateway.events import EventKind, PayloadError, SensorEvent
from gateway.register.vocabulary import DeviceKind, Protocol

NOW = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)


def spec(kind: DeviceKind, uid: str = "bm-zs-dev", model: str | None = None) -> DeviceSpec:
    return DeviceSpec(uid, kind, Protocol.ZIGBEE2MQTT, f"zigbee2mqtt/{uid}", model)


SOS = spec(DeviceKind.SOS, "bm-zs-sos", "TS0215A_sos")
DOOR = spec(DeviceKind.DOOR, "bm-zs-door", "MCCGQ11LM")
PIR = spec(DeviceKind.MOTION, "bm-zs-pir", "RTCGQ11LM")
RADAR = spec(DeviceKind.FALL, "bm-zs-radar", "MIR-HE200-TY_fall")


def state(
    payload: object, device: DeviceSpec = SOS, *, retained: bool = False
) -> list[SensorEvent]:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return parse(device, TopicRole.STATE, raw, retained=retained, received_at=NOW)


def rejected(payload: object, device: DeviceSpec = SOS) -> PayloadError:
    with pytest.raises(PayloadError) as info:
        state(payload, device)
    return info.value


def kinds(events: list[SensorEvent]) -> list[EventKind]:
    return [e.kind for e in events]


# -- SOS --------------------------------------------------------------------------------


def test_ts0215a_emergency() -> None:
    [sos] = state({"action": "emergency", "battery": 100, "linkquality": 87, "voltage": 3000})
    assert sos.kind is EventKind.SOS
    assert sos.device_uid == "bm-zs-sos"
    assert (sos.battery, sos.link_quality) == (100, 87)
    assert sos.extra == (("action", "emergency"),)


def test_emergency_action_on_any_device() -> None:
    assert kinds(state({"action": "emergency"}, DOOR)) == [EventKind.SOS]


@pytest.mark.parametrize("action", ["sos", "panic", "emergency_panic"])
def test_other_emergency_words(action: str) -> None:
    assert kinds(state({"action": action}, PIR)) == [EventKind.SOS]


@pytest.mark.parametrize("action", ["single", "double", "hold", "long", "on", "off", "1_single"])
def test_plain_press_on_sos_button_is_sos(action: str) -> None:
    assert kinds(state({"action": action, "battery": 90})) == [EventKind.SOS]


@pytest.mark.parametrize("action", ["single", "double", "hold"])
def test_plain_press_elsewhere_is_check_in(action: str) -> None:
    # TS0202_2: a motion sensor with a scene button.
    assert kinds(state({"action": action, "occupancy": False}, PIR)) == [
        EventKind.CHECK_IN,
        EventKind.MOTION,
    ]


@pytest.mark.parametrize("action", ["", None, "   "])
def test_empty_action_yields_nothing_from_action(action: str | None) -> None:
    [beat] = state({"action": action, "battery": 99, "linkquality": 40})
    assert beat.kind is EventKind.HEARTBEAT
    assert (beat.battery, beat.link_quality) == (99, 40)


@pytest.mark.parametrize(
    "action", ["hold_release", "release", "brightness_step_up", "arm_all_zones"]
)
def test_non_press_actions_on_sos_button_are_no_sos(action: str) -> None:
    assert kinds(state({"action": action})) == [EventKind.HEARTBEAT]


def test_ias_sos_true() -> None:
    # Feibit SEB01ZB
    payload = {
        "sos": True,
        "battery_low": False,
        "tamper": False,
        "battery": 100,
        "linkquality": 90,
    }
    assert kinds(state(payload)) == [EventKind.SOS]


def test_ias_sos_false_is_no_sos() -> None:
    assert kinds(state({"sos": False, "battery": 100})) == [EventKind.HEARTBEAT]


def test_alarm_counts_only_on_sos_buttons() -> None:
    assert kinds(state({"alarm": True})) == [EventKind.SOS]
    assert kinds(state({"alarm": True}, DOOR)) == [EventKind.HEARTBEAT]


def test_action_and_sos_in_one_message_are_one_sos() -> None:
    assert kinds(state({"action": "emergency", "sos": True})) == [EventKind.SOS]


def test_retained_sos_yields_no_sos() -> None:
    [beat] = state({"action": "emergency", "battery": 80}, retained=True)
    assert beat.kind is EventKind.HEARTBEAT
    assert beat.retained
    assert beat.battery == 80


def test_emergency_survives_malformed_fields() -> None:
    [sos] = state({"action": "emergency", "battery": "low", "linkquality": "good", "contact": 1})
    assert sos.kind is EventKind.SOS
    assert (sos.battery, sos.link_quality) == (None, None)


# -- falls ------------------------------------------------------------------------------


def test_tuya_radar_fall_down_status_fall() -> None:
    payload = {
        "illuminance_lux": 12,
        "presence": True,
        "occupancy": True,
        "motion_speed": 0,
        "fall_down_status": "fall",
        "linkquality": 156,
    }
    events = state(payload, RADAR)
    assert kinds(events) == [EventKind.FALL, EventKind.MOTION]
    assert events[0].extra == (("fall_down_status", "fall"),)
    assert events[0].link_quality == 156


@pytest.mark.parametrize("value", ["maybe_fall", "none"])
def test_maybe_fall_is_not_a_fall(value: str) -> None:
    assert kinds(state({"fall_down_status": value, "occupancy": True}, RADAR)) == [EventKind.MOTION]


def test_heiman_fall_alarm() -> None:
    payload = {"occupancy": True, "sensor_status": "activity", "fall_status": "fall_alarm"}
    assert kinds(state(payload, RADAR)) == [EventKind.FALL, EventKind.MOTION]


@pytest.mark.parametrize("value", ["normal", "fall_warning", "unknown"])
def test_heiman_non_alarm_fall_status(value: str) -> None:
    assert EventKind.FALL not in kinds(state({"fall_status": value}, RADAR))


def test_owon_falling() -> None:
    payload = {"status": "falling", "breathing_rate": 14, "location_x": 20, "location_y": -5}
    assert kinds(state(payload, RADAR)) == [EventKind.FALL]


def test_owon_other_statuses_and_foreign_status_fields() -> None:
    for status in ("occupied", "on_the_bed", "low_posture", 5, {"code": 1}):
        assert kinds(state({"status": status}, RADAR)) == [EventKind.HEARTBEAT]


def test_fall_field_of_wrong_type_rejects() -> None:
    error = rejected({"fall_down_status": 2}, RADAR)
    assert error.reason == "wrong_type"
    assert "fall_down_status" in error.detail


def test_retained_fall_yields_no_fall() -> None:
    events = state({"fall_down_status": "fall", "occupancy": True}, RADAR, retained=True)
    assert kinds(events) == [EventKind.MOTION]
    assert events[0].retained


# -- door, motion, health ---------------------------------------------------------------


def test_door_sensor_open() -> None:
    payload = {
        "battery": 100,
        "contact": False,
        "linkquality": 120,
        "voltage": 3000,
        "battery_low": False,
        "tamper": False,
    }
    [door] = state(payload, DOOR)
    assert door.kind is EventKind.DOOR
    assert door.state is True  # contact false: the magnet is away, the door is OPEN
    assert (door.battery, door.link_quality) == (100, 120)


def test_contact_true_means_closed() -> None:
    [door] = state({"contact": True}, DOOR)
    assert (door.kind, door.state) == (EventKind.DOOR, False)


@pytest.mark.parametrize("occupied", [True, False])
def test_occupancy_is_motion(occupied: bool) -> None:
    [motion] = state({"occupancy": occupied, "illuminance": 7, "battery": 91}, PIR)
    assert (motion.kind, motion.state, motion.battery) == (EventKind.MOTION, occupied, 91)


def test_only_battery_and_link_quality_is_a_heartbeat() -> None:
    [beat] = state({"battery": 67, "linkquality": 255, "voltage": 2900}, DOOR)
    assert beat.kind is EventKind.HEARTBEAT
    assert (beat.battery, beat.link_quality) == (67, 255)


def test_battery_low_flag() -> None:
    [battery] = state({"battery_low": True, "voltage": 2400}, DOOR)
    assert (battery.kind, battery.state) == (EventKind.BATTERY, True)


@pytest.mark.parametrize(("raw", "kept"), [(120, None), (-3, None), (65.5, 66)])
def test_battery_out_of_range_is_dropped(raw: float, kept: int | None) -> None:
    [door] = state({"contact": True, "battery": raw}, DOOR)
    assert door.battery == kept


def test_link_quality_out_of_range_is_dropped() -> None:
    [door] = state({"contact": True, "linkquality": 300}, DOOR)
    assert door.link_quality is None


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"contact": "true"}, "contact"),
        ({"occupancy": 1}, "occupancy"),
        ({"battery_low": "no"}, "battery_low"),
        ({"linkquality": "good", "contact": True}, "linkquality"),
        ({"battery": "80", "contact": True}, "battery"),
        ({"action": 5}, "action"),
        ({"sos": "maybe"}, "sos"),
    ],
)
def test_wrong_types_are_rejected_naming_the_field(payload: dict[str, object], field: str) -> None:
    error = rejected(payload, DOOR)
    assert error.reason in ("wrong_type", "unknown_value")
    assert field in error.detail


def test_unknown_fields_are_ignored() -> None:
    [door] = state({"contact": True, "update": {"state": "idle"}, "new_field": [1]}, DOOR)
    assert door.kind is EventKind.DOOR


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"ON", "not_json"),
        (b"[1, 2]", "wrong_type"),
        (b"\x80\x81", "not_utf8"),
        (b"", "empty"),
    ],
)
def test_malformed(payload: bytes, reason: str) -> None:
    assert rejected(payload).reason == reason


# -- last_seen --------------------------------------------------------------------------


def test_last_seen_iso() -> None:
    [door] = state({"contact": True, "last_seen": "2025-03-01T15:59:00+08:00"}, DOOR)
    assert door.occurred_at == datetime(2025, 3, 1, 7, 59, tzinfo=UTC)
    assert not door.timestamp_fallback


def test_last_seen_epoch_milliseconds() -> None:
    millis = int(datetime(2025, 3, 1, 7, 58, tzinfo=UTC).timestamp() * 1000)
    [door] = state({"contact": True, "last_seen": millis}, DOOR)
    assert door.occurred_at == datetime(2025, 3, 1, 7, 58, tzinfo=UTC)


@pytest.mark.parametrize(
    "last_seen", ["soon", "2025-03-01T07:58:00", 10**30, "2099-01-01T00:00:00Z"]
)
def test_unusable_last_seen_falls_back(last_seen: object) -> None:
    [sos] = state({"action": "emergency", "last_seen": last_seen})
    assert sos.kind is EventKind.SOS
    assert sos.occurred_at == NOW
    assert sos.timestamp_fallback


# -- availability -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "online"),
    [
        (b'{"state":"online"}', True),
        (b'{"state":"offline"}', False),
        (b"online", True),  # legacy availability payload
        (b"offline", False),
    ],
)
def test_availability(payload: bytes, online: bool) -> None:
    [event] = parse(DOOR, TopicRole.AVAILABILITY, payload, retained=True, received_at=NOW)
    assert (event.kind, event.state, event.retained) == (EventKind.AVAILABILITY, online, True)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b'{"state":"unknown"}', "unknown_value"),
        (b'{"state": 1}', "wrong_type"),
        (b"{}", "missing_field"),
    ],
)
def test_bad_availability(payload: bytes, reason: str) -> None:
    with pytest.raises(PayloadError) as info:
        parse(DOOR, TopicRole.AVAILABILITY, payload, retained=True, received_at=NOW)
    assert info.value.reason == reason


def test_role_of_another_protocol_is_a_payload_error() -> None:
    with pytest.raises(PayloadError) as info:
        parse(DOOR, TopicRole.RPC, b"{}", retained=False, received_at=NOW)
    assert info.value.reason == "unexpected_topic"
