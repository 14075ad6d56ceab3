"""Topics, subscription filters, ignorable topics, and a fuzz test of :func:`parse`."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime

import pytest

from gateway.devices import (
    DeviceSpec,
    TopicRole,
    default_topic,
    device_topics,
    is_ignorable,
    parse,
    subscription_filters,
)
from gateway.devices._common import topic_matches
from gateway.events import EventKind, PayloadError, SensorEvent
from gateway.register.vocabulary import DeviceKind, Protocol

NOW = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)

SPECS = [
    DeviceSpec("n1", DeviceKind.SOS, Protocol.NATIVE, "homewatch/n1"),
    DeviceSpec("n2", DeviceKind.DOOR, Protocol.NATIVE, "t5/homewatch/n2"),
    DeviceSpec("z1", DeviceKind.SOS, Protocol.ZIGBEE2MQTT, "zigbee2mqtt/z1"),
    DeviceSpec("z2", DeviceKind.FALL, Protocol.ZIGBEE2MQTT, "zb-test42/bm-zs-sos"),
    DeviceSpec("z3", DeviceKind.MOTION, Protocol.ZIGBEE2MQTT, "lonely-pir"),
    DeviceSpec("t1", DeviceKind.DOOR, Protocol.TASMOTA, "bm-door"),
    DeviceSpec("t2", DeviceKind.MOTION, Protocol.TASMOTA, "zbbridge/662E"),
    DeviceSpec("s1", DeviceKind.DOOR, Protocol.SHELLY, "shellies/shellydw2-483FDA"),
    DeviceSpec("s2", DeviceKind.SOS, Protocol.SHELLY, "shellyplusi4-a8032ab1c2d3"),
    DeviceSpec("s3", DeviceKind.MULTI, Protocol.SHELLY, "home/shellyplus1-abc"),
]


# -- default topics and device topics ---------------------------------------------------


@pytest.mark.parametrize(
    ("protocol", "topic"),
    [
        (Protocol.NATIVE, "homewatch/bm-zs-pir"),
        (Protocol.ZIGBEE2MQTT, "zigbee2mqtt/bm-zs-pir"),
        (Protocol.TASMOTA, "bm-zs-pir"),
        (Protocol.SHELLY, "shellies/bm-zs-pir"),
    ],
)
def test_default_topic(protocol: Protocol, topic: str) -> None:
    assert default_topic("bm-zs-pir", protocol) == topic


def test_native_topics() -> None:
    assert device_topics(SPECS[0]) == {
        "homewatch/n1/event": TopicRole.EVENT,
        "homewatch/n1/status": TopicRole.AVAILABILITY,
    }


def test_zigbee2mqtt_topics() -> None:
    assert device_topics(SPECS[3]) == {
        "zb-test42/bm-zs-sos": TopicRole.STATE,
        "zb-test42/bm-zs-sos/availability": TopicRole.AVAILABILITY,
    }


def test_spec_coerces_plain_strings() -> None:
    spec = DeviceSpec("x", "door", "zigbee2mqtt", "zigbee2mqtt/x")  # type: ignore[arg-type]
    assert spec.kind is DeviceKind.DOOR
    assert spec.protocol is Protocol.ZIGBEE2MQTT
    assert spec == DeviceSpec("x", DeviceKind.DOOR, Protocol.ZIGBEE2MQTT, "zigbee2mqtt/x")


def test_spec_refuses_unknown_kind() -> None:
    with pytest.raises(ValueError, match="toaster"):
        DeviceSpec("x", "toaster", "native", "homewatch/x")  # type: ignore[arg-type]


# -- subscription filters ---------------------------------------------------------------


def test_standard_families_without_devices() -> None:
    filters = subscription_filters([])
    for expected in (
        "homewatch/+/event",
        "homewatch/+/status",
        "zigbee2mqtt/+",
        "zigbee2mqtt/+/availability",
        "tele/+/+",
        "stat/+/+",
        "shellies/+/online",
        "shellies/+/sensor/+",
        "shellies/+/input_event/+",
        "+/events/rpc",
        "+/online",
        "+/status/+",
    ):
        assert expected in filters


def test_native_under_a_prefix() -> None:
    spec = DeviceSpec("abc", DeviceKind.MOTION, Protocol.NATIVE, "t5/homewatch/abc")
    filters = subscription_filters([spec])
    assert "t5/homewatch/+/event" in filters
    assert "t5/homewatch/+/status" in filters


def test_zigbee2mqtt_under_another_base() -> None:
    spec = DeviceSpec("s", DeviceKind.SOS, Protocol.ZIGBEE2MQTT, "zb-test42/bm-zs-sos")
    filters = subscription_filters([spec])
    assert "zb-test42/+" in filters
    assert "zb-test42/+/availability" in filters


def test_tasmota_topic_with_a_prefix() -> None:
    filters = subscription_filters([SPECS[6]])
    assert "tele/zbbridge/+/+" in filters
    assert "stat/zbbridge/+/+" in filters


def test_shelly_under_a_custom_prefix_covers_both_generations() -> None:
    filters = subscription_filters([SPECS[9]])
    assert "home/+/events/rpc" in filters
    assert "home/+/sensor/+" in filters


def test_default_devices_add_nothing() -> None:
    assert subscription_filters([SPECS[0], SPECS[2], SPECS[5], SPECS[7]]) == subscription_filters(
        []
    )


def test_filters_are_deduplicated_and_stable() -> None:
    filters = subscription_filters(SPECS + SPECS)
    assert len(filters) == len(set(filters))
    assert filters == subscription_filters(SPECS)


def test_topic_without_a_prefix_is_subscribed_exactly() -> None:
    filters = subscription_filters([SPECS[4]])
    assert "lonely-pir" in filters
    assert "lonely-pir/availability" in filters
    assert "+" not in filters


def test_invalid_register_topics_never_reach_the_broker() -> None:
    bad = [
        DeviceSpec("a", DeviceKind.DOOR, Protocol.NATIVE, "homewatch/#"),
        DeviceSpec("b", DeviceKind.DOOR, Protocol.ZIGBEE2MQTT, "zigbee2mqtt/+"),
        DeviceSpec("c", DeviceKind.DOOR, Protocol.TASMOTA, ""),
    ]
    assert subscription_filters(bad) == subscription_filters([])


def test_every_filter_is_a_valid_mqtt_filter() -> None:
    for pattern in subscription_filters(SPECS):
        levels = pattern.split("/")
        assert pattern
        assert all(level in ("+", "#") or not {"+", "#"} & set(level) for level in levels)
        assert "#" not in levels[:-1]


def test_every_device_topic_is_subscribed() -> None:
    filters = subscription_filters(SPECS)
    for spec in SPECS:
        for topic in device_topics(spec):
            assert any(topic_matches(f, topic) for f in filters), topic


def test_unregistered_siblings_are_subscribed() -> None:
    filters = subscription_filters(SPECS)
    for topic in (
        "homewatch/stranger/event",
        "t5/homewatch/stranger/status",
        "zb-test42/stranger",
        "zigbee2mqtt/stranger/availability",
        "tele/stranger/LWT",
        "shellies/shellydw2-FFFFFF/sensor/state",
        "shellyplus1-ffffff/events/rpc",
    ):
        assert any(topic_matches(f, topic) for f in filters), topic


@pytest.mark.parametrize(
    ("pattern", "topic", "matches"),
    [
        ("a/+/c", "a/b/c", True),
        ("a/+/c", "a/b/d", False),
        ("a/#", "a", True),
        ("a/#", "a/b/c", True),
        ("+/online", "x/online", True),
        ("+/online", "shellies/x/online", False),
        ("+/status/+", "$SYS/status/x", False),
        ("a/b", "a/b", True),
    ],
)
def test_topic_matching(pattern: str, topic: str, matches: bool) -> None:
    assert topic_matches(pattern, topic) is matches


# -- ignorable topics -------------------------------------------------------------------


@pytest.mark.parametrize(
    "topic",
    [
        "zigbee2mqtt/bridge/state",
        "zigbee2mqtt/bridge/devices",
        "zigbee2mqtt/bridge/response/permit_join",
        "zb-test42/bridge/info",
        "homewatch/gateway/homewatch-gateway/status",
        "t5/homewatch/gateway/gw-2/status",
        "$SYS/broker/load/messages/received/1min",
        "tasmota/discovery/DC4F22D3B2A1/config",
        "homeassistant/binary_sensor/x/config",
        "cmnd/bm-door/POWER",
        "tele/bm-door/INFO1",
        "stat/bm-door/STATUS5",
        "shellies/announce",
        "shellies/shelly1-ABC/relay/0/power",
        "shellies/shelly1-ABC/sensor/lux",
        "shellyplus1-abc/status/sys",
        "shellyplus1-abc/status/switch:0",
        "shellyplus1-abc/rpc",
    ],
)
def test_ignorable(topic: str) -> None:
    assert is_ignorable(topic)


@pytest.mark.parametrize(
    "topic",
    [
        "zigbee2mqtt/0x00158d0001a2b3c4",
        "zigbee2mqtt/new-sensor/availability",
        "homewatch/stranger/event",
        "homewatch/bridge/event",  # a native device whose uid is "bridge"
        "tele/bridge/STATE",  # a Tasmota whose %topic% is "bridge"
        "tele/stranger/LWT",
        "stat/stranger/RESULT",
        "shellies/shellydw2-FFFFFF/online",
        "shellies/shellybutton1-FFFFFF/input_event/0",
        "shellyplus1-ffffff/events/rpc",
        "shellyplus1-ffffff/online",
        "shellyplus1-ffffff/status/input:0",
    ],
)
def test_not_ignorable(topic: str) -> None:
    assert not is_ignorable(topic)


# -- fuzz -------------------------------------------------------------------------------

ROLES = {
    Protocol.NATIVE: [TopicRole.EVENT, TopicRole.AVAILABILITY],
    Protocol.ZIGBEE2MQTT: [TopicRole.STATE, TopicRole.AVAILABILITY],
    Protocol.TASMOTA: [
        TopicRole.SENSOR,
        TopicRole.STATE,
        TopicRole.RESULT,
        TopicRole.AVAILABILITY,
        TopicRole.POWER,
        TopicRole.BUTTON,
    ],
    Protocol.SHELLY: list(TopicRole),
}
KEYS = [
    "type", "state", "ts", "id", "battery", "action", "contact", "occupancy", "sos", "alarm",
    "fall_down_status", "fall_status", "status", "battery_low", "linkquality", "last_seen",
    "Switch1", "Button1", "ZbReceived", "Contact", "Occupancy", "Power", "Click",
    "ZoneStatusChange", "BatteryPercentage", "LinkQuality", "Time", "Wifi", "RSSI", "Action",
    "ACTION", "event", "events", "component", "method", "params", "input:0", "devicepower:0",
    "wifi", "rssi", "bat", "value", "sensor", "motion", "percent", "wifi_sta",
]  # fmt: skip
WORDS = [
    "sos", "fall", "door", "motion", "check_in", "heartbeat", "open", "closed", "close",
    "online", "offline", "Online", "true", "false", "ON", "OFF", "TOGGLE", "SINGLE", "S", "L",
    "emergency", "single", "hold_release", "maybe_fall", "fall_alarm", "falling",
    "single_push", "btn_down", "NotifyEvent", "NotifyStatus", "input:0", "2025-03-01T08:00:00Z",
    "2025-03-01T08:00:00", "9999-12-31T23:59:59-23:59", "", " ", "\u0000", "\ud800", "é",
]  # fmt: skip


def random_value(rng: random.Random, depth: int = 0) -> object:
    choice = rng.randrange(10 if depth < 4 else 6)
    if choice == 0:
        return None
    if choice == 1:
        return rng.choice([True, False])
    if choice == 2:
        return rng.choice([0, 1, -1, 33, 100, 101, 255, 2**70, -(2**63), 1740816000000])
    if choice == 3:
        return rng.choice([0.5, 87.6, -1e308, 1e308, 1740816000.25, float("nan")])
    if choice in (4, 5):
        return rng.choice(WORDS)
    if choice in (6, 7):
        return {rng.choice(KEYS): random_value(rng, depth + 1) for _ in range(rng.randrange(6))}
    return [random_value(rng, depth + 1) for _ in range(rng.randrange(4))]


def random_payload(rng: random.Random) -> bytes:
    match rng.randrange(6):
        case 0:
            return rng.randbytes(rng.randrange(64))
        case 1:
            return rng.choice(WORDS).encode("utf-8", "surrogatepass")
        case 2:
            text = json.dumps(random_value(rng))
            cut = rng.randrange(len(text) + 1)
            return text[:cut].encode("utf-8", "surrogatepass")
        case 3:
            nesting = rng.randrange(1, 3000)
            return b"[" * nesting + b"]" * rng.randrange(nesting + 1)
        case _:
            obj = {rng.choice(KEYS): random_value(rng) for _ in range(rng.randrange(1, 8))}
            return json.dumps(obj).encode("utf-8", "surrogatepass")


def check_events(events: list[SensorEvent], spec: DeviceSpec, retained: bool) -> None:
    assert events, "an accepted message yields at least one event"
    for e in events:
        assert isinstance(e, SensorEvent)
        assert e.device_uid == spec.uid
        assert e.retained is retained
        assert e.received_at == NOW
        assert e.battery is None or 0 <= e.battery <= 100
        assert e.link_quality is None or 0 <= e.link_quality <= 255
        if retained:
            assert not e.kind.is_emergency
        if e.kind is EventKind.DOOR or e.kind is EventKind.MOTION:
            assert isinstance(e.state, bool)


def test_fuzz_parse_only_ever_raises_payload_error() -> None:
    rng = random.Random(20250301)  # fixed seed: a failure reproduces
    specs = [
        DeviceSpec(f"fz-{p}-{k}", k, p, default_topic(f"fz-{k}", p))
        for p in Protocol
        for k in DeviceKind
    ]
    accepted = 0
    rejections: list[PayloadError] = []
    for _ in range(6000):
        spec = rng.choice(specs)
        role = rng.choice(ROLES[spec.protocol])
        retained = rng.random() < 0.2
        payload = random_payload(rng)
        try:
            events = parse(spec, role, payload, retained=retained, received_at=NOW)
        except PayloadError as error:
            rejections.append(error)
        else:
            check_events(events, spec, retained)
            accepted += 1
    assert all(error.reason and error.detail for error in rejections)
    # The generator must exercise both paths, or the test proves nothing.
    assert accepted > 500
    assert len(rejections) > 500


def test_fuzz_emergencies_survive_random_noise() -> None:
    """Safety first: whatever junk rides along, an SOS stays an SOS."""
    rng = random.Random(4242)
    native = DeviceSpec("n", DeviceKind.SOS, Protocol.NATIVE, "homewatch/n")
    z2m = DeviceSpec("z", DeviceKind.SOS, Protocol.ZIGBEE2MQTT, "zigbee2mqtt/z")
    for _ in range(1000):
        noise = {rng.choice(KEYS): random_value(rng) for _ in range(rng.randrange(6))}
        for spec, role, core in (
            (native, TopicRole.EVENT, {"type": "sos"}),
            (z2m, TopicRole.STATE, {"action": "emergency"}),
        ):
            body = {**{k: v for k, v in noise.items() if k not in core}, **core}
            payload = json.dumps(body).encode("utf-8", "surrogatepass")
            events = parse(spec, role, payload, retained=False, received_at=NOW)
            assert events[0].kind is EventKind.SOS, body
