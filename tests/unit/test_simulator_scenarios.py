"""Scenarios, their ground truth, and the payloads the simulator puts on the wire."""

from __future__ import annotations

import json
import random
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pytest

from gateway.devices import DeviceSpec, device_topics, parse
from gateway.events import MAX_PAYLOAD_BYTES, EventKind, PayloadError
from gateway.register.vocabulary import Protocol
from simulator.household import (
    Household,
    HouseholdProtocol,
    SimDevice,
    Topics,
    generate_households,
    with_protocol,
)
from simulator.payloads import Encoder
from simulator.routine import TOWN_TZ, SimEvent, day_events, day_rng, events_between
from simulator.scenarios import (
    EXPECTED_ALERT,
    GroundTruth,
    Injection,
    ScenarioName,
    ScenarioRequest,
    append_ground_truth,
    apply_injections,
    build_injection,
    default_duration,
    parse_duration,
    parse_scenario,
    resolve_request,
)

DAY = date(2026, 3, 10)
TOPICS = Topics("t/homewatch", "t/z2m")
GROUND_TRUTH_KEYS = {"scenario", "household", "person", "device", "at", "expected_alert"}


def at_local(hour: int, minute: int = 0, day: date = DAY) -> datetime:
    return datetime.combine(day, time(hour, minute), TOWN_TZ).astimezone(UTC)


@pytest.fixture(scope="module")
def homes() -> list[Household]:
    return generate_households(4, seed=11, protocol="native")


def simulate(home: Household, injection: Injection, days: int = 2) -> list[SimEvent]:
    """The household's routine from DAY on, as it happens under ``injection``."""
    start = at_local(0)
    routine = events_between([home], start, start + timedelta(days=days))
    return apply_injections(routine, [injection])


# --- Parsing ---------------------------------------------------------------------------------


def test_parse_scenario_forms() -> None:
    assert parse_scenario("sos") == ScenarioRequest(ScenarioName.SOS)
    assert parse_scenario("fall@+30m,bm-002") == ScenarioRequest(
        ScenarioName.FALL, at=timedelta(minutes=30), household="bm-002"
    )
    assert parse_scenario("door_open_night@23:30,for=1h") == ScenarioRequest(
        ScenarioName.DOOR_OPEN_NIGHT, at=time(23, 30), duration=timedelta(hours=1)
    )
    request = parse_scenario("battery_low@2026-03-10T09:00,bm-001,device=bm-001-sos")
    assert request.at == at_local(9)  # no offset: town time
    assert request.device == "bm-001-sos"
    assert parse_scenario("sos@2026-03-10T01:00:00+00:00").at == datetime(
        2026, 3, 10, 1, tzinfo=UTC
    )
    with pytest.raises(ValueError, match="unknown scenario"):
        parse_scenario("earthquake")
    with pytest.raises(ValueError, match="unknown scenario option"):
        parse_scenario("sos,colour=red")
    with pytest.raises(ValueError, match="not a time"):
        parse_scenario("sos@teatime")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("5m", timedelta(minutes=5)),
        ("4h", timedelta(hours=4)),
        ("2d", timedelta(days=2)),
        ("1w", timedelta(weeks=1)),
        ("30", timedelta(seconds=30)),
        ("PT1H30M", timedelta(hours=1, minutes=30)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


def test_parse_duration_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration("soon")


# --- Scenarios and ground truth --------------------------------------------------------------


def test_sos_is_a_press_of_the_pendant(homes: list[Household]) -> None:
    home = homes[0]
    at = at_local(10, 15)
    injection = build_injection(ScenarioName.SOS, home, at, random.Random(1))
    press = injection.events[-1]
    assert (press.kind, press.device, press.at) == (EventKind.SOS, home.sos.uid, at)
    truth = injection.truth
    assert truth == GroundTruth(
        ScenarioName.SOS, home.key, home.resident.name, home.sos.uid, at, "sos", None
    )
    record = json.loads(truth.to_json())
    assert set(record) >= GROUND_TRUTH_KEYS
    assert record["at"] == "2026-03-10T02:15:00+00:00"  # UTC
    assert record["person"] == home.resident.name


def test_fall_is_followed_by_no_activity_for_its_duration(homes: list[Household]) -> None:
    home = homes[1]
    at = at_local(9, 30)
    injection = build_injection(ScenarioName.FALL, home, at, random.Random(2))
    assert injection.truth.expected_alert == "fall"
    assert injection.truth.device == home.fall.uid
    duration = injection.truth.duration
    assert duration == timedelta(hours=6)
    assert injection.end == at + duration
    events = simulate(home, injection)
    falls = [e for e in events if e.kind is EventKind.FALL]
    assert [(e.at, e.device) for e in falls] == [(at, home.fall.uid)]
    before = [e for e in events if e.is_activity and at - timedelta(minutes=5) <= e.at < at]
    assert before, "the resident was moving just before the fall"
    silent = [e for e in events if e.is_activity and at < e.at < at + duration]
    assert silent == [], "no motion, door or check-in after a fall"
    # The devices stay alive (periodic reports continue) and life resumes afterwards.
    assert [e for e in events if e.kind is EventKind.HEARTBEAT and at < e.at < at + duration]
    assert [e for e in events if e.is_activity and e.at >= at + duration]
    # Without the injection the resident would have moved about in that window.
    routine = list(events_between([home], at, at + duration))
    assert [e for e in routine if e.is_activity]


@pytest.mark.parametrize(("hour", "expected"), [(9, timedelta(hours=5)), (19, timedelta(hours=13))])
def test_inactivity_outlasts_the_quiet_period_that_applies(
    homes: list[Household], hour: int, expected: timedelta
) -> None:
    home = homes[2]
    at = at_local(hour)
    injection = build_injection(ScenarioName.INACTIVITY, home, at, random.Random(3))
    assert injection.truth.duration == expected
    assert (injection.truth.device, injection.truth.expected_alert) == (None, "inactivity")
    events = simulate(home, injection)
    assert not [e for e in events if e.kind is EventKind.FALL]
    assert not [e for e in events if e.is_activity and at <= e.at < at + expected]


def test_door_open_night_leaves_the_door_open(homes: list[Household]) -> None:
    home = homes[0]
    at = at_local(23, 10)
    injection = build_injection(ScenarioName.DOOR_OPEN_NIGHT, home, at, random.Random(4))
    assert injection.truth.expected_alert == "door_open_night"
    events = simulate(home, injection)
    door = [e for e in events if e.device == home.door.uid and e.kind is EventKind.DOOR]
    opened = next(i for i, e in enumerate(door) if e.at == at)
    assert door[opened].state is True
    assert door[opened + 1].state is False
    assert door[opened + 1].at - at == timedelta(hours=1)
    # By day the same injection is no night-time alarm.
    by_day = build_injection(ScenarioName.DOOR_OPEN_NIGHT, home, at_local(14), random.Random(4))
    assert by_day.truth.expected_alert is None


def test_device_offline_goes_silent_between_offline_and_online(homes: list[Household]) -> None:
    home = homes[1]
    at = at_local(8)
    injection = build_injection(ScenarioName.DEVICE_OFFLINE, home, at, random.Random(5))
    pir = home.bedroom_motion.uid
    assert (injection.truth.device, injection.truth.expected_alert) == (pir, "device_offline")
    events = simulate(home, injection)
    availability = [e for e in events if e.kind is EventKind.AVAILABILITY]
    assert [(e.state, e.retain, e.device) for e in availability] == [
        (False, True, pir),
        (True, True, pir),
    ]
    off, on = availability[0].at, availability[1].at
    assert on - off == timedelta(hours=2)
    assert not [e for e in events if e.device == pir and off < e.at < on]
    assert [e for e in events if e.device != pir and off < e.at < on]  # others carry on


def test_battery_low_stays_low(homes: list[Household]) -> None:
    home = homes[2]
    at = at_local(7)
    injection = build_injection(ScenarioName.BATTERY_LOW, home, at, random.Random(6))
    door = home.door.uid
    assert (injection.truth.device, injection.truth.expected_alert) == (door, "battery_low")
    events = [e for e in simulate(home, injection) if e.device == door]
    window = [e for e in events if at <= e.at < at + timedelta(days=1)]
    assert window[0].battery is not None and window[0].battery < 15
    assert all(e.battery is not None and e.battery < 15 for e in window)
    after = [e for e in events if e.at >= at + timedelta(days=1)]
    assert after and all(e.battery is not None and e.battery > 15 for e in after)
    with pytest.raises(ValueError, match="mains powered"):
        build_injection(ScenarioName.BATTERY_LOW, home, at, random.Random(6), device=home.fall.uid)


def test_flapping_toggles_the_door_dozens_of_times_a_minute(homes: list[Household]) -> None:
    home = homes[3]
    at = at_local(11)
    injection = build_injection(ScenarioName.FLAPPING, home, at, random.Random(7))
    assert injection.truth.expected_alert is None
    events = simulate(home, injection)
    door = [e for e in events if e.device == home.door.uid and e.kind is EventKind.DOOR]
    flaps = [e for e in door if at <= e.at <= at + timedelta(seconds=95)]
    assert all(e.scenario == "flapping" for e in flaps), "routine door events interleaved"
    first_minute = [e for e in flaps if e.at < at + timedelta(minutes=1)]
    assert len(first_minute) >= 24
    assert [e.state for e in flaps] == [True, False] * (len(flaps) // 2)  # ends closed


@pytest.mark.parametrize("protocol", ["native", "zigbee2mqtt"])
def test_malformed_payloads_are_refused_by_the_gateway_adapters(
    homes: list[Household], protocol: HouseholdProtocol
) -> None:
    home = with_protocol(homes[0], protocol)
    injection = build_injection(ScenarioName.MALFORMED, home, at_local(12), random.Random(8))
    assert injection.truth.expected_alert is None
    payloads = [e.raw for e in injection.events]
    assert all(p is not None for p in payloads)
    assert any(len(p or b"") > MAX_PAYLOAD_BYTES for p in payloads)  # oversize
    assert b"not json at all" in payloads
    encoder = Encoder(TOPICS)
    reasons = set()
    for event in injection.events:
        device = home.by_uid(event.device)
        message = encoder.encode(device, event)
        assert message.payload == event.raw
        spec = _spec(device)
        with pytest.raises(PayloadError) as error:
            parse(
                spec,
                device_topics(spec)[message.topic],
                message.payload,
                retained=False,
                received_at=event.at,
            )
        reasons.add(error.value.reason)
    assert {"not_json", "too_large", "wrong_type", "not_utf8", "empty"} <= reasons


def test_every_scenario_has_a_ground_truth_with_the_expected_alert(
    homes: list[Household], tmp_path: Path
) -> None:
    path = tmp_path / "truth.jsonl"
    for name in ScenarioName:
        at = at_local(23, 30) if name is ScenarioName.DOOR_OPEN_NIGHT else at_local(10)
        injection = build_injection(name, homes[0], at, random.Random(9))
        assert injection.truth.at == at
        append_ground_truth(path, injection.truth)
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert [r["scenario"] for r in records] == [n.value for n in ScenarioName]
    for record in records:
        assert set(record) >= GROUND_TRUTH_KEYS
        assert record["expected_alert"] == EXPECTED_ALERT[ScenarioName(record["scenario"])]
        assert record["household"] == homes[0].key
        assert record["person"] == homes[0].resident.name
        assert datetime.fromisoformat(record["at"]).utcoffset() == timedelta(0)


def test_resolve_request(homes: list[Household]) -> None:
    start = at_local(8)
    rng = random.Random(10)

    def resolve(request: ScenarioRequest, now: datetime = start) -> Injection:
        return resolve_request(request, homes, start=start, now=now, default_at=now, rng=rng)

    chosen = resolve(ScenarioRequest(ScenarioName.SOS, household="bm-003"))
    assert (chosen.truth.household, chosen.truth.at) == ("bm-003", start)
    later = resolve(ScenarioRequest(ScenarioName.SOS, at=timedelta(minutes=30)))
    assert later.truth.at == start + timedelta(minutes=30)
    assert later.truth.household in {h.key for h in homes}
    night = resolve(ScenarioRequest(ScenarioName.DOOR_OPEN_NIGHT))
    assert night.truth.at == at_local(23)  # the default is tonight, not now
    assert night.truth.expected_alert == "door_open_night"
    early = resolve(ScenarioRequest(ScenarioName.FALL, at=time(7, 0)))
    assert early.truth.at == at_local(7, day=DAY + timedelta(days=1))  # next 07:00
    past = resolve(ScenarioRequest(ScenarioName.SOS, at=at_local(6)), now=at_local(9))
    assert past.truth.at == at_local(9)  # never back-dated
    with pytest.raises(ValueError, match="no household"):
        resolve(ScenarioRequest(ScenarioName.SOS, household="xx-999"))


def test_default_durations_cover_the_rules() -> None:
    assert default_duration(ScenarioName.SOS, at_local(9)) is None
    assert default_duration(ScenarioName.FALL, at_local(9)) == timedelta(hours=6)
    assert default_duration(ScenarioName.INACTIVITY, at_local(15, 59)) == timedelta(hours=5)
    assert default_duration(ScenarioName.INACTIVITY, at_local(16, 1)) == timedelta(hours=13)
    assert default_duration(ScenarioName.INACTIVITY, at_local(3)) == timedelta(hours=13)
    assert default_duration(ScenarioName.DOOR_OPEN_NIGHT, at_local(23)) == timedelta(hours=1)


# --- Payloads --------------------------------------------------------------------------------


def _spec(device: SimDevice) -> DeviceSpec:
    return DeviceSpec(device.uid, device.kind, device.protocol, TOPICS.base(device), device.model)


@pytest.mark.parametrize("protocol", ["native", "zigbee2mqtt"])
def test_payloads_are_understood_by_the_gateway_adapters(
    homes: list[Household], protocol: HouseholdProtocol
) -> None:
    """Routine and scenario events come out of the gateway's own adapters as they went in."""
    home = with_protocol(homes[1], protocol)
    events = day_events(home, DAY, day_rng(home, DAY))
    for name in (ScenarioName.SOS, ScenarioName.FALL, ScenarioName.DEVICE_OFFLINE):
        events += build_injection(name, home, at_local(3), random.Random(1)).events
    encoder = Encoder(TOPICS)
    for event in events:
        device = home.by_uid(event.device)
        message = encoder.encode(device, event)
        spec = _spec(device)
        parsed = parse(
            spec,
            device_topics(spec)[message.topic],
            message.payload,
            retained=message.retain,
            received_at=event.at + timedelta(seconds=1),
        )
        assert message.retain is (event.kind is EventKind.AVAILABILITY)
        kinds = {(e.kind, e.state) for e in parsed}
        if event.kind is EventKind.HEARTBEAT:
            # zigbee2mqtt repeats its cached state (contact, occupancy) in every report.
            assert kinds & {
                (EventKind.HEARTBEAT, None),
                (EventKind.DOOR, False),
                (EventKind.MOTION, False),
                (EventKind.MOTION, True),
            }
        else:
            assert (event.kind, event.state) in kinds
        if event.kind is not EventKind.AVAILABILITY:
            # The device's own timestamp (native ts, zigbee2mqtt last_seen) is the event time.
            assert all(abs(e.occurred_at - event.at) < timedelta(milliseconds=1) for e in parsed)
            assert not any(e.timestamp_fallback for e in parsed)
        if event.battery is not None and event.kind is not EventKind.AVAILABILITY:
            assert all(e.battery == event.battery for e in parsed)


def test_native_payload_shape(homes: list[Household]) -> None:
    home = homes[0]
    encoder = Encoder(TOPICS, new_id=iter(["id-1", "id-2", "id-3"]).__next__)
    at = at_local(7, 5)
    door = SimEvent(at, home.key, home.door.uid, EventKind.DOOR, state=True, battery=97)
    message = encoder.encode(home.door, door)
    assert message.topic == f"t/homewatch/{home.door.uid}/event"
    assert (message.qos, message.retain) == (1, False)
    assert json.loads(message.payload) == {
        "type": "door",
        "state": "open",
        "ts": "2026-03-10T07:05:00.000+08:00",
        "id": "id-1",
        "battery": 97,
    }
    motion = SimEvent(at, home.key, home.hall_motion.uid, EventKind.MOTION, state=False)
    assert json.loads(encoder.encode(home.hall_motion, motion).payload)["state"] is False
    offline = encoder.availability(home.sos, online=False)
    assert (offline.topic, offline.payload, offline.retain) == (
        f"t/homewatch/{home.sos.uid}/status",
        b"offline",
        True,
    )


def test_zigbee2mqtt_payload_shapes(homes: list[Household]) -> None:
    home = with_protocol(homes[0], "zigbee2mqtt")
    encoder = Encoder(TOPICS)
    at = at_local(7, 5)
    opened = SimEvent(at, home.key, home.door.uid, EventKind.DOOR, True, 97, 120)
    message = encoder.encode(home.door, opened)
    assert message.topic == f"t/z2m/{home.door.uid}"
    body = json.loads(message.payload)
    assert {k: body[k] for k in ("battery", "contact", "linkquality", "battery_low", "tamper")} == {
        "battery": 97,
        "contact": False,  # contact true means CLOSED
        "linkquality": 120,
        "battery_low": False,
        "tamper": False,
    }
    assert 2900 <= body["voltage"] <= 3100
    report = SimEvent(
        at + timedelta(hours=1),
        home.key,
        home.door.uid,
        EventKind.HEARTBEAT,
        battery=97,
        link_quality=118,
    )
    assert json.loads(encoder.encode(home.door, report).payload)["contact"] is False  # cached
    lean = Encoder(TOPICS, cache_state=False)
    lean.encode(home.door, opened)
    assert "contact" not in json.loads(lean.encode(home.door, report).payload)

    press = SimEvent(at, home.key, home.sos.uid, EventKind.SOS, battery=88, link_quality=90)
    sos = json.loads(encoder.encode(home.sos, press).payload)
    assert (sos["action"], sos["battery"], sos["linkquality"]) == ("emergency", 88, 90)
    later = SimEvent(
        at + timedelta(hours=1),
        home.key,
        home.sos.uid,
        EventKind.HEARTBEAT,
        battery=88,
        link_quality=91,
    )
    assert "action" not in json.loads(encoder.encode(home.sos, later).payload)  # momentary

    pir = SimEvent(at, home.key, home.hall_motion.uid, EventKind.MOTION, True, 90, 60)
    assert json.loads(encoder.encode(home.hall_motion, pir).payload)["occupancy"] is True
    fall = SimEvent(at, home.key, home.fall.uid, EventKind.FALL, link_quality=150)
    assert json.loads(encoder.encode(home.fall, fall).payload)["fall_down_status"] == "fall"
    online = encoder.availability(home.fall, online=True)
    assert (online.topic, json.loads(online.payload), online.retain) == (
        f"t/z2m/{home.fall.uid}/availability",
        {"state": "online"},
        True,
    )
    assert home.fall.protocol is Protocol.ZIGBEE2MQTT
