"""Learned routines: each home's own normal quiet periods by time of day.

Fixed timers force one trade for everybody: four hours by day is too short for the resident
who works a field all morning and far too long for the one who never leaves the house. A
:class:`RoutineModel` learns, per home, how long the house normally stays silent *at each
hour of the local day*, and says when the current silence has become unusual.

What is learned. Every sign of life ends a silence that began at the previous one. For each
local day and hour-of-day slot the model keeps the longest silence that *began* in that hour
("silences starting at 10:xx lasted at most 50 minutes that day"), separately for silences
that began when somebody went *out* of the front door and silences *inside*. The threshold
for a silence indoors is a high quantile of those per-day values for its starting hour over
the last ``history`` days, widened by ``factor`` and ``margin``, smoothed with the
neighbouring hours, and bounded by ``min_quiet`` and ``max_quiet``; where the home's history
has too few silences of that kind and hour, the fixed windows decide.

The sensor and the pace. Where the gateway knows which motion sensor saw the last movement,
silences indoors are also learned per that sensor and per the pace before it (busy: at
least three movements within the hour; calm otherwise), and judged by those first: a
silence after pottering in the kitchen is not judged by the two hours the resident sits in
front of the TV at the same hour, nor by the nap that starts with the bedroom's sensor.
Where that context has too few days at that hour, the silences indoors of the hour decide.

The door. A passage through the front door (open and shut within :data:`_PASSAGE`) after
movement indoors is somebody going out; the next passage with no movement between is
somebody coming back in. While the house is taken to be empty (out, no movement since) a
silence is no alarm until ``out_max``: the fields, the market and unmarked nights away were
most of the fixed timers' false alarms, and the sensors cannot see a resident who is out.
Coming back in (the second passage) is judged as a silence indoors, so that a resident who
falls in the doorway before any PIR sees them is not waited out.

The night. The night's sleep (a silence of three hours or more starting 18:00-03:59 and
ending before noon) is learned as a bedtime and a wake-up, not as a silence of its starting
hour. From the evening on, a silence whose indoor threshold would run out before even the
earliest usual bedtime alerts then (a fall after supper is found that evening); otherwise an
early night is no alarm, and the question becomes whether the resident is up by the time
they usually are plus ``margin`` ("通常 07:40 前有活动，现在 09:10 仍无活动").

Why it cannot be taught to wait for ever:

* A high quantile, not the maximum: a few illness days, a visitor or an odd nap in a month
  are the top values it ignores; a pattern has to recur to move it.
* ``max_quiet`` caps every threshold indoors and ``out_max`` the wait for the door,
  whatever the history says; outings are not learned into the indoor thresholds at all, so
  a month of long market days cannot teach the model to wait on the kitchen floor.
* Sleep is kept apart from the day: early nights and long lie-ins move the learned bedtime
  and wake-up (a quantile of them), never the evening's or the morning's thresholds.
* History is a sliding window: an illness week ages out after ``history`` days.
* Marked away periods are not learned from (:meth:`RoutineModel.exclude`), nor are days on
  which an SOS or fall was raised (:meth:`RoutineModel.exclude_day`).
* A silence that raised an inactivity alert is learned only up to the alert
  (:meth:`RoutineModel.censor`): a fall that lay undiscovered for a day, or a night away
  that nobody marked, adds one threshold-length value, never its full length.
* Until ``min_days`` of history exist the caller uses the fixed windows.

Weekdays are not modelled: village life runs on market days (every few days, by the lunar
calendar) and on the farming season rather than on the week, and four weeks of history give
only four values per weekday slot, too few for a high quantile.

Pure: fed signs of life in time order; no storage, no clock of its own.
"""

from __future__ import annotations

import sys
from array import array
from collections import deque
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from gateway.config import LearnedRoutine

__all__ = ["BUSY_MOVES", "BUSY_WINDOW", "LearnedDeadline", "RoutineModel"]

_SLOTS = 24
#: A day's longest silence per starting hour is kept as a float32 array (a county's month
#: of them is millions of values), with this for "no silence began in that hour".
_NONE = -1.0
_NO_SILENCES = [_NONE] * _SLOTS
#: Contexts of a silence: how the last sign of life before it came.
_INSIDE, _OUT, _ANY = "inside", "out", "any"
#: A silence of at least this long beginning in these local hours is the night's sleep; its
#: end is the morning's first sign of life.
_NIGHT_START = frozenset({18, 19, 20, 21, 22, 23, 0, 1, 2, 3})
_SLEEP_MINUTES = 180.0
#: ...and it ends in the morning (an evening silence ending at ten at night is not a wake-up).
_MORNING = frozenset(range(4, 13))
#: Outings start whenever the day allows; their lengths are pooled over this many hours
#: either side of the starting hour (a market trip at 07:50 and one at 08:10 are alike).
_OUT_POOL = 2
#: A slot needs this many days with a value before its own context is trusted; otherwise
#: the threshold of all silences at that hour is used.
_MIN_VALUES = 3
#: Days are kept this long beyond ``history``: a deadline may be asked of a silence that
#: began a few days ago (a marked absence, an alert left open).
_SLACK = timedelta(days=7)
#: Door changes this close together are one passage through the door (opened, then shut).
_PASSAGE = timedelta(minutes=5)
#: Busy: at least this many signs of life indoors within :data:`BUSY_WINDOW` up to the
#: last one (pottering about the kitchen), as against sitting still (TV, a nap).
BUSY_MOVES = 3
BUSY_WINDOW = timedelta(minutes=60)


@dataclass(slots=True)
class _Day:
    #: Longest silence that began in each local hour, in minutes, per context; ``_NONE``
    #: where the hour saw no silence of that context. The night's sleep is not among them.
    slots: dict[str, array[float]] = field(default_factory=dict)
    #: When the night's sleep ended (minutes after local midnight), if it did that day.
    wake: float | None = None
    #: When the night's sleep began (minutes after this day's local midnight; after
    #: midnight counts on, 25:00), if it did that evening.
    bed: float | None = None
    excluded: bool = False


@dataclass(frozen=True, slots=True)
class LearnedDeadline:
    """When a silence becomes unusual, and when activity usually comes by (for the alert's
    explanation: "通常 07:40 前有活动")."""

    at: datetime
    usual_by: datetime


@dataclass(frozen=True, slots=True)
class _Table:
    days: int
    #: Per context, per slot: alert threshold and raw quantile, in minutes (None: unknown).
    threshold: dict[str, tuple[float | None, ...]]
    usual: dict[str, tuple[float | None, ...]]
    #: The latest usual end of the night (minutes after local midnight), if known.
    wake: float | None
    #: The earliest usual start of the night (minutes after local midnight, 25:00 after
    #: midnight), if known.
    bed: float | None


class RoutineModel:
    """One home's learned quiet periods. Feed :meth:`observe` in time order."""

    def __init__(self, tz: ZoneInfo, rule: LearnedRoutine) -> None:
        self.tz = tz
        self.rule = rule
        self.last_at: datetime | None = None
        #: The home is taken to be empty: the last sign of life was the front door and no
        #: movement indoors has followed, and that door was somebody going *out* (the
        #: passage before it was not an outing's start).
        self.last_out = False
        self._last_door: datetime | None = None
        self._days: dict[date, _Day] = {}
        self._censor_at: datetime | None = None
        self._away: list[tuple[datetime, datetime]] = []
        self._tables: dict[date, _Table] = {}
        #: The sensor-and-pace context of the silence that began at ``last_at`` (None:
        #: not known, or out of the door).
        self._context: str | None = None
        self._recent: deque[datetime] = deque()

    # -- learning -----------------------------------------------------------------------

    def observe(self, at: datetime, *, left_home: bool, where: str | None = None) -> None:
        """A sign of life at ``at``; ``left_home``: it was the front door.

        A door is a passage one way or the other: the first passage after movement indoors
        is somebody going out, the next one (with no movement between) somebody coming
        back in. Door changes within :data:`_PASSAGE` of each other are one passage (open,
        then shut behind). ``where``: the device that saw it, when known; silences are
        learned per sensor and pace as well (see :meth:`deadline`).
        """
        last = self.last_at
        if last is not None and at < last:
            return  # a late report from a device with a slow clock: nothing new
        if last is not None and at > last:
            end = at if self._censor_at is None else min(at, self._censor_at)
            if not self._in_away(last, at):
                self._record(last, end, out=self.last_out, context=self._context)
        if left_home:
            same_passage = self._last_door is not None and at - self._last_door <= _PASSAGE
            if not same_passage:
                # Out through the door, or (after an outing with no movement since) back in.
                came_back = self.last_out and self._last_door is not None
                self.last_out = not came_back
            self._last_door = at
        else:
            self.last_out = False
            self._last_door = None
        self.last_at = at
        self._censor_at = None
        self._context = None
        if not left_home:
            recent = self._recent
            recent.append(at)
            while recent and at - recent[0] > BUSY_WINDOW:
                recent.popleft()
            if where is not None and self.rule.by_sensor:
                pace = "busy" if len(recent) >= BUSY_MOVES else "calm"
                # One string per sensor and pace, shared by every day's slots.
                self._context = sys.intern(f"{where}/{pace}")

    def censor(self, at: datetime) -> None:
        """An inactivity alert was raised at ``at``: learn the current silence only up to it."""
        if self._censor_at is None or at < self._censor_at:
            self._censor_at = at

    def exclude(self, start: datetime, end: datetime) -> None:
        """A marked away period: silences overlapping it teach nothing. (Called again and
        again while somebody is away: overlapping periods are merged.)"""
        for index, (a, b) in enumerate(self._away):
            if a <= end and start <= b:
                self._away[index] = (min(a, start), max(b, end))
                return
        self._away.append((start, end))

    def exclude_day(self, day: date) -> None:
        """A day with an SOS or fall (or otherwise not a normal day) teaches nothing."""
        self._days.setdefault(day, _Day()).excluded = True
        self._invalidate(day)

    def _in_away(self, start: datetime, end: datetime) -> bool:
        return any(a < end and start < b for a, b in self._away)

    def _record(self, start: datetime, end: datetime, *, out: bool, context: str | None) -> None:
        local = start.astimezone(self.tz)
        minutes = (end - start).total_seconds() / 60
        woke = end.astimezone(self.tz)
        if local.hour in _NIGHT_START and minutes >= _SLEEP_MINUTES and woke.hour < 13:
            # The night's sleep (or its part before a trip to the toilet): learned as a
            # bedtime and a wake-up, not as a silence of its starting hour (an early night
            # says nothing about an evening's gaps).
            if woke.hour in _MORNING:
                self._day(woke.date()).wake = woke.hour * 60 + woke.minute
            evening = local.date() if local.hour >= 12 else local.date() - timedelta(days=1)
            night = self._day(evening)
            bed = (local - datetime.combine(evening, time(0), self.tz)).total_seconds() / 60
            night.bed = bed if night.bed is None else min(night.bed, bed)
            self._invalidate(evening)
            return
        day = self._day(local.date())
        contexts = [_ANY, _OUT if out else _INSIDE]
        if context is not None and not out:
            contexts.append(context)
        for key in contexts:
            values = day.slots.get(key)
            if values is None:
                values = day.slots[key] = array("f", _NO_SILENCES)
            values[local.hour] = max(values[local.hour], minutes)
        self._invalidate(local.date())

    def _day(self, when: date) -> _Day:
        day = self._days.get(when)
        if day is None:
            day = self._days[when] = _Day()
            self._forget_before(when - self.rule.history - _SLACK)
        return day

    def _forget_before(self, oldest: date) -> None:
        """A gateway runs for years: days, absences and tables no deadline can read again
        (older than ``history``, and :data:`_SLACK` for a silence that began days ago) go."""
        for when in [when for when in self._days if when < oldest]:
            del self._days[when]
        for when in [when for when in self._tables if when < oldest]:
            del self._tables[when]
        start = datetime.combine(oldest, time(0), self.tz)
        self._away = [(a, b) for a, b in self._away if b >= start]

    def _invalidate(self, changed: date) -> None:
        """Forget the tables that read the day that changed (those of later days)."""
        for when in [when for when in self._tables if when > changed]:
            del self._tables[when]

    # -- deciding -----------------------------------------------------------------------

    @property
    def days_held(self) -> int:
        """Local days the model holds (bounded, however long the gateway runs)."""
        return len(self._days)

    def history_days(self, today: date) -> int:
        """Days of usable history before ``today``."""
        return self._table(today).days

    def ready(self, moment: datetime) -> bool:
        """Enough history to replace the fixed windows for a silence starting at ``moment``."""
        return self._table(moment.astimezone(self.tz).date()).days >= self.rule.min_days

    def deadline(
        self, baseline: datetime, *, factor: float = 1.0, checked: bool = False
    ) -> LearnedDeadline | None:
        """When silence since ``baseline`` becomes unusual; None until :meth:`ready`, or
        where the history knows too few silences starting at that hour.

        ``factor`` < 1 (the town's emergency mode) tightens the threshold. ``checked``: the
        silence goes on after an inactivity alert was closed at ``baseline`` (somebody
        looked): it is judged as the silence it continues (indoors, or out of the house),
        counted from the check.
        """
        local = baseline.astimezone(self.tz)
        table = self._table(local.date())
        if table.days < self.rule.min_days:
            return None
        continues = self.last_at is not None and (baseline == self.last_at or checked)
        if continues and self.last_out:
            # Out of the door and no movement indoors since: the house is empty, and a
            # resident lying on the kitchen floor is not what the silence means. Wait for
            # the door (any sign of life ends this), up to ``out_max``.
            usual = _pick(table.usual, (_OUT,), local.hour)
            usual_by = baseline + timedelta(minutes=usual or 0.0)
            return LearnedDeadline(baseline + self.rule.out_max * factor, usual_by)
        # Counting from a return from a marked absence, or the start: any silence.
        chain: tuple[str, ...] = (_ANY,)
        if continues:
            chain = (_INSIDE, _ANY) if self._context is None else (self._context, _INSIDE, _ANY)
        threshold = _pick(table.threshold, chain, local.hour)
        usual = _pick(table.usual, chain, local.hour)
        night = local.hour in _NIGHT_START and table.wake is not None
        if threshold is None and not night:
            return None
        due = baseline + timedelta(minutes=threshold or 0.0) * factor
        usual_by = baseline + timedelta(minutes=usual or 0.0)
        if night and table.wake is not None:
            bedtime = _bedtime(local, table.bed)
            if threshold is None or bedtime is None or due > bedtime:
                # The silence may be the night: an early night is not an emergency, the
                # question is whether the resident is up by the time they usually are
                # ("通常 07:40 前有活动"). Before even their earliest usual bedtime, an
                # evening's silence is judged as any other (a fall after supper is found
                # that evening, not the next morning).
                woke = _next_time_of_day(local, table.wake)
                morning = woke + self.rule.margin * factor
                if threshold is None or morning > due:
                    due, usual_by = morning, woke
        return LearnedDeadline(min(due, baseline + self.rule.max_quiet * factor), usual_by)

    def _table(self, today: date) -> _Table:
        table = self._tables.get(today)
        if table is None:
            table = self._tables[today] = self._build(today)
        return table

    def _build(self, today: date) -> _Table:
        first = today - timedelta(days=self.rule.history.days)
        days = [
            day
            for when, day in self._days.items()
            if first <= when < today
            and not day.excluded
            and (day.slots or day.wake is not None or day.bed is not None)
        ]
        rule = self.rule
        low = rule.min_quiet.total_seconds() / 60
        high = rule.max_quiet.total_seconds() / 60
        margin = rule.margin.total_seconds() / 60
        thresholds: dict[str, tuple[float | None, ...]] = {}
        usuals: dict[str, tuple[float | None, ...]] = {}
        for context in sorted({context for day in days for context in day.slots}):
            usual: list[float | None] = []
            pool = _OUT_POOL if context == _OUT else 0
            for hour in range(_SLOTS):
                values = [
                    v
                    for d in days
                    if context in d.slots
                    and (v := _pooled(d.slots[context], hour, pool)) is not None
                ]
                usual.append(
                    _quantile(values, rule.quantile) if len(values) >= _MIN_VALUES else None
                )
            raw = [None if q is None else q * rule.factor + margin for q in usual]
            smoothed: list[float | None] = []
            for hour in range(_SLOTS):
                here = raw[hour]
                if here is None:
                    smoothed.append(None)
                    continue
                around = [
                    v for v in (raw[hour - 1], here, raw[(hour + 1) % _SLOTS]) if v is not None
                ]
                # Smoothing only ever widens: a silence starting at 14:50 is not much
                # different from one starting at 15:05, the usual nap.
                value = max(here, sum(around) / len(around))
                smoothed.append(min(high, max(low, value)))
            thresholds[context] = tuple(smoothed)
            usuals[context] = tuple(usual)
        wakes = [day.wake for day in days if day.wake is not None]
        wake = _quantile(wakes, rule.quantile) if len(wakes) >= _MIN_VALUES else None
        beds = [day.bed for day in days if day.bed is not None]
        bed = _quantile(beds, 1 - rule.quantile) if len(beds) >= _MIN_VALUES else None
        return _Table(len(days), thresholds, usuals, wake, bed)


def _pooled(values: array[float], hour: int, pool: int) -> float | None:
    """The longest of a day's values for ``hour`` and the ``pool`` hours either side."""
    longest = max(values[(hour + shift) % _SLOTS] for shift in range(-pool, pool + 1))
    return None if longest == _NONE else longest


def _next_time_of_day(after: datetime, minutes: float) -> datetime:
    """The first moment after ``after`` (local) whose time of day is ``minutes``."""
    midnight = after.replace(hour=0, minute=0, second=0, microsecond=0)
    moment = midnight + timedelta(minutes=minutes)
    if moment <= after:
        moment = (midnight + timedelta(days=1)).replace(
            hour=int(minutes // 60), minute=int(minutes % 60)
        )
    return moment


def _pick(
    table: dict[str, tuple[float | None, ...]], chain: tuple[str, ...], hour: int
) -> float | None:
    """The first context in ``chain`` whose history knows silences starting at ``hour``."""
    for context in chain:
        values = table.get(context)
        if values is not None and values[hour] is not None:
            return values[hour]
    return None


def _bedtime(local: datetime, bed: float | None) -> datetime | None:
    """The earliest usual bedtime of the night ``local`` (a local evening or small hours)
    belongs to."""
    if bed is None:
        return None
    evening = local.date() if local.hour >= 12 else local.date() - timedelta(days=1)
    return datetime.combine(evening, time(0), local.tzinfo) + timedelta(minutes=bed)


def _quantile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    below = int(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (position - below)
