"""Learned routines: each home's own normal quiet periods by time of day.

Fixed timers force one trade for everybody: four hours by day is too short for the resident
who works a field all morning and far too long for the one who never leaves the house. A
:class:`RoutineModel` learns, per home, how long the house normally stays silent *at each
hour of the local day*, and says when the current silence has become unusual.

What is learned. Every sign of life ends a silence that began at the previous one. For each
local day and hour-of-day slot the model keeps the longest silence that *began* in that hour
("silences starting at 10:xx lasted at most 50 minutes that day"; those starting at 21:xx,
the night, ten hours), separately for silences that began when somebody went *out* of the
front door (the last sign of life was a door) and silences *inside* (the last sign of life
was movement in the house): a resident who walked out to the fields is not a resident lying
on the kitchen floor. The threshold for a silence is a high quantile of those per-day values
for its starting hour and kind over the last ``history`` days, widened by ``factor`` and
``margin``, smoothed with the neighbouring hours, and bounded by ``min_quiet`` and
``max_quiet``. A silence becomes an alert when it outlasts its threshold; where the home's
history has too few silences of that kind and hour, the fixed windows decide. From the
evening on an early night is no alarm: the model also learns when the night's silence usually
ends, and waits for that time plus ``margin`` ("通常 07:40 前有活动，现在 08:10 仍无活动").

Why it cannot be taught to wait for ever:

* A high quantile, not the maximum: a few illness days, a visitor or an odd nap in a month
  are the top values it ignores; a pattern has to recur to move it.
* ``max_quiet`` caps every threshold, whatever the history says.
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

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from gateway.config import LearnedRoutine

__all__ = ["LearnedDeadline", "RoutineModel"]

_SLOTS = 24
_INSIDE, _OUT, _ANY = 0, 1, 2
#: A silence of at least this long beginning in these local hours is the night's sleep; its
#: end is the morning's first sign of life.
_NIGHT_START = frozenset({18, 19, 20, 21, 22, 23, 0, 1, 2, 3})
_SLEEP_MINUTES = 180.0
#: ...and it ends in the morning (an evening silence ending at ten at night is not a wake-up).
_MORNING = frozenset(range(3, 13))
#: Outings start whenever the day allows; their lengths are pooled over this many hours
#: either side of the starting hour (a market trip at 07:50 and one at 08:10 are alike).
_OUT_POOL = 2
#: A slot needs this many days with a value before its own context is trusted; otherwise
#: the threshold of all silences at that hour is used.
_MIN_VALUES = 3


def _empty_slots() -> tuple[list[float | None], list[float | None], list[float | None]]:
    return ([None] * _SLOTS, [None] * _SLOTS, [None] * _SLOTS)


@dataclass(slots=True)
class _Day:
    #: Longest silence in progress during each local hour, in minutes, per context; None
    #: where the hour saw no silence of that context.
    slots: tuple[list[float | None], list[float | None], list[float | None]] = field(
        default_factory=_empty_slots
    )
    #: When the night's sleep ended (minutes after local midnight), if it did that day.
    wake: float | None = None
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
    threshold: tuple[tuple[float | None, ...], ...]
    usual: tuple[tuple[float | None, ...], ...]
    #: The latest usual end of the night (minutes after local midnight), if known.
    wake: float | None


class RoutineModel:
    """One home's learned quiet periods. Feed :meth:`observe` in time order."""

    def __init__(self, tz: ZoneInfo, rule: LearnedRoutine) -> None:
        self.tz = tz
        self.rule = rule
        self.last_at: datetime | None = None
        self.last_out = False
        self._days: dict[date, _Day] = {}
        self._censor_at: datetime | None = None
        self._away: list[tuple[datetime, datetime]] = []
        self._tables: dict[date, _Table] = {}

    # -- learning -----------------------------------------------------------------------

    def observe(self, at: datetime, *, left_home: bool) -> None:
        """A sign of life at ``at``; ``left_home``: it was the front door (going out)."""
        last = self.last_at
        if last is not None and at < last:
            return  # a late report from a device with a slow clock: nothing new
        if last is not None and at > last:
            end = at if self._censor_at is None else min(at, self._censor_at)
            if not self._in_away(last, at):
                self._record(last, end, out=self.last_out)
        self.last_at = at
        self.last_out = left_home
        self._censor_at = None

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

    def _record(self, start: datetime, end: datetime, *, out: bool) -> None:
        local = start.astimezone(self.tz)
        day = self._days.get(local.date())
        if day is None:
            day = self._days[local.date()] = _Day()
        minutes = (end - start).total_seconds() / 60
        woke = end.astimezone(self.tz)
        if local.hour in _NIGHT_START and minutes >= _SLEEP_MINUTES and woke.hour in _MORNING:
            woke_day = self._days.get(woke.date())
            if woke_day is None:
                woke_day = self._days[woke.date()] = _Day()
            woke_day.wake = woke.hour * 60 + woke.minute
        for index in (_OUT if out else _INSIDE, _ANY):
            values = day.slots[index]
            current = values[local.hour]
            if current is None or minutes > current:
                values[local.hour] = minutes
        self._invalidate(local.date())

    def _invalidate(self, changed: date) -> None:
        """Forget the tables that read the day that changed (those of later days)."""
        for when in [when for when in self._tables if when > changed]:
            del self._tables[when]

    # -- deciding -----------------------------------------------------------------------

    def history_days(self, today: date) -> int:
        """Days of usable history before ``today``."""
        return self._table(today).days

    def ready(self, moment: datetime) -> bool:
        """Enough history to replace the fixed windows for a silence starting at ``moment``."""
        return self._table(moment.astimezone(self.tz).date()).days >= self.rule.min_days

    def deadline(self, baseline: datetime, *, factor: float = 1.0) -> LearnedDeadline | None:
        """When silence since ``baseline`` becomes unusual; None until :meth:`ready`, or
        where the history knows too few silences starting at that hour.

        ``factor`` < 1 (the town's emergency mode) tightens the threshold.
        """
        local = baseline.astimezone(self.tz)
        table = self._table(local.date())
        if table.days < self.rule.min_days:
            return None
        if self.last_at is not None and baseline == self.last_at:
            context = _OUT if self.last_out else _INSIDE
        else:
            context = _ANY  # counting from a return, a closed alert or the start
        threshold = _pick(table.threshold, context, local.hour)
        if threshold is None:
            return None
        usual = _pick(table.usual, context, local.hour) or 0.0
        due = baseline + timedelta(minutes=threshold) * factor
        usual_by = baseline + timedelta(minutes=usual)
        if local.hour in _NIGHT_START and table.wake is not None:
            # An early night is not an emergency: from the evening on, the question is
            # whether the resident is up by the time they usually are ("通常 07:40 前有活动").
            woke = _next_time_of_day(local, table.wake)
            morning = woke + self.rule.margin * factor
            if morning > due:
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
            and any(v is not None for v in day.slots[_ANY])
        ]
        rule = self.rule
        low = rule.min_quiet.total_seconds() / 60
        high = rule.max_quiet.total_seconds() / 60
        margin = rule.margin.total_seconds() / 60
        thresholds: list[tuple[float | None, ...]] = []
        usuals: list[tuple[float | None, ...]] = []
        for context in (_INSIDE, _OUT, _ANY):
            usual: list[float | None] = []
            pool = _OUT_POOL if context == _OUT else 0
            for hour in range(_SLOTS):
                values = [
                    v for d in days if (v := _pooled(d.slots[context], hour, pool)) is not None
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
                # Smoothing only ever widens: a silence starting at 20:50 is not much
                # different from one starting at 21:05, the usual bedtime.
                value = max(here, sum(around) / len(around))
                smoothed.append(min(high, max(low, value)))
            thresholds.append(tuple(smoothed))
            usuals.append(tuple(usual))
        wakes = [day.wake for day in days if day.wake is not None]
        wake = _quantile(wakes, rule.quantile) if len(wakes) >= _MIN_VALUES else None
        return _Table(len(days), tuple(thresholds), tuple(usuals), wake)


def _pooled(values: list[float | None], hour: int, pool: int) -> float | None:
    """The longest of a day's values for ``hour`` and the ``pool`` hours either side."""
    around = [values[(hour + shift) % _SLOTS] for shift in range(-pool, pool + 1)]
    present = [v for v in around if v is not None]
    return max(present) if present else None


def _next_time_of_day(after: datetime, minutes: float) -> datetime:
    """The first moment after ``after`` (local) whose time of day is ``minutes``."""
    midnight = after.replace(hour=0, minute=0, second=0, microsecond=0)
    moment = midnight + timedelta(minutes=minutes)
    if moment <= after:
        moment = (midnight + timedelta(days=1)).replace(
            hour=int(minutes // 60), minute=int(minutes % 60)
        )
    return moment


def _pick(table: tuple[tuple[float | None, ...], ...], context: int, hour: int) -> float | None:
    own = table[context][hour]
    return own if own is not None else table[_ANY][hour]


def _quantile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    below = int(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (position - below)
