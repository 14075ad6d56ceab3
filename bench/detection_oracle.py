"""Could any silence threshold reach the target? An oracle that knows each home's habits.

``bench.detection_bound`` picks each slot's threshold just above the month's longest
silence, knowing that month: it never pays for a threshold that is too short, so it says
which features leave room, not what can be learned. This oracle asks the question the
issue's target poses — at most 0.05 false alarms per household-day, and half of the silent
falls found within 2 h — of the best possible *choice* of thresholds, made on a long past
and paid for on a future it did not see:

* each untidy household (``simulator.untidy``, as in ``bench.eval_detection``) lives
  ``--days`` days without a fall; its silences indoors are keyed like the learned model's
  (hour of the day, motion sensor, pace before it);
* a silent fall comes just after a movement indoors between 07:00 and 20:00, so the share of
  a home's falls in a slot is the share of its daytime movements there;
* per home and slot, the oracle may set the threshold to ``--within`` (2 h): that slot's
  falls are then found within 2 h, and every silence there longer than 2 h is a false
  alarm. Elsewhere it is assumed to raise nothing (as generous as possible). The slots are
  taken best first — the most falls per false alarm, over all homes at once — until the
  budget is spent, as a town-wide optimum would;
* the choice is made on the first ``--learn`` days (by default half of them: 200 days,
  seven times the month a live model has) and scored on the days after.

The town-wide order is the knapsack's greedy answer: no per-slot choice of one threshold
finds more falls within 2 h per false alarm on the days it was chosen on. Scored on the days
after, its false alarms rise (a slot quiet for 200 days is not a slot that never goes quiet),
which is exactly what a model learned from the past meets.

    python -m bench.detection_oracle --households 100 --days 400 [--seed 9001]
    python -m bench.detection_oracle --households 100 --days 400 --learn 28
    python -m bench.detection_oracle --households 100 --days 1200 --learn 800
"""

from __future__ import annotations

import argparse
from collections import defaultdict, deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise

from bench.eval_detection import FIRST_DAY
from gateway.events import EventKind
from gateway.rules.routine import BUSY_MOVES, BUSY_WINDOW
from simulator.household import generate_households
from simulator.routine import TOWN_TZ
from simulator.untidy import untidy_days

#: Falls come between these local hours (``simulator.untidy._pick_fall``).
FALL_HOURS = range(7, 20)
#: The learned model's slot: local hour, motion sensor, busy.
SlotKey = tuple[int, str, bool]
BUDGETS = (0.02, 0.03, 0.05, 0.08, 0.10, 0.15, 0.20)


@dataclass(slots=True)
class Slot:
    """One home's slot: its share of the home's falls and its silences longer than the
    threshold, in the learned days and in the days after."""

    learned_falls: float = 0.0
    learned_long: int = 0
    later_falls: float = 0.0
    later_long: int = 0


def slots_of(households: int, days: int, learn: int, seed: int, within: float) -> list[Slot]:
    """Every home's slots (hour, motion sensor, pace), with their shares and counts."""
    every: list[Slot] = []
    boundary = datetime.combine(FIRST_DAY + timedelta(days=learn), datetime.min.time(), TOWN_TZ)
    for household in generate_households(households, seed=seed, protocol="mixed"):
        lived = untidy_days(household, FIRST_DAY, days)
        slots: dict[SlotKey, Slot] = defaultdict(Slot)
        falls = {True: 0, False: 0}
        recent: deque[datetime] = deque()
        signs = [e for e in lived.events if e.is_activity]
        moves: list[tuple[SlotKey, bool]] = []
        for sign, following in pairwise(signs):
            if sign.kind is not EventKind.MOTION:
                continue  # out of the door: the learned model waits for the door
            recent.append(sign.at)
            while sign.at - recent[0] > BUSY_WINDOW:
                recent.popleft()
            local = sign.at.astimezone(TOWN_TZ)
            if local.hour not in FALL_HOURS:
                continue
            key = (local.hour, sign.device, len(recent) >= BUSY_MOVES)
            learned = sign.at < boundary
            slot = slots[key]
            if (following.at - sign.at).total_seconds() / 60 > within:
                if learned:
                    slot.learned_long += 1
                else:
                    slot.later_long += 1
            falls[learned] += 1
            moves.append((key, learned))
        for key, learned in moves:
            if learned:
                slots[key].learned_falls += 1 / falls[True]
            else:
                slots[key].later_falls += 1 / falls[False]
        every.extend(slots.values())
    return every


def curve(
    slots: list[Slot], households: int, learned_days: int, later_days: int
) -> list[tuple[float, float, float, float]]:
    """Taking the slots best first: after each, (false alarms per household-day on the
    learned days, share of falls within the threshold there, the same two on the days
    after)."""
    order = sorted(slots, key=lambda s: -s.learned_falls / (s.learned_long + 1e-9))
    points = []
    fa_learned = fa_later = found_learned = found_later = 0.0
    for slot in order:
        fa_learned += slot.learned_long / (households * learned_days)
        fa_later += slot.later_long / (households * later_days)
        found_learned += slot.learned_falls / households
        found_later += slot.later_falls / households
        points.append((fa_learned, found_learned, fa_later, found_later))
    return points


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--households", type=int, default=100)
    parser.add_argument("--days", type=int, default=400, help="days lived, no fall")
    parser.add_argument("--learn", type=int, help="days the choice is made on (half)")
    parser.add_argument("--within", type=float, default=120.0, help="threshold, minutes")
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    learn = args.learn or args.days // 2
    slots = slots_of(args.households, args.days, learn, args.seed, args.within)
    points = curve(slots, args.households, learn, args.days - learn)
    within = f"{args.within / 60:g} h"
    print(f"{args.households} homes, chosen on {learn} days, scored on {args.days - learn}")
    print()
    print(
        f"| budget | chosen on: false alarms / household-day | falls within {within} "
        f"| days after: false alarms / household-day | falls within {within} |"
    )
    print("| --- | --- | --- | --- | --- |")
    for budget in BUDGETS:
        spent = [p for p in points if p[0] <= budget]
        fa, found, fa_later, found_later = spent[-1] if spent else (0.0, 0.0, 0.0, 0.0)
        print(f"| {budget:.2f} | {fa:.3f} | {found:.0%} | {fa_later:.3f} | {found_later:.0%} |")
    print()
    print("scored on the days after, the most falls within the threshold at most:")
    for budget in BUDGETS:
        best = max((p[3] for p in points if p[2] <= budget), default=0.0)
        print(f"  {budget:.2f} false alarms / household-day: {best:.0%}")


if __name__ == "__main__":
    main()
