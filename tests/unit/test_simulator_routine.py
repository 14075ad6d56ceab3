"""Simulated homes and their daily routines: statistics over weeks, no broker."""

from __future__ import annotations

import itertools
import re
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pytest
import yaml

from gateway.events import EventKind
from gateway.register.idnumber import describe_problem
from gateway.register.phones import normalize_phone
from gateway.register.provisioning import parse_provisioning
from gateway.register.vocabulary import Category, DeviceKind, Gender, Protocol
from simulator.household import (
    VILLAGES,
    Household,
    Topics,
    generate_households,
    with_protocol,
)
from simulator.provisioning import provisioning_document, write_provisioning
from simulator.routine import (
    TOWN_TZ,
    SimEvent,
    battery_level,
    day_events,
    day_rng,
    events_between,
    is_away_night,
    local_midnight,
)

SEED = 20260310
FIRST_DAY = date(2026, 3, 9)  # a Monday
WEEK = [FIRST_DAY + timedelta(days=i) for i in range(7)]
OUTINGS = {"fields", "neighbour", "market"}


@pytest.fixture(scope="module")
def homes() -> list[Household]:
    return generate_households(20, seed=SEED, protocol="mixed")


@pytest.fixture(scope="module")
def week(homes: list[Household]) -> dict[tuple[str, date], list[SimEvent]]:
    return {(h.key, d): day_events(h, d, day_rng(h, d)) for h in homes for d in WEEK}


def local(event: SimEvent) -> datetime:
    return event.at.astimezone(TOWN_TZ)


def local_minute(event: SimEvent) -> float:
    at = local(event)
    return at.hour * 60 + at.minute + at.second / 60


def activity(events: list[SimEvent]) -> list[SimEvent]:
    return [e for e in events if e.is_activity]


def at_local(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), TOWN_TZ).astimezone(UTC)


# --- Households ----------------------------------------------------------------------------


def test_households_are_plausible_residents_of_the_town(homes: list[Household]) -> None:
    village_names = [name for name, _ in VILLAGES]
    assert [h.key for h in homes[:3]] == ["bm-001", "bm-002", "bm-003"]
    assert {h.village for h in homes[:10]} == {"坝芒村"}  # the pilot village first
    assert homes[10].village == "隘口村" and homes[10].key == "ak-001"
    born_1935_1960 = 0
    for home in homes:
        person = home.resident
        assert describe_problem(person.id_number, person.gender.value) is None
        assert person.id_number[6:14] == person.birth_date.strftime("%Y%m%d")
        assert int(person.id_number[16]) % 2 == (1 if person.gender is Gender.MALE else 0)
        born_1935_1960 += 1935 <= person.birth_date.year <= 1960
        assert re.fullmatch(r"\d组\d{1,2}号", person.address.removeprefix(home.village))
        assert home.village in village_names
        assert normalize_phone(person.phone) == person.phone
        assert normalize_phone(home.helper.phone) == home.helper.phone
        assert home.helper.village == home.village
        assert 2 <= len(person.name) <= 3
        assert person.categories and Category.CHILDREN_IN_DIFFICULTY not in person.categories
        kinds = Counter(d.kind for d in home.devices)
        assert kinds == {
            DeviceKind.SOS: 1,
            DeviceKind.FALL: 1,
            DeviceKind.MOTION: 2,
            DeviceKind.DOOR: 1,
        }
        assert home.sos.uid == f"{home.key}-sos"
    assert born_1935_1960 >= 0.8 * len(homes)
    uids = [d.uid for h in homes for d in h.devices]
    assert len(uids) == len(set(uids))
    assert len({h.resident.id_number for h in homes}) == len(homes)
    assert len({h.resident.phone for h in homes}) == len(homes)


def test_generation_is_reproducible_per_seed() -> None:
    first = generate_households(8, seed=5, protocol="mixed")
    again = generate_households(8, seed=5, protocol="mixed")
    other = generate_households(8, seed=6, protocol="mixed")
    assert first == again
    assert [h.resident for h in first] != [h.resident for h in other]
    # The uids are positional: stable whatever the seed.
    assert [d.uid for h in first for d in h.devices] == [d.uid for h in other for d in h.devices]


def test_protocols_per_household() -> None:
    native = generate_households(4, seed=1, protocol="native")
    z2m = generate_households(4, seed=1, protocol="zigbee2mqtt")
    assert {d.protocol for h in native for d in h.devices} == {Protocol.NATIVE}
    assert {d.protocol for h in z2m for d in h.devices} == {Protocol.ZIGBEE2MQTT}
    mixed = generate_households(30, seed=1, protocol="mixed")
    assert {h.protocol for h in mixed} == {"native", "zigbee2mqtt", "mixed"}
    for home in mixed:
        if home.protocol == "mixed":  # pendant and radar native, room sensors zigbee
            assert home.sos.protocol is Protocol.NATIVE
            assert home.door.protocol is Protocol.ZIGBEE2MQTT
        # Resolving "mixed" again gives the same answer for the same household.
        assert with_protocol(home, "mixed") == home


def test_provisioning_file_describes_exactly_the_simulated_homes(
    homes: list[Household], tmp_path: Path
) -> None:
    path = tmp_path / "homes.yaml"
    write_provisioning(homes, path, topic_prefix="t1/homewatch", z2m_base="t1/z2m")
    text = path.read_text(encoding="utf-8")
    doc = yaml.safe_load(text)
    assert doc == provisioning_document(homes, topics=Topics("t1/homewatch", "t1/z2m"))
    assert doc["town"] == "隘口镇"
    assert [v["name"] for v in doc["villages"]] == ["坝芒村", "隘口村"]
    assert all(v["emergency_team"][0]["role"] == "队长" for v in doc["villages"])
    helper_phones = {h["phone"] for h in doc["helpers"]}
    assert len(doc["persons"]) == len(homes)
    for person, home in zip(doc["persons"], homes, strict=True):
        assert person["id_number"] == home.resident.id_number  # a string, not a number
        assert person["helper"] in helper_phones
        for entry, device in zip(person["devices"], home.devices, strict=True):
            assert entry["uid"] == device.uid
            root = "t1/homewatch" if device.protocol is Protocol.NATIVE else "t1/z2m"
            assert entry["topic"] == f"{root}/{device.uid}"
            assert ("model" in entry) == (device.protocol is Protocol.ZIGBEE2MQTT)
    # Phones must survive YAML as strings ("+86…" unquoted would be read as an integer).
    assert "'+862376000000'" in text or '"+862376000000"' in text


def test_provisioning_file_passes_the_gateways_validation(
    homes: list[Household], tmp_path: Path
) -> None:
    path = tmp_path / "homes.yaml"
    write_provisioning(homes, path)
    parsed = parse_provisioning(path.read_text(encoding="utf-8"), source=str(path))
    assert [p.id_number for p in parsed.persons] == [h.resident.id_number for h in homes]
    assert {d.uid for p in parsed.persons for d in p.devices} == {
        d.uid for h in homes for d in h.devices
    }


# --- Routine shape ---------------------------------------------------------------------------


def test_events_are_time_ordered_utc_and_belong_to_the_household(
    homes: list[Household], week: dict[tuple[str, date], list[SimEvent]]
) -> None:
    for home in homes:
        uids = {d.uid for d in home.devices}
        for day in WEEK:
            events = week[home.key, day]
            assert events, f"{home.key} {day}: no events at all"
            assert [e.at for e in events] == sorted(e.at for e in events)
            assert all(e.at.utcoffset() == timedelta(0) for e in events)
            assert {e.device for e in events} <= uids
            assert all(e.household == home.key for e in events)
            # Routine events of a day lie in that local day (periodic reports may spill
            # a few seconds past midnight because of their jitter).
            assert events[0].at >= local_midnight(day)
            assert events[-1].at < local_midnight(day + timedelta(days=1)) + timedelta(minutes=2)


def test_wake_times_fall_in_the_morning_window(
    homes: list[Household], week: dict[tuple[str, date], list[SimEvent]]
) -> None:
    wakes = []
    for home in homes:
        for day in WEEK:
            wake = [e for e in week[home.key, day] if e.activity == "wake" and e.is_activity]
            if is_away_night(home, day - timedelta(days=1)):
                assert not wake, "nobody wakes up in an empty house"
                continue
            assert wake, f"{home.key} {day}: no wake"
            minute = local_minute(wake[0])
            assert 5 * 60 + 30 <= minute <= 7 * 60, f"{home.key} {day}: woke at {local(wake[0])}"
            wakes.append(minute)
    # Not everybody gets up at the same minute.
    assert max(wakes) - min(wakes) > 45


def test_every_day_has_daytime_activity_without_long_silences(
    homes: list[Household], week: dict[tuple[str, date], list[SimEvent]]
) -> None:
    checked = 0
    for home in homes:
        for day in WEEK:
            day_start, day_end = at_local(day, 6), at_local(day, 21)
            moments = [e.at for e in activity(week[home.key, day]) if day_start <= e.at < day_end]
            assert moments, f"{home.key} {day}: no activity between 06:00 and 21:00"
            if is_away_night(home, day) or is_away_night(home, day - timedelta(days=1)):
                continue  # the house is empty for part of the day: long gaps are expected
            edges = [day_start, *moments, day_end]
            longest = max(b - a for a, b in itertools.pairwise(edges))
            assert longest < timedelta(hours=4), f"{home.key} {day}: silent for {longest}"
            checked += 1
    assert checked >= 0.8 * len(homes) * len(WEEK)


def test_nights_are_quiet_but_shorter_than_the_night_rule(
    homes: list[Household], week: dict[tuple[str, date], list[SimEvent]]
) -> None:
    for home in homes:
        for day, following in itertools.pairwise(WEEK):
            if is_away_night(home, day):
                continue
            evening = activity(week[home.key, day])
            morning = activity(week[home.key, following])
            bed = evening[-1]
            assert bed.activity == "bed"
            assert 20 * 60 <= local_minute(bed) <= 21 * 60 + 32
            assert morning[0].at - bed.at < timedelta(hours=12)
            assert morning[0].activity in ("night_trip", "wake")


def test_naps_exist_and_are_one_to_two_hours_of_stillness(
    homes: list[Household], week: dict[tuple[str, date], list[SimEvent]]
) -> None:
    naps = 0
    for home in homes:
        napped_days = 0
        for day in WEEK:
            events = activity(week[home.key, day])
            starts = [e for e in events if e.activity == "nap"]
            if not starts:
                continue
            napped_days += 1
            naps += 1
            start = starts[0]
            end = next(e for e in events if e.activity == "nap_end")
            assert start.device == end.device == home.bedroom_motion.uid
            assert timedelta(minutes=59) <= end.at - start.at <= timedelta(minutes=122)
            assert not [e for e in events if start.at < e.at < end.at], "a nap is still"
            assert 11 * 60 + 30 <= local_minute(start) <= 15 * 60
        assert napped_days >= 1, f"{home.key} never naps"
    assert naps >= 0.5 * len(homes) * len(WEEK)


def test_night_bathroom_trips_happen_on_some_nights(
    homes: list[Household], week: dict[tuple[str, date], list[SimEvent]]
) -> None:
    nights_with_trip = 0
    for home in homes:
        for day in WEEK:
            trips = [e for e in activity(week[home.key, day]) if e.activity == "night_trip"]
            if trips:
                nights_with_trip += 1
                assert all(60 <= local_minute(e) <= 4 * 60 + 20 for e in trips)
                assert trips[0].device == home.bedroom_motion.uid  # out of bed first
                assert {e.device for e in trips} == {
                    home.bedroom_motion.uid,
                    home.hall_motion.uid,
                }
    total = len(homes) * len(WEEK)
    assert 0.2 * total <= nights_with_trip <= 0.85 * total


def test_outings_open_and_close_the_door_then_leave_the_house_silent(
    homes: list[Household], week: dict[tuple[str, date], list[SimEvent]]
) -> None:
    outings = 0
    for home in homes:
        for day in WEEK:
            events = week[home.key, day]
            door = [e for e in events if e.activity in OUTINGS and e.kind is EventKind.DOOR]
            if not door:
                continue
            outings += 1
            assert [e.state for e in door] == [True, False, True, False]
            left, back = door[1].at, door[2].at
            assert timedelta(hours=1) <= back - left <= timedelta(hours=4)
            inside = [e for e in activity(events) if left < e.at < back]
            assert not inside, f"{home.key} {day}: activity while out"
    assert outings >= 0.3 * len(homes) * len(WEEK)


def test_sensors_behave_like_sensors(
    homes: list[Household], week: dict[tuple[str, date], list[SimEvent]]
) -> None:
    for home in homes:
        events = [e for day in WEEK for e in week[home.key, day]]
        for device in home.devices:
            own = [
                e for e in events if e.device == device.uid and e.kind is not EventKind.HEARTBEAT
            ]
            if device.kind is DeviceKind.MOTION:
                # PIR: occupancy true, then false 60-90 s later (zigbee2mqtt occupancy timeout).
                assert [e.state for e in own] == [True, False] * (len(own) // 2)
                for on, off in zip(own[::2], own[1::2], strict=True):
                    assert 60 <= (off.at - on.at).total_seconds() <= 90
            elif device.kind is DeviceKind.DOOR:
                assert [e.state for e in own] == [True, False] * (len(own) // 2)
                for opened, closed in zip(own[::2], own[1::2], strict=True):
                    assert 5 <= (closed.at - opened.at).total_seconds() <= 20


def test_periodic_reports_battery_and_link_quality(
    homes: list[Household], week: dict[tuple[str, date], list[SimEvent]]
) -> None:
    for home in homes:
        events = [e for day in WEEK for e in week[home.key, day]]
        for device in home.devices:
            reports = [
                e for e in events if e.device == device.uid and e.kind is EventKind.HEARTBEAT
            ]
            expected = 7 * 86400 / device.report_period_s
            assert expected - 2 <= len(reports) <= expected + 2
            gaps = [(b.at - a.at).total_seconds() for a, b in itertools.pairwise(reports)]
            assert max(gaps) <= device.report_period_s + 120
            own = [e for e in events if e.device == device.uid]
            if device.battery_powered:
                levels = [e.battery for e in own if e.battery is not None]
                assert len(levels) == len(own)
                assert all(15 < level <= 100 for level in levels)
                for before, after in itertools.pairwise(levels):
                    # Drains at most 1 % between two reports, or is renewed at the yearly check.
                    assert before - 1 <= after <= before or after == device.battery_full
            else:
                assert {e.battery for e in own} == {None}
            qualities = [e.link_quality for e in own]
            if device.protocol is Protocol.ZIGBEE2MQTT:
                assert all(q is not None and 0 <= q <= 255 for q in qualities)
                assert len(set(qualities)) > 3, "link quality should be noisy"
            else:
                assert set(qualities) == {None}


def test_battery_drains_slowly_and_is_renewed_yearly(homes: list[Household]) -> None:
    door = homes[0].door
    start = at_local(date(2026, 1, 1), 12)
    levels = [battery_level(door, start + timedelta(days=n)) or 0 for n in range(730)]
    assert all(35 <= level <= 100 for level in levels)
    drops = [a - b for a, b in itertools.pairwise(levels)]
    assert all(-100 < d <= 1 for d in drops)
    assert sum(1 for d in drops if d < 0) == 2  # one battery change a year
    assert battery_level(homes[0].fall, start) is None  # mains-powered radar


def test_residents_sometimes_sleep_at_a_daughters(homes: list[Household]) -> None:
    days = [FIRST_DAY + timedelta(days=i) for i in range(60)]
    away = [(h, d) for h in homes for d in days if is_away_night(h, d)]
    assert away, "nobody ever visits a daughter overnight"
    assert all(h.habits.overnight_visit_prob > 0 for h, _ in away)
    for home, day in away[:10]:
        assert not is_away_night(home, day + timedelta(days=1))  # never two nights running
        evening = day_events(home, day, day_rng(home, day))
        left = [e for e in evening if e.activity == "visit_daughter" and e.kind is EventKind.DOOR]
        assert [e.state for e in left] == [True, False]
        assert 14 * 60 <= local_minute(left[0]) <= 18 * 60
        assert not [e for e in activity(evening) if e.at > left[-1].at]
        morning = day_events(home, day + timedelta(days=1), day_rng(home, day + timedelta(days=1)))
        first = activity(morning)[0]
        assert first.activity == "back_from_daughter" and first.kind is EventKind.DOOR
        assert 9 * 60 <= local_minute(first) <= 11 * 60 + 31


def test_routines_are_reproducible_and_vary(homes: list[Household]) -> None:
    home = homes[0]
    day = WEEK[2]
    first = day_events(home, day, day_rng(home, day))
    assert first == day_events(home, day, day_rng(home, day))
    assert first != day_events(home, WEEK[3], day_rng(home, WEEK[3]))  # day to day
    assert first != day_events(homes[1], day, day_rng(homes[1], day))  # person to person
    other_seed = generate_households(20, seed=SEED + 1, protocol="mixed")[0]
    assert [e.at for e in first] != [
        e.at for e in day_events(other_seed, day, day_rng(other_seed, day))
    ]
    # The protocol changes payloads, not the resident's day.
    z2m = with_protocol(home, "zigbee2mqtt")
    native = with_protocol(home, "native")
    assert [
        (e.at, e.device, e.state)
        for e in activity(day_events(z2m, day, day_rng(z2m, day)))
        if e.kind is not EventKind.CHECK_IN
    ] == [
        (e.at, e.device, e.state)
        for e in activity(day_events(native, day, day_rng(native, day)))
        if e.kind is not EventKind.CHECK_IN
    ]


def test_events_between_merges_households_in_order(homes: list[Household]) -> None:
    start = at_local(WEEK[0], 22)
    end = at_local(WEEK[1], 8)
    events = list(events_between(homes[:5], start, end))
    assert events and all(start <= e.at < end for e in events)
    assert [e.at for e in events] == sorted(e.at for e in events)
    assert {e.household for e in events} == {h.key for h in homes[:5]}
    # Same as computing each day on its own.
    by_day = defaultdict(list)
    for e in events:
        by_day[e.household].append(e)
    home = homes[0]
    expected = [
        e
        for d in (WEEK[0], WEEK[1])
        for e in day_events(home, d, day_rng(home, d))
        if start <= e.at < end
    ]
    assert by_day[home.key] == expected
