"""Untidy routines (simulator.untidy): varied, deterministic, and a fall is silent."""

from __future__ import annotations

from datetime import date, timedelta

from simulator.household import generate_households
from simulator.routine import TOWN_TZ
from simulator.untidy import persona_of, untidy_days

FIRST = date(2026, 9, 1)


def test_the_same_household_and_dates_give_the_same_events() -> None:
    [home] = generate_households(1, seed=7, protocol="mixed")
    first = untidy_days(home, FIRST, 5)
    again = untidy_days(home, FIRST, 5)
    assert [(e.at, e.device, e.state) for e in first.events] == [
        (e.at, e.device, e.state) for e in again.events
    ]
    assert first.events == sorted(first.events, key=lambda e: e.at)


def test_residents_differ_in_their_habits() -> None:
    personas = [persona_of(h) for h in generate_households(40, seed=3)]
    wakes = [p.wake for p in personas]
    assert max(wakes) - min(wakes) > 180  # early and late risers, hours apart
    assert any(p.field_prob > 0.3 for p in personas)
    assert any(p.field_prob < 0.15 for p in personas)
    assert min(p.pir_detect for p in personas) < 0.8


def test_after_a_silent_fall_no_sign_of_life_until_found_but_devices_report() -> None:
    [home] = generate_households(1, seed=11, protocol="zigbee2mqtt")
    lived = untidy_days(home, FIRST, 6, fall_on=FIRST + timedelta(days=3))
    [fall] = lived.falls
    assert fall.found_at - fall.at == timedelta(hours=24)
    local = fall.at.astimezone(TOWN_TZ)
    assert local.date() == FIRST + timedelta(days=3) and 7 <= local.hour < 20
    during = [e for e in lived.events if fall.at <= e.at < fall.found_at]
    assert during, "heartbeats and PIRs clearing go on"
    assert not [e for e in during if e.is_activity]
    before = [e for e in lived.events if e.at < fall.at and e.is_activity]
    assert before[-1].device.endswith(("pir-hall", "pir-bed")), "last seen indoors"
    after = [e for e in lived.events if e.at >= fall.found_at and e.is_activity]
    assert after, "life resumes once found"
