"""The native adapter: ``homewatch/<uid>/event`` JSON and ``homewatch/<uid>/status``."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from gateway.devices import DeviceSpec, TopicRole, parse
from gateway.events import MAX_PAYLOAD_BYTES, EventKind, PayloadError, SensorEvent
from gateway.register.vocabulary import DeviceKind, Protocol

NOW = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
SOS = DeviceSpec("bm-zs-sos", DeviceKind.SOS, Protocol.NATIVE, "homewatch/bm-zs-sos")
DOOR = DeviceSpec("bm-zs-door", DeviceKind.DOOR, Protocol.NATIVE, "homewatch/bm-zs-door")
PIR = DeviceSpec("bm-zs-pir", DeviceKind.MOTION, Protocol.NATIVE, "homewatch/bm-zs-pir")


def event(payload: object, spec: DeviceSpec = SOS, *, retained: bool = False) -> list[SensorEvent]:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return parse(spec, TopicRole.EVENT, raw, retained=retained, received_at=NOW)


def status(payload: bytes, *, retained: bool = True) -> list[SensorEvent]:
    return parse(SOS, TopicRole.AVAILABILITY, payload, retained=retained, received_at=NOW)


def rejected(payload: object, spec: DeviceSpec = SOS) -> PayloadError:
    with pytest.raises(PayloadError) as info:
        event(payload, spec)
    return info.value


def kinds(events: list[SensorEvent]) -> list[EventKind]:
    return [e.kind for e in events]


# -- emergencies ------------------------------------------------------------------------


def test_sos_with_all_fields() -> None:
    [sos] = event({"type": "sos", "ts": "2025-03-01T15:59:30+08:00", "id": "ev-1", "battery": 87})
    assert sos.kind is EventKind.SOS
    assert sos.device_uid == "bm-zs-sos"
    assert sos.occurred_at == datetime(2025, 3, 1, 7, 59, 30, tzinfo=UTC)
    assert sos.received_at == NOW
    assert sos.event_id == "ev-1"
    assert sos.battery == 87
    assert sos.state is None
    assert not sos.retained
    assert not sos.timestamp_fallback


def test_fall() -> None:
    assert kinds(event({"type": "fall"})) == [EventKind.FALL]


def test_type_is_read_leniently() -> None:
    assert kinds(event({"type": " SOS "})) == [EventKind.SOS]


@pytest.mark.parametrize(
    "ts",
    [
        "not a time",
        "2025-03-01T08:00:00",  # naive
        "2025-03-01T08:06:00+00:00",  # six minutes ahead of the receive time
        "1970-01-01T00:00:05+00:00",  # clock never set
        1740816000,  # epoch, not ISO 8601
        {"at": "now"},
    ],
)
def test_sos_with_bad_ts_is_still_sos_at_receive_time(ts: object) -> None:
    [sos] = event({"type": "sos", "ts": ts})
    assert sos.kind is EventKind.SOS
    assert sos.occurred_at == NOW
    assert sos.timestamp_fallback


def test_ts_a_little_ahead_is_believed() -> None:
    [sos] = event({"type": "sos", "ts": "2025-03-01T08:04:00Z"})
    assert sos.occurred_at == NOW + timedelta(minutes=4)
    assert not sos.timestamp_fallback


def test_missing_or_null_ts_is_no_fallback() -> None:
    for payload in ({"type": "sos"}, {"type": "sos", "ts": None}):
        [sos] = event(payload)
        assert sos.occurred_at == NOW
        assert not sos.timestamp_fallback


def test_sos_whatever_else_is_odd() -> None:
    [sos] = event(
        {
            "type": "sos",
            "state": {"weird": True},
            "battery": "full",
            "id": [1, 2],
            "ts": "yesterday",
            "firmware": "1.2.3",
        }
    )
    assert sos.kind is EventKind.SOS
    assert sos.battery is None
    assert sos.event_id is None
    assert sos.timestamp_fallback


def test_fall_with_bad_battery_is_still_fall() -> None:
    [fall] = event({"type": "fall", "battery": True}, PIR)
    assert fall.kind is EventKind.FALL
    assert fall.battery is None


def test_retained_sos_yields_no_sos() -> None:
    [heartbeat] = event({"type": "sos", "id": "old"}, retained=True)
    assert heartbeat.kind is EventKind.HEARTBEAT
    assert heartbeat.retained


def test_retained_fall_yields_no_fall() -> None:
    assert kinds(event({"type": "fall"}, retained=True)) == [EventKind.HEARTBEAT]


# -- door and motion --------------------------------------------------------------------


@pytest.mark.parametrize(("word", "is_open"), [("open", True), ("closed", False), ("OPEN", True)])
def test_door(word: str, is_open: bool) -> None:
    [door] = event({"type": "door", "state": word}, DOOR)
    assert door.kind is EventKind.DOOR
    assert door.state is is_open


def test_retained_door_is_kept_and_marked() -> None:
    [door] = event({"type": "door", "state": "open"}, DOOR, retained=True)
    assert door.kind is EventKind.DOOR
    assert door.state is True
    assert door.retained


def test_door_missing_state() -> None:
    error = rejected({"type": "door"}, DOOR)
    assert error.reason == "missing_field"
    assert "state" in error.detail


def test_door_wrong_type_state() -> None:
    error = rejected({"type": "door", "state": True}, DOOR)
    assert error.reason == "wrong_type"
    assert "state" in error.detail


def test_door_unknown_state() -> None:
    error = rejected({"type": "door", "state": "ajar"}, DOOR)
    assert error.reason == "unknown_value"
    assert "state" in error.detail


@pytest.mark.parametrize("moving", [True, False])
def test_motion(moving: bool) -> None:
    [motion] = event({"type": "motion", "state": moving}, PIR)
    assert motion.kind is EventKind.MOTION
    assert motion.state is moving


def test_motion_state_as_string_is_wrong_type() -> None:
    error = rejected({"type": "motion", "state": "true"}, PIR)
    assert (error.reason, "state" in error.detail) == ("wrong_type", True)


def test_motion_missing_state() -> None:
    assert rejected({"type": "motion"}, PIR).reason == "missing_field"


def test_check_in_and_heartbeat() -> None:
    assert kinds(event({"type": "check_in", "state": "ignored"})) == [EventKind.CHECK_IN]
    [beat] = event({"type": "heartbeat", "battery": 54})
    assert (beat.kind, beat.battery) == (EventKind.HEARTBEAT, 54)


# -- health fields and ids --------------------------------------------------------------


@pytest.mark.parametrize(("raw", "kept"), [(0, 0), (100, 100), (87.6, 88), (150, None), (-1, None)])
def test_battery_range(raw: float, kept: int | None) -> None:
    [door] = event({"type": "door", "state": "open", "battery": raw}, DOOR)
    assert door.battery == kept


def test_battery_nan_is_dropped_not_rejected() -> None:
    [door] = event(b'{"type": "door", "state": "open", "battery": NaN}', DOOR)
    assert door.battery is None


def test_battery_wrong_type_rejects_non_emergency() -> None:
    error = rejected({"type": "door", "state": "closed", "battery": "80"}, DOOR)
    assert error.reason == "wrong_type"
    assert "battery" in error.detail


def test_int_id_is_stringified() -> None:
    [sos] = event({"type": "sos", "id": 42})
    assert sos.event_id == "42"


def test_empty_id_is_no_id() -> None:
    [sos] = event({"type": "sos", "id": ""})
    assert sos.event_id is None


@pytest.mark.parametrize("raw_id", [True, 1.5, {"a": 1}])
def test_wrong_type_id_rejects_non_emergency(raw_id: object) -> None:
    error = rejected({"type": "heartbeat", "id": raw_id})
    assert error.reason == "wrong_type"
    assert "id" in error.detail


def test_overlong_id() -> None:
    assert rejected({"type": "heartbeat", "id": "x" * 500}).reason == "too_long"


def test_unknown_fields_are_ignored() -> None:
    [beat] = event({"type": "heartbeat", "rssi": -70, "fw": {"v": 2}})
    assert beat.kind is EventKind.HEARTBEAT


# -- malformed payloads -----------------------------------------------------------------


def test_unknown_type() -> None:
    error = rejected({"type": "smoke"})
    assert error.reason == "unknown_value"
    assert "type" in error.detail


def test_missing_type() -> None:
    assert rejected({"state": "open"}).reason == "missing_field"


def test_type_not_a_string() -> None:
    assert rejected({"type": 1}).reason == "wrong_type"


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"sos", "not_json"),
        (b'{"type": "sos"', "not_json"),
        (b'["sos"]', "wrong_type"),
        (b'"sos"', "wrong_type"),
        (b"\xff\xfe\x00garbage", "not_utf8"),
        (b"", "empty"),
        (b"   ", "empty"),
        (b"[" * 50_000, "too_large"),
        (b"[" * 10_000, "not_json"),  # nesting deeper than the recursion limit
        (b'{"type": "sos", "battery": ' + b"9" * 5000 + b"}", "not_json"),
    ],
)
def test_malformed(payload: bytes, reason: str) -> None:
    assert rejected(payload).reason == reason


def test_too_large_even_for_sos() -> None:
    padding = "x" * MAX_PAYLOAD_BYTES
    error = rejected({"type": "sos", "pad": padding})
    assert error.reason == "too_large"


def test_payload_error_names_the_field() -> None:
    error = rejected({"type": "door", "state": "open", "battery": [80]}, DOOR)
    assert "'battery'" in error.detail


# -- status -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "online"),
    [
        (b"online", True),
        (b"offline", False),
        (b" Online\n", True),
        (b'{"state": "online"}', True),
        (b'{"state": "offline"}', False),
        (b'"offline"', False),
    ],
)
def test_status(payload: bytes, online: bool) -> None:
    [availability] = status(payload)
    assert availability.kind is EventKind.AVAILABILITY
    assert availability.state is online
    assert availability.retained


def test_status_unknown_word() -> None:
    with pytest.raises(PayloadError) as info:
        status(b"sleeping")
    assert info.value.reason == "unknown_value"


def test_status_object_without_state() -> None:
    with pytest.raises(PayloadError) as info:
        status(b'{"online": true}')
    assert info.value.reason == "missing_field"


# -- receive time -----------------------------------------------------------------------


def test_receive_time_in_another_zone_is_converted_to_utc() -> None:
    shanghai = NOW.astimezone(timezone(timedelta(hours=8)))
    [sos] = parse(SOS, TopicRole.EVENT, b'{"type": "sos"}', retained=False, received_at=shanghai)
    assert sos.received_at == NOW
    assert sos.received_at.utcoffset() == timedelta(0)


def test_naive_receive_time_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        parse(
            SOS,
            TopicRole.EVENT,
            b'{"type": "sos"}',
            retained=False,
            received_at=NOW.replace(tzinfo=None),
        )
