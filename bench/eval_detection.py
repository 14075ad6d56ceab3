"""Detection quality on untidy homes: false alarms per household-day and silent-fall delay.

Simulates households with untidy routines (``simulator.untidy``: chronotypes, naps, TV,
market days, field work, unmarked nights away, illness spells, sparse PIRs), one silent fall
per household at a random moment indoors in the scored period, and replays the messages
through the replay's in-process functions (``gateway.replay``: the gateway's adapters,
activity judge and rules; what ``homewatch replay`` runs) under several rule sets:

* the fixed defaults (4 h by day 06:00-21:00, 12 h at night);
* a sweep of fixed day timers;
* learned routines (``rules.inactivity.learned``), which learn during the warm-up days
  and go on learning during the scored ones.

Scoring, over the scored days only: an inactivity alert raised while a fallen resident lies
undiscovered is a detection (the first one gives the delay); any other inactivity alert is a
false alarm. Missed: no alert within ``found_after`` (24 h) of the fall.

    python -m bench.eval_detection --households 100 --days 28 --warmup 14
    python -m bench.eval_detection --households 100 --days 28 --warmup 14 --seed 9001

The second line is the held-out set of docs/DETECTION.md: other households, days and falls,
run once after the learned defaults were chosen on the first.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import yaml

from alerts.types import AlertType
from bench.common import median, percentile
from gateway.config import RulesConfig
from gateway.events import SensorEvent
from gateway.replay import (
    ReplayDevice,
    ReplayMessage,
    ReplayRegister,
    parse_messages,
    register_from_provisioning,
    replay_events,
)
from simulator.household import Household, Topics, generate_households
from simulator.payloads import Encoder
from simulator.provisioning import provisioning_document
from simulator.routine import TOWN_TZ
from simulator.untidy import SilentFall, untidy_days

FIRST_DAY = date(2026, 9, 1)


@dataclass(frozen=True, slots=True)
class Score:
    name: str
    false_alarms: int
    false_away: int
    household_days: int
    delays: list[float]
    missed: int

    @property
    def per_day(self) -> float:
        return self.false_alarms / self.household_days

    def row(self) -> str:
        found = self.delays
        med = f"{median(found) / 60:.2f} h" if found else "-"
        p90 = f"{percentile(found, 0.9) / 60:.2f} h" if found else "-"
        # The target's median <= 2 h is half of the falls within 2 h (bench.detection_oracle).
        within = sum(1 for delay in found if delay <= 120) / max(1, len(found) + self.missed)
        return (
            f"| {self.name} | {self.per_day:.3f} | {self.false_alarms} "
            f"({self.false_away} away) | {med} | {p90} | {within:.0%} | {self.missed} |"
        )


def rule_sets(variants: Sequence[str] = ()) -> list[tuple[str, RulesConfig]]:
    def rules(data: dict[str, Any]) -> RulesConfig:
        return RulesConfig.model_validate(data)

    sets = [("fixed defaults (day 4h, night 12h)", rules({}))]
    for day_quiet in ("3h", "5h", "6h", "8h"):
        sets.append(
            (
                f"fixed day {day_quiet}, night 12h",
                rules({"inactivity": {"day": {"quiet": day_quiet}}}),
            )
        )
    sets.append(
        (
            "fixed day 6h, night 14h",
            rules({"inactivity": {"day": {"quiet": "6h"}, "night": {"quiet": "14h"}}}),
        )
    )
    sets.append(("learned (defaults)", rules({"inactivity": {"learned": {"enabled": True}}})))
    for variant in variants:
        learned: dict[str, Any] = {"enabled": True}
        for pair in variant.split(","):
            key, _, value = pair.partition("=")
            learned[key] = float(value) if key in ("quantile", "factor") else value
        sets.append((f"learned ({variant})", rules({"inactivity": {"learned": learned}})))
    return sets


def fall_day(index: int, seed: int, days: int, scored_from: int) -> date:
    """The day household ``index`` falls: in the scored period, at least a day before its
    end, so that the fall can be found."""
    return FIRST_DAY + timedelta(days=scored_from + (seed + index * 7) % (days - scored_from - 1))


def simulate(
    households: Sequence[Household],
    register: ReplayRegister,
    days: int,
    scored_from: int,
    seed: int,
) -> tuple[list[tuple[SensorEvent, ReplayDevice]], list[SilentFall], dict[str, list[Any]]]:
    """Every household's messages through the adapters, merged in time order."""
    counter = itertools.count()
    encoder = Encoder(Topics(), new_id=lambda: f"m{next(counter)}")
    events: list[tuple[SensorEvent, ReplayDevice]] = []
    falls: list[SilentFall] = []
    away: dict[str, list[Any]] = {}
    messages = 0
    for index, household in enumerate(households):
        lived = untidy_days(
            household, FIRST_DAY, days, fall_on=fall_day(index, seed, days, scored_from)
        )
        falls.extend(lived.falls)
        away[household.key] = lived.away
        by_uid = {d.uid: d for d in household.devices}
        batch = []
        for sim in lived.events:
            out = encoder.encode(by_uid[sim.device], sim)
            batch.append(ReplayMessage(out.topic, out.payload, sim.at, out.retain))
        messages += len(batch)
        events.extend(parse_messages(register, batch))
    events.sort(key=lambda pair: pair[0].received_at)
    print(f"simulated {messages} messages -> {len(events)} events")
    return events, falls, away


def score(
    name: str,
    alerts: Sequence[Any],
    register: ReplayRegister,
    falls: list[SilentFall],
    away: dict[str, list[Any]],
    scored_start: datetime,
    household_days: int,
) -> Score:
    household_of = {d.person_id: d.spec.uid.rsplit("-", 1)[0] for d in register.devices}
    falls_by = {fall.household: fall for fall in falls}
    delays: list[float] = []
    detected: set[str] = set()
    false_alarms = false_away = 0
    for alert in alerts:
        if alert.type is not AlertType.INACTIVITY or alert.raised_at < scored_start:
            continue
        key = household_of[alert.person_id]
        fall = falls_by.get(key)
        if fall is not None and fall.at <= alert.raised_at < fall.found_at:
            if key not in detected:
                detected.add(key)
                delays.append((alert.raised_at - fall.at).total_seconds() / 60)
            continue
        false_alarms += 1
        if any(leave <= alert.raised_at < back for leave, back in away.get(key, [])):
            false_away += 1
    missed = sum(1 for fall in falls if fall.household not in detected)
    return Score(name, false_alarms, false_away, household_days, delays, missed)


async def main_async(args: argparse.Namespace) -> None:
    started = time.process_time()
    households = generate_households(args.households, seed=args.seed, protocol="mixed")
    document = provisioning_document(households)
    register = await register_from_provisioning(
        yaml.safe_dump(document, allow_unicode=True), source="simulated"
    )
    total_days = args.warmup + args.days
    events, falls, away = simulate(households, register, total_days, args.warmup, args.seed)
    print(f"simulation and adapters: {time.process_time() - started:.0f} s CPU")
    start = datetime.combine(FIRST_DAY, datetime.min.time(), TOWN_TZ).astimezone(UTC)
    scored_start = start + timedelta(days=args.warmup)
    end = start + timedelta(days=total_days)
    # Days on which a resident lay fallen are not ordinary days to count false alarms on.
    household_days = args.households * args.days - len(falls)
    print(
        f"households={args.households} warm-up={args.warmup} d scored={args.days} d "
        f"falls={len(falls)} household-days={household_days}"
    )
    print()
    header = ("rules", "false alarms / household-day", "false alarms")
    columns = (*header, "median delay", "p90 delay", "within 2 h", "missed")
    print("| " + " | ".join(columns) + " |")
    print("|" + " --- |" * len(columns))
    for name, rules in rule_sets(args.learned):
        if args.only and args.only not in name:
            continue
        before = time.process_time()
        alerts = replay_events(register, events, rules, TOWN_TZ, start=start, end=end)
        result = score(name, alerts, register, falls, away, scored_start, household_days)
        print(result.row(), f"<!-- {time.process_time() - before:.0f} s CPU -->", flush=True)
    print()
    print(f"total {time.process_time() - started:.0f} s CPU")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--households", type=int, default=100)
    parser.add_argument("--days", type=int, default=28, help="scored days")
    parser.add_argument("--warmup", type=int, default=14, help="days learned from, not scored")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--only", help="run only the rule sets whose name contains this")
    parser.add_argument(
        "--learned",
        action="append",
        default=[],
        metavar="K=V,...",
        help="also run learned routines with these settings (e.g. quantile=0.95,margin=45m)",
    )
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
