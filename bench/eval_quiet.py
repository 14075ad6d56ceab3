"""How often does the inactivity rule cry wolf, and how late does it catch a silent fall?

Runs simulated households' routines (``simulator.routine``) for N days through the same
code the gateway uses to decide: the ingest's door-change logic, the sensor-health judge
(``gateway.rules.sensors``) and the inactivity deadline (``gateway.rules.quiet``) with the
default windows. The database and tick loop around them are covered by the tests; this
measures the decisions.

* False alerts: every gap between two signs of life that outlasts the deadline computed
  from the first is one alert on a normal day. Nights the resident sleeps at a daughter's
  are counted separately: they alert unless a helper marks the person away.
* Silent fall (no SOS, no fall detector): on every home day a moment between 06:00 and
  21:00 local is drawn; everything after it is silence; the delay is the deadline from
  the last sign of life before it minus the fall.

    python -m bench.eval_quiet --households 40 --days 7
"""

from __future__ import annotations

import argparse
import itertools
import random
from datetime import UTC, date, datetime, time, timedelta

from bench.common import median, percentile
from gateway.config import RulesConfig
from gateway.events import EventKind, SensorEvent
from gateway.rules.quiet import inactivity_deadline
from gateway.rules.sensors import SensorHealth
from simulator.household import Household, generate_households
from simulator.routine import TOWN_TZ, SimEvent, day_events, day_rng, is_away_night


def signs_of_life(household: Household, days: list[date], rules: RulesConfig) -> list[datetime]:
    """The moments the gateway would record as activity, judged like the gateway does."""
    health = SensorHealth(lambda _person: rules)
    door_state: dict[str, bool] = {}
    alive: list[datetime] = []
    events: list[SimEvent] = []
    for day in days:
        events.extend(day_events(household, day, day_rng(household, day)))
    for sim in sorted(events, key=lambda e: e.at):
        if sim.kind not in (EventKind.MOTION, EventKind.DOOR, EventKind.CHECK_IN) or sim.retain:
            continue
        changed = False
        if sim.kind is EventKind.DOOR and sim.state is not None:
            changed = door_state.get(sim.device) != sim.state
            door_state[sim.device] = sim.state
        event = SensorEvent(
            kind=sim.kind,
            device_uid=sim.device,
            occurred_at=sim.at,
            received_at=sim.at,
            state=sim.state,
        )
        if health.counts_as_activity(event, 0, door_changed=changed):
            alive.append(sim.at)
    return alive


def _local_day(moment: datetime) -> date:
    return moment.astimezone(TOWN_TZ).date()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--households", type=int, default=40)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()

    rules = RulesConfig()
    tz = TOWN_TZ
    first = date(2026, 3, 2)
    days = [first + timedelta(days=n) for n in range(args.days)]
    households = generate_households(args.households, seed=args.seed, protocol="mixed")
    rng = random.Random(args.seed)

    home_days = away_nights = 0
    false_home: list[tuple[str, datetime]] = []
    false_away = 0
    delays: list[float] = []
    missed = 0
    for household in households:
        alive = signs_of_life(household, days, rules)
        away = {day for day in days if is_away_night(household, day)}
        away_nights += len(away)
        home_days += len(days) - len(away)
        for before, after in itertools.pairwise(alive):
            if inactivity_deadline(before, rules.inactivity, tz) < after:
                # An alert during the night after an away evening (or the morning after)
                # is the away case.
                day = _local_day(before)
                if day in away or (day - timedelta(days=1)) in away:
                    false_away += 1
                else:
                    false_home.append((household.key, before))
        for day in days:
            if day in away or (day - timedelta(days=1)) in away:
                continue
            start = datetime.combine(day, time(6, 0), tzinfo=tz).astimezone(UTC)
            fall = start + timedelta(minutes=rng.uniform(0, 15 * 60))
            seen = [t for t in alive if t <= fall]
            if not seen:
                missed += 1
                continue
            due = inactivity_deadline(seen[-1], rules.inactivity, tz)
            delays.append(max(0.0, (due - fall).total_seconds() / 60))

    household_days = args.households * args.days
    print(f"households={args.households} days={args.days} household-days={household_days}")
    print(f"home days={home_days} away nights={away_nights}")
    print(
        f"false inactivity alerts on home days: {len(false_home)} "
        f"= {len(false_home) / max(home_days, 1):.4f} per household-day"
    )
    for key, at in false_home[:10]:
        print(f"  {key}: silence from {at.astimezone(tz):%m-%d %H:%M}")
    print(f"alerts caused by unmarked away nights: {false_away} of {away_nights} away nights")
    print(
        f"silent fall detection delay over {len(delays)} falls: "
        f"median {median(delays):.0f} min, p90 {percentile(delays, 0.9):.0f} min, "
        f"max {max(delays):.0f} min (no earlier activity: {missed})"
    )


if __name__ == "__main__":
    main()
