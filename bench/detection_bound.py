"""How soon could any threshold on silence find the falls? A hindsight bound.

For each untidy household of ``bench.eval_detection`` (same seed, same falls), knowing the
whole scored month in advance: the longest silence indoors (one that began with a
movement, not with a passage through the door) over the scored days other than the fall's,
per slot. A threshold just above that longest silence raises no false alarm in the month,
and finds the fall as soon as its own slot's threshold runs out. Three slot keys:

* the hour of the day the silence began (what a per-hour learned threshold can use);
* that hour and the motion sensor that saw the last movement;
* that hour, that sensor and the pace before it (busy: at least 3 movements within the
  hour up to it), as ``rules.inactivity.learned.by_sensor`` learns them.

No model that learns from the past can do better than its key's bound, which knows the
future: the bound says which features leave room for a ≤ 2 h median, not that a learned
model will reach it.

    python -m bench.detection_bound --households 100 --days 28 --warmup 14 [--seed 9001]
"""

from __future__ import annotations

import argparse
from collections import defaultdict, deque
from collections.abc import Callable, Hashable
from datetime import datetime, timedelta
from itertools import pairwise

from bench.common import median, percentile
from bench.eval_detection import FIRST_DAY, fall_day
from gateway.events import EventKind
from gateway.rules.routine import BUSY_MOVES, BUSY_WINDOW
from simulator.household import generate_households
from simulator.routine import TOWN_TZ, SimEvent
from simulator.untidy import untidy_days

Key = Callable[[SimEvent, datetime, bool], Hashable]
KEYS: dict[str, Key] = {
    "hour of day": lambda e, local, busy: local.hour,
    "hour, sensor": lambda e, local, busy: (local.hour, e.device),
    "hour, sensor, pace": lambda e, local, busy: (local.hour, e.device, busy),
}


def bounds(households: int, days: int, warmup: int, seed: int) -> dict[str, list[float]]:
    """Per key, the bound's delay (hours) for each household's fall."""
    delays: dict[str, list[float]] = {name: [] for name in KEYS}
    scored = FIRST_DAY + timedelta(days=warmup)
    for index, household in enumerate(generate_households(households, seed=seed, protocol="mixed")):
        fell_on = fall_day(index, seed, warmup + days, warmup)
        lived = untidy_days(household, FIRST_DAY, warmup + days, fall_on=fell_on)
        if not lived.falls:
            continue
        fall = lived.falls[0]
        signs = [e for e in lived.events if e.is_activity]
        longest: dict[str, dict[Hashable, float]] = {name: defaultdict(float) for name in KEYS}
        fall_slot: dict[str, Hashable] = {}
        recent: deque[datetime] = deque()
        for sign, following in pairwise(signs):
            if sign.kind is not EventKind.MOTION:
                continue
            recent.append(sign.at)
            while sign.at - recent[0] > BUSY_WINDOW:
                recent.popleft()
            local = sign.at.astimezone(TOWN_TZ)
            busy = len(recent) >= BUSY_MOVES
            if sign.at <= fall.at < following.at:
                fall_slot = {name: key(sign, local, busy) for name, key in KEYS.items()}
                continue
            if local.date() < scored or local.date() == fell_on:
                continue
            hours = (following.at - sign.at).total_seconds() / 3600
            for name, key in KEYS.items():
                slot = key(sign, local, busy)
                longest[name][slot] = max(longest[name][slot], hours)
        for name, slot in fall_slot.items():
            delays[name].append(longest[name][slot])
    return delays


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--households", type=int, default=100)
    parser.add_argument("--days", type=int, default=28)
    parser.add_argument("--warmup", type=int, default=14)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    print("| hindsight bound, per | falls | median delay | p90 delay |")
    print("| --- | --- | --- | --- |")
    for name, found in bounds(args.households, args.days, args.warmup, args.seed).items():
        print(f"| {name} | {len(found)} | {median(found):.2f} h | {percentile(found, 0.9):.2f} h |")


if __name__ == "__main__":
    main()
