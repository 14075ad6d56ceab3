"""Untidy routines: homes that are hard on an inactivity rule, with silent falls as ground truth.

:mod:`simulator.routine` lives tidy days: up at six, out for under four hours, in bed by
half past nine. On those homes any timer looks perfect. Real residents differ from each
other and from day to day, and this module draws them so (per household, from its seed):

* chronotypes: up between 04:30 and 09:00, in bed between 19:00 and 23:30, and a spread of
  up to an hour around their own habit;
* naps of up to three hours, and afternoons (or evenings) in front of the TV, still enough
  that the PIR hardly fires;
* market days (every fifth day, as village markets run) and field work, out for many hours;
* nights away that nobody marks (at a daughter's, a wake in the next village);
* illness spells of one to three days in bed, with long silences by day;
* sparse PIR reporting: a sensor that sees only part of the movements in its room.

:func:`untidy_days` returns the devices' reports (as :class:`~simulator.routine.SimEvent`,
encoded for MQTT by :class:`~simulator.payloads.Encoder` like any other run), optionally
with a silent fall: from the fall on, the resident makes no sign of life until found (the
devices keep reporting); the :class:`SilentFall` records when, for scoring detection delay.

Pure and deterministic: the same household and dates give the same events.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from gateway.events import EventKind
from simulator.household import Household, SimDevice, seeded_random
from simulator.routine import TOWN_TZ, SimEvent, battery_level, link_quality

__all__ = ["Persona", "SilentFall", "UntidyDays", "persona_of", "untidy_days"]

_EPOCH = datetime(2020, 1, 1, tzinfo=UTC)
_MARKET_EVERY = 5


@dataclass(frozen=True, slots=True)
class Persona:
    """How one resident lives; minutes after local midnight."""

    wake: float
    wake_spread: float
    bed: float
    bed_spread: float
    #: Share of movements the PIRs see (a badly placed or ageing sensor sees few).
    pir_detect: float
    nap_prob: float
    nap_max: float
    tv_prob: float
    market_day: int
    market_prob: float
    field_prob: float
    away_prob: float
    ill_prob: float
    night_trip_prob: float


@dataclass(frozen=True, slots=True)
class SilentFall:
    """Ground truth: the resident fell at ``at`` and lay without a sign of life until
    ``found_at``."""

    household: str
    at: datetime
    found_at: datetime


@dataclass(slots=True)
class UntidyDays:
    events: list[SimEvent] = field(default_factory=list)
    falls: list[SilentFall] = field(default_factory=list)
    #: (leave, return) of each unmarked night away.
    away: list[tuple[datetime, datetime]] = field(default_factory=list)
    ill_days: list[date] = field(default_factory=list)


def persona_of(household: Household) -> Persona:
    """The household's resident, drawn from its seed."""
    rng = seeded_random(household.seed, "untidy")
    farmer = rng.random() < 0.5
    return Persona(
        wake=rng.uniform(4.5 * 60, 9 * 60),
        wake_spread=rng.uniform(10, 60),
        bed=rng.uniform(19 * 60, 23.5 * 60),
        bed_spread=rng.uniform(10, 60),
        pir_detect=rng.uniform(0.6, 1.0),
        nap_prob=rng.uniform(0.2, 0.9),
        nap_max=rng.uniform(60, 150),
        tv_prob=rng.uniform(0.1, 0.7),
        market_day=rng.randrange(_MARKET_EVERY),
        market_prob=rng.uniform(0.3, 0.9),
        field_prob=rng.uniform(0.3, 0.8) if farmer else rng.uniform(0.0, 0.15),
        away_prob=rng.uniform(0.0, 0.06),
        ill_prob=rng.uniform(0.003, 0.015),
        night_trip_prob=rng.uniform(0.2, 0.9),
    )


def untidy_days(
    household: Household,
    first: date,
    days: int,
    *,
    fall_on: date | None = None,
    found_after: timedelta = timedelta(hours=24),
) -> UntidyDays:
    """``days`` local days of the household's reports from ``first``, time-ordered; with a
    silent fall on ``fall_on`` (at a moment the resident is at home and awake)."""
    persona = persona_of(household)
    result = UntidyDays()
    ill_left = 0
    away_tonight = False
    left: datetime | None = None
    for offset in range(days):
        day = first + timedelta(days=offset)
        rng = seeded_random(household.seed, "untidy", day.isoformat())
        away_last_night = away_tonight
        if ill_left == 0 and rng.random() < persona.ill_prob:
            ill_left = rng.randint(1, 3)
        ill = ill_left > 0
        ill_left = max(0, ill_left - 1)
        if ill:
            result.ill_days.append(day)
        away_tonight = not ill and day != fall_on and rng.random() < persona.away_prob
        builder = _Day(household, persona, day, rng)
        builder.live(ill=ill, away_last_night=away_last_night, away_tonight=away_tonight)
        if left is not None and builder.back_at is not None:
            result.away.append((left, builder.back_at))
        left = builder.left_for_night
        result.events.extend(builder.events)
        builder.periodic_reports()
        result.events.extend(builder.reports)
    result.events.sort(key=lambda event: event.at)
    if fall_on is not None:
        fall = _pick_fall(household, result.events, fall_on, found_after)
        if fall is not None:
            result.falls.append(fall)
            # The devices go on reporting, and a PIR that saw the last movement still clears
            # (zigbee2mqtt's occupancy timeout); only signs of life stop.
            result.events = [
                e for e in result.events if not (fall.at <= e.at < fall.found_at and e.is_activity)
            ]
    return result


def _pick_fall(
    household: Household, events: list[SimEvent], day: date, found_after: timedelta
) -> SilentFall | None:
    """Just after a movement inside, in the waking day: the last sign of life is indoors.
    After the PIR has cleared: a zigbee2mqtt sensor whose "occupancy: false" never came
    would repeat "occupancy: true" in every periodic report."""
    rng = seeded_random(household.seed, "fall", day.isoformat())
    start = datetime.combine(day, time(7, 0), TOWN_TZ).astimezone(UTC)
    end = datetime.combine(day, time(20, 0), TOWN_TZ).astimezone(UTC)
    inside = [
        e for e in events if start <= e.at < end and e.kind is EventKind.MOTION and e.state is True
    ]
    if not inside:
        return None
    moment = rng.choice(inside).at + timedelta(seconds=20)
    return SilentFall(household.key, moment, moment + found_after)


class _Day:
    def __init__(self, household: Household, persona: Persona, day: date, rng: random.Random):
        self.household = household
        self.persona = persona
        self.rng = rng
        self.noise = seeded_random(rng.getrandbits(64))
        self.midnight = datetime.combine(day, time(0), TOWN_TZ).astimezone(UTC)
        self.date = day
        self.events: list[SimEvent] = []
        self.reports: list[SimEvent] = []
        self.left_for_night: datetime | None = None
        self.back_at: datetime | None = None
        self._free: dict[str, float] = {}

    def at(self, minute: float) -> datetime:
        return self.midnight + timedelta(minutes=minute)

    def emit(
        self, device: SimDevice, minute: float, kind: EventKind, state: bool | None, activity: str
    ) -> None:
        when = self.at(minute)
        self.events.append(
            SimEvent(
                at=when,
                household=self.household.key,
                device=device.uid,
                kind=kind,
                state=state,
                battery=battery_level(device, when),
                link_quality=link_quality(device, self.noise),
                activity=activity,
            )
        )

    def pulse(self, device: SimDevice, kind: EventKind, minute: float, activity: str) -> float:
        start = max(minute, self._free.get(device.uid, -math.inf) + 1 / 60)
        end = start + self.rng.uniform(60, 90) / 60
        self.emit(device, start, kind, True, activity)
        self.emit(device, end, kind, False, activity)
        self._free[device.uid] = end
        return end

    def move(self, minute: float, activity: str, *, bedroom: bool = False) -> float:
        """Somebody moves in a room; the PIR sees it only now and then."""
        device = self.household.bedroom_motion if bedroom else self.household.hall_motion
        if self.rng.random() < self.persona.pir_detect:
            return self.pulse(device, EventKind.MOTION, minute, activity)
        return minute + 1

    def door(self, minute: float, activity: str) -> float:
        return self.pulse(self.household.door, EventKind.DOOR, minute, activity)

    def outing(self, leave: float, length: float, activity: str) -> float:
        self.move(leave - self.rng.uniform(1, 3), activity)
        closed = self.door(leave, activity)
        back = self.door(closed + length, activity)
        return self.move(back + self.rng.uniform(0.5, 2), activity)

    def potter(self, start: float, end: float, gap: tuple[float, float]) -> float:
        minute = start
        while minute < end:
            self.move(minute, "at_home")
            minute += self.rng.uniform(*gap)
        return max(start, end)

    def still(self, start: float, length: float, activity: str) -> float:
        """TV or sitting: a movement now and then (every half hour at most)."""
        minute = start
        end = start + length
        while minute < end:
            if self.rng.random() < 0.4:
                self.move(minute, activity)
            minute += 30
        return end

    def live(self, *, ill: bool, away_last_night: bool, away_tonight: bool) -> None:
        rng, persona = self.rng, self.persona
        if away_last_night:
            minute = self.outing_return(rng.uniform(9 * 60, 12 * 60))
        else:
            self.night_trips()
            wake = rng.gauss(persona.wake, persona.wake_spread)
            if ill:
                wake += rng.uniform(60, 180)
            wake = min(max(wake, 4 * 60), 11 * 60)
            self.move(wake, "wake", bedroom=True)
            minute = self.potter(wake + 3, wake + rng.uniform(20, 60), (2, 10))
        bed = rng.gauss(persona.bed, persona.bed_spread)
        if ill:
            bed -= rng.uniform(0, 120)
            # In bed most of the day: up now and then for water or the toilet.
            while minute < bed:
                minute += rng.uniform(60, 300)
                self.move(minute, "ill", bedroom=rng.random() < 0.6)
            return
        market = (self.date.toordinal() % _MARKET_EVERY) == persona.market_day
        if market and rng.random() < persona.market_prob:
            minute = self.outing(minute + rng.uniform(5, 60), rng.uniform(180, 400), "market")
        elif rng.random() < persona.field_prob:
            minute = self.outing(minute + rng.uniform(5, 60), rng.uniform(120, 300), "fields")
        elif rng.random() < 0.3:
            minute = self.outing(minute + rng.uniform(10, 90), rng.uniform(30, 120), "neighbour")
        lunch = max(minute + 10, rng.uniform(11 * 60, 13 * 60))
        minute = self.potter(minute + rng.uniform(5, 20), lunch, (10, 60))
        minute = self.potter(lunch, lunch + rng.uniform(20, 50), (3, 12))
        if rng.random() < persona.nap_prob:
            start = minute + rng.uniform(5, 30)
            self.move(start, "nap", bedroom=True)
            minute = start + rng.uniform(30, persona.nap_max)
            self.move(minute, "nap_end", bedroom=True)
        if away_tonight:
            leave = max(minute + 10, rng.uniform(14 * 60, 18 * 60))
            minute = self.potter(minute + 10, leave - 5, (10, 60))
            self.move(leave - 2, "away")
            self.door(leave, "away")
            self.left_for_night = self.at(leave)
            return
        if rng.random() < persona.field_prob * 0.6:
            minute = self.outing(minute + rng.uniform(10, 40), rng.uniform(90, 240), "fields")
        elif rng.random() < persona.tv_prob:
            minute = self.still(minute + rng.uniform(5, 20), rng.uniform(90, 210), "tv")
        dinner = max(minute + 10, rng.uniform(17 * 60, 19 * 60))
        minute = self.potter(minute + rng.uniform(5, 20), dinner, (10, 60))
        minute = self.potter(dinner, dinner + rng.uniform(20, 50), (3, 12))
        bed = max(bed, minute + 20)
        if rng.random() < persona.tv_prob:
            minute = self.still(minute + 5, max(0.0, bed - minute - 30), "tv_evening")
        self.potter(minute + 5, bed - 5, (15, 45))
        self.move(bed, "bed", bedroom=True)

    def outing_return(self, minute: float) -> float:
        self.back_at = self.at(minute)
        back = self.door(minute, "back")
        return self.move(back + self.rng.uniform(0.5, 2), "back")

    def night_trips(self) -> None:
        if self.rng.random() >= self.persona.night_trip_prob:
            return
        for start in sorted(self.rng.uniform(60, 240) for _ in range(self.rng.randint(1, 2))):
            self.move(start, "night_trip", bedroom=True)
            self.move(start + self.rng.uniform(1, 4), "night_trip")

    def periodic_reports(self) -> None:
        day_start = (self.midnight - _EPOCH).total_seconds()
        for device in self.household.devices:
            period = device.report_period_s
            beat = math.ceil((day_start - device.report_phase_s) / period) * period
            beat += device.report_phase_s
            while beat < day_start + 86400:
                minute = (beat - day_start + self.noise.uniform(0, min(60.0, period / 10))) / 60
                when = self.at(minute)
                self.reports.append(
                    SimEvent(
                        at=when,
                        household=self.household.key,
                        device=device.uid,
                        kind=EventKind.HEARTBEAT,
                        battery=battery_level(device, when),
                        link_quality=link_quality(device, self.noise),
                        activity="report",
                    )
                )
                beat += period
