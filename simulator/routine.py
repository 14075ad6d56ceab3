"""Daily routines of elderly rural residents, as time-ordered sensor events.

Pure: :func:`day_events` turns a household, a local date and a random generator into a
list of :class:`SimEvent`; no clock, no MQTT. Tests compute statistics over weeks of
routine without a broker, and the runner publishes the very same lists.

The day, in the town's time zone (Asia/Shanghai): perhaps a trip to the toilet between 1
and 4 am, waking at 5:30-7:00, breakfast in the kitchen/hall, out to the fields or a
neighbour for 1-4 h (door open, closed, silence, open, closed), lunch, an afternoon nap of
1-2 h, maybe a second outing, dinner, the evening in the hall and bed at 20:00-21:30.
Now and then the resident sleeps at a daughter's in town: the house is empty from the
afternoon until the next late morning. Events are produced in UTC.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from gateway.events import EventKind
from gateway.register.vocabulary import Protocol
from simulator.household import Household, SimDevice, seeded_random

__all__ = [
    "TOWN_TZ",
    "SimEvent",
    "battery_level",
    "day_events",
    "day_rng",
    "events_between",
    "is_away_night",
    "link_quality",
    "local_date_of",
    "local_midnight",
]

#: The town's time zone: routines are lived in it, events are stamped in UTC.
TOWN_TZ = ZoneInfo("Asia/Shanghai")

# Anchor for things that must run continuously across days (periodic reports, battery
# cycles), so that consecutive days computed independently agree with each other.
_EPOCH = datetime(2020, 1, 1, tzinfo=UTC)
_EPOCH_DATE = date(2020, 1, 1)

# Aqara PIRs report "occupancy: true" on movement and zigbee2mqtt clears it after its
# occupancy_timeout (90 s by default; 60 s is the sensor's own blind time).
_PIR_CLEAR_S = (60.0, 90.0)
# A front door stays open a few seconds while somebody steps through.
_DOOR_OPEN_S = (5.0, 20.0)
_MINUTES_PER_DAY = 24 * 60


@dataclass(frozen=True, slots=True)
class SimEvent:
    """One thing a simulated device reports.

    ``state``: door ``True`` = open, motion ``True`` = movement, availability ``True`` =
    online; ``None`` for SOS, fall, check-in and periodic reports. ``activity`` names the
    part of the routine (``wake``, ``nap``, ``outing``, …) for tests and debugging;
    ``scenario`` is set on events a scenario injected. ``raw`` replaces the encoded payload
    (malformed-payload scenario); ``retain`` marks availability.
    """

    at: datetime
    household: str
    device: str
    kind: EventKind
    state: bool | None = None
    battery: int | None = None
    link_quality: int | None = None
    activity: str = ""
    scenario: str | None = None
    raw: bytes | None = None
    retain: bool = False

    def __post_init__(self) -> None:
        if self.at.tzinfo is None or self.at.utcoffset() != timedelta(0):
            raise ValueError(f"at must be an aware UTC datetime, got {self.at!r}")

    @property
    def is_activity(self) -> bool:
        """Evidence of somebody about: motion detected, the door moved, a check-in press.

        A PIR clearing (motion ``False``) is only the end of an earlier detection.
        """
        if self.kind is EventKind.MOTION:
            return self.state is True
        return self.kind.is_activity


def day_rng(household: Household, local_date: date) -> random.Random:
    """The generator for ``household``'s routine on ``local_date``.

    Seeded from the household and the date only, so any day can be computed on its own and
    comes out the same whatever was computed before it.
    """
    return seeded_random(household.seed, local_date.isoformat())


def is_away_night(household: Household, local_date: date) -> bool:
    """Whether the resident sleeps at a daughter's in the night after ``local_date``.

    Never two nights in a row: a night is away only if the night before was not drawn away,
    which keeps the rule local (no chain back to the start of time).
    """

    def drawn(day: date) -> bool:
        rng = seeded_random(household.seed, day.isoformat(), "away")
        return rng.random() < household.habits.overnight_visit_prob

    return drawn(local_date) and not drawn(local_date - timedelta(days=1))


def battery_level(device: SimDevice, at: datetime) -> int | None:
    """The device's battery percentage at ``at``; None for mains-powered devices.

    Falls slowly from ``battery_full`` and is renewed once a year at the helper's annual
    check, so a long-running simulation never drifts into battery alarms by itself.
    """
    if not device.battery_powered:
        return None
    day = (local_date_of(at) - _EPOCH_DATE).days
    since_change = (day - device.battery_change_day) % 365
    level = round(device.battery_full - device.drain_per_day * since_change)
    return max(1, min(100, level))


def link_quality(device: SimDevice, rng: random.Random) -> int | None:
    """A zigbee link-quality reading with radio noise; None for native devices."""
    if device.protocol is not Protocol.ZIGBEE2MQTT:
        return None
    return max(0, min(255, round(rng.gauss(device.link_quality, 8))))


def local_date_of(at: datetime) -> date:
    """The town's calendar date at the instant ``at``."""
    return at.astimezone(TOWN_TZ).date()


def day_events(household: Household, local_date: date, rng: random.Random) -> list[SimEvent]:
    """Everything ``household``'s devices report during the local day ``local_date``.

    Time-ordered. Covers local midnight to midnight: the night's toilet trips belong to the
    day they happen on, bedtime closes the day. Includes periodic reports (heartbeats).
    """
    day = _Day(household, local_date, rng)
    day.live()
    day.periodic_reports()
    return sorted(day.events, key=lambda event: event.at)


def events_between(
    households: Sequence[Household], start: datetime, end: datetime
) -> Iterator[SimEvent]:
    """All households' routine events in ``[start, end)``, time-ordered, day by day."""
    day = local_date_of(start)
    while local_midnight(day) < end:
        batch: list[SimEvent] = []
        for household in households:
            batch.extend(day_events(household, day, day_rng(household, day)))
        batch.sort(key=lambda event: event.at)
        yield from (event for event in batch if start <= event.at < end)
        day += timedelta(days=1)


def local_midnight(day: date) -> datetime:
    """The UTC instant at which ``day`` begins in the town."""
    return datetime.combine(day, time(0), TOWN_TZ).astimezone(UTC)


class _Day:
    """Builds one day's events; times are minutes after local midnight while planning."""

    def __init__(self, household: Household, local_date: date, rng: random.Random) -> None:
        self.household = household
        self.habits = household.habits
        self.rng = rng
        # Radio noise draws from its own generator, so that the routine's timing does not
        # depend on how many devices happen to be zigbee (and report a link quality).
        self.noise = seeded_random(rng.getrandbits(64))
        self.midnight = local_midnight(local_date)
        self.date = local_date
        self.events: list[SimEvent] = []
        # When each device's last pulse ended (see pulse()).
        self._free: dict[str, float] = {}

    # -- primitives ----------------------------------------------------------------------

    def at(self, minute: float) -> datetime:
        return self.midnight + timedelta(minutes=minute)

    def emit(
        self,
        device: SimDevice,
        minute: float,
        kind: EventKind,
        *,
        activity: str,
        state: bool | None = None,
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

    def pulse(
        self,
        device: SimDevice,
        kind: EventKind,
        minute: float,
        seconds: tuple[float, float],
        activity: str,
    ) -> float:
        """``state`` true, then false ``seconds`` later; returns when it went false.

        Starts no earlier than the device's previous pulse ended: a PIR cannot report new
        occupancy before it has cleared, a door cannot open before it has closed.
        """
        start = max(minute, self._free.get(device.uid, -math.inf) + 1 / 60)
        end = start + self.rng.uniform(*seconds) / 60
        self.emit(device, start, kind, state=True, activity=activity)
        self.emit(device, end, kind, state=False, activity=activity)
        self._free[device.uid] = end
        return end

    def motion(self, device: SimDevice, minute: float, activity: str) -> float:
        """Occupancy on, then off 60-90 s later; returns when it cleared."""
        return self.pulse(device, EventKind.MOTION, minute, _PIR_CLEAR_S, activity)

    def burst(self, start: float, end: float, activity: str, gap: tuple[float, float]) -> float:
        """Repeated hall motion from ``start`` until ``end`` (cooking, eating, chores)."""
        hall = self.household.hall_motion
        minute = start
        last = start
        while minute < end:
            last = self.motion(hall, minute, activity)
            minute = last + self.rng.uniform(*gap)
        return last

    def door(self, minute: float, activity: str) -> float:
        """The front door opened and closed again; returns when it closed."""
        return self.pulse(self.household.door, EventKind.DOOR, minute, _DOOR_OPEN_S, activity)

    def leave(self, minute: float, activity: str) -> float:
        """Last look round the hall, then out of the front door."""
        self.motion(self.household.hall_motion, minute - self.rng.uniform(1, 3), activity)
        return self.door(minute, activity)

    def come_back(self, minute: float, activity: str) -> float:
        """In through the front door, then about the hall."""
        closed = self.door(minute, activity)
        return self.motion(self.household.hall_motion, closed + self.rng.uniform(0.5, 2), activity)

    def outing(self, leave: float, length: float, activity: str) -> float:
        """Away from home for ``length`` minutes: the house is silent meanwhile."""
        closed = self.leave(leave, activity)
        return self.come_back(closed + length, activity)

    def potter(self, start: float, end: float) -> float:
        """At home: about the hall every 15-50 min, sometimes out to the yard and back."""
        minute = start
        last = start
        while minute < end:
            last = self.motion(self.household.hall_motion, minute, "at_home")
            # Two passes an hour on average, so the chance per hour is yard_trip_prob.
            if self.rng.random() < self.habits.yard_trip_prob / 2:
                last = self.outing(last + self.rng.uniform(1, 5), self.rng.uniform(3, 20), "yard")
            minute = last + self.rng.uniform(15, 50)
        return last

    # -- the day -----------------------------------------------------------------------------

    def live(self) -> None:
        rng = self.rng
        habits = self.habits
        away_last_night = is_away_night(self.household, self.date - timedelta(days=1))
        away_tonight = is_away_night(self.household, self.date)

        if away_last_night:
            # Back from the daughter's in town in the late morning.
            minute = self.come_back(rng.uniform(9 * 60, 11 * 60 + 30), "back_from_daughter")
        else:
            self.night_trips()
            minute = self.morning(_clamp(rng.gauss(habits.wake_minute, 12), 5 * 60 + 30, 7 * 60))

        lunch = max(minute + rng.uniform(5, 20), rng.uniform(11 * 60 + 15, 12 * 60 + 15))
        minute = self.potter(minute + rng.uniform(15, 40), lunch - 10)
        minute = self.burst(lunch, lunch + rng.uniform(30, 50), "lunch", gap=(2, 8))

        if rng.random() < habits.nap_prob:
            start = self.motion(self.household.bedroom_motion, minute + rng.uniform(10, 40), "nap")
            end = start + rng.uniform(60, 120)
            self.motion(self.household.bedroom_motion, end, "nap_end")
            minute = self.motion(self.household.hall_motion, end + rng.uniform(1, 3), "nap_end")
        else:
            minute = self.potter(minute + rng.uniform(10, 30), minute + rng.uniform(40, 80))

        if away_tonight:
            # Off to the daughter's for the night: the house stays empty until tomorrow.
            leave = max(minute + rng.uniform(10, 30), rng.uniform(14 * 60, 16 * 60 + 30))
            minute = self.potter(minute + rng.uniform(10, 30), leave - 15)
            self.leave(max(leave, minute + 2), "visit_daughter")
            return

        if minute < 16 * 60 and rng.random() < habits.afternoon_outing_prob:
            leave = minute + rng.uniform(10, 40)
            length = max(30.0, min(rng.uniform(60, 200), 18 * 60 + 30 - leave))
            minute = self.outing(leave, length, "outing")

        dinner = max(minute + rng.uniform(5, 20), rng.uniform(17 * 60 + 15, 18 * 60 + 15))
        minute = self.potter(minute + rng.uniform(10, 30), dinner - 10)
        minute = self.burst(dinner, dinner + rng.uniform(30, 60), "dinner", gap=(2, 8))

        bed = max(_clamp(rng.gauss(habits.bed_minute, 15), 20 * 60, 21 * 60 + 30), minute + 20)
        self.burst(minute + rng.uniform(10, 25), bed - 10, "evening", gap=(15, 40))
        self.motion(self.household.hall_motion, bed - rng.uniform(3, 8), "bed")
        self.motion(self.household.bedroom_motion, bed, "bed")

    def night_trips(self) -> None:
        """Up for the toilet (off the hall) between 1 and 4 am on some nights."""
        if self.rng.random() >= self.habits.night_trip_prob:
            return
        trips = 2 if self.rng.random() < 0.15 else 1
        for start in sorted(self.rng.uniform(60, 240) for _ in range(trips)):
            cleared = self.motion(self.household.bedroom_motion, start, "night_trip")
            back = self.motion(
                self.household.hall_motion, cleared + self.rng.uniform(0.5, 2), "night_trip"
            )
            self.motion(self.household.bedroom_motion, back + self.rng.uniform(2, 6), "night_trip")

    def morning(self, wake: float) -> float:
        """Wake, breakfast, then out to the fields or a neighbour, or chores at home."""
        rng = self.rng
        self.motion(self.household.bedroom_motion, wake, "wake")
        up = self.motion(self.household.hall_motion, wake + rng.uniform(2, 5), "wake")
        sos = self.household.sos
        pressed = rng.random() < self.habits.check_in_prob
        when = up + rng.uniform(5, 30)
        if pressed and sos.protocol is Protocol.NATIVE:
            # The pendant's "I am fine" key: only the native pendant has one.
            self.emit(sos, when, EventKind.CHECK_IN, activity="check_in")
        minute = self.burst(up + rng.uniform(2, 5), wake + rng.uniform(35, 70), "breakfast", (2, 8))
        if rng.random() < self.habits.morning_outing_prob:
            activity = rng.choice(("fields", "fields", "neighbour", "market"))
            # At most 3 h 50 min, so an ordinary outing never trips the 4 h inactivity rule.
            return self.outing(minute + rng.uniform(10, 60), rng.uniform(60, 230), activity)
        return minute

    def periodic_reports(self) -> None:
        """Heartbeats (native) and periodic state reports (zigbee): about hourly."""
        day_start = (self.midnight - _EPOCH).total_seconds()
        for device in self.household.devices:
            period = device.report_period_s
            first = math.ceil((day_start - device.report_phase_s) / period)
            beat = first * period + device.report_phase_s
            while beat < day_start + _MINUTES_PER_DAY * 60:
                # A little jitter, never enough to move a report into another day's slot.
                jitter = self.noise.uniform(0, min(60.0, period / 10))
                minute = (beat - day_start + jitter) / 60
                self.emit(device, minute, EventKind.HEARTBEAT, activity="report")
                beat += period


def _clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))
