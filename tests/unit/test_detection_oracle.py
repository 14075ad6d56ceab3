"""The detection oracle's accounting (bench/detection_oracle.py): what docs/DETECTION.md
quotes about the target rests on it."""

from __future__ import annotations

import pytest

from bench.detection_oracle import Slot, curve, slots_of


def test_each_homes_falls_are_shared_out_over_its_slots() -> None:
    slots = slots_of(households=2, days=6, learn=3, seed=5, within=120.0)
    assert sum(s.learned_falls for s in slots) == pytest.approx(2.0)
    assert sum(s.later_falls for s in slots) == pytest.approx(2.0)


def test_slots_are_taken_most_falls_per_false_alarm_first_and_paid_on_the_days_after() -> None:
    quiet = Slot(learned_falls=0.2, learned_long=0, later_falls=0.3, later_long=4)
    busy = Slot(learned_falls=0.6, learned_long=2, later_falls=0.5, later_long=1)
    dear = Slot(learned_falls=0.2, learned_long=10, later_falls=0.2, later_long=10)
    points = curve([dear, busy, quiet], households=1, learned_days=10, later_days=20)
    # Never-long first (0.2 falls for nothing), then 0.6 for 2, then 0.2 for 10.
    assert [round(p[1], 2) for p in points] == [0.2, 0.8, 1.0]
    assert [round(p[0], 2) for p in points] == [0.0, 0.2, 1.2]
    # The days after pay for what the choice did not see: the quiet slot's 4 long silences.
    assert points[0][2:] == pytest.approx((4 / 20, 0.3))
    assert points[-1][2:] == pytest.approx((15 / 20, 1.0))
