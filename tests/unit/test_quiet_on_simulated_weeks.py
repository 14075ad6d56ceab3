"""The default windows against a simulated fortnight of normal life: no false alarm on a
home day, every unmarked night away alerts, and a silent fall is caught within 12 hours."""

from __future__ import annotations

import itertools
from datetime import date, timedelta

from bench.eval_quiet import signs_of_life
from gateway.config import RulesConfig
from gateway.rules.quiet import inactivity_deadline
from simulator.household import generate_households
from simulator.routine import TOWN_TZ, is_away_night

DAYS = [date(2026, 3, 2) + timedelta(days=n) for n in range(14)]


def test_default_windows_stay_quiet_on_normal_days_and_speak_up_on_empty_nights() -> None:
    rules = RulesConfig()
    false_alarms: list[str] = []
    away_alarms = away_nights = 0
    for household in generate_households(20, seed=11, protocol="mixed"):
        alive = signs_of_life(household, DAYS, rules)
        assert len(alive) > 20 * len(DAYS), "a simulated day has plenty of movement"
        away = {day for day in DAYS if is_away_night(household, day)}
        away_nights += len(away)
        for before, after in itertools.pairwise(alive):
            due = inactivity_deadline(before, rules.inactivity, TOWN_TZ)
            assert due - before <= timedelta(hours=12), "never silent longer than night quiet"
            if due < after:
                day = before.astimezone(TOWN_TZ).date()
                if day in away or day - timedelta(days=1) in away:
                    away_alarms += 1
                else:
                    false_alarms.append(f"{household.key} {before.astimezone(TOWN_TZ)}")
    assert false_alarms == []
    assert away_nights > 0 and away_alarms >= away_nights - 1
