"""Learned routines: each home's own normal quiet periods by time of day.

Fixed timers force one trade for everybody: four hours by day is too short for the resident
who works a field all morning and far too long for the one who never leaves the house. A
:class:`RoutineModel` learns, per home, how long the house normally stays silent *at each
hour of the local day*, and says when the current silence has become unusual.

What is learned. Every sign of life ends a silence that began at the previous one. For each
local day and hour-of-day slot the model keeps the longest silence seen in progress during
that hour ("at 07:xx this home had been quiet for at most 25 minutes"), separately for
silences that began when somebody went *out* of the front door (the last sign of life was a
door) and silences *inside* (the last sign of life was movement in the house): a resident
who walked out to the fields is not a resident lying on the kitchen floor. The threshold for
a slot is a high quantile of those per-day values over the last ``history`` days, widened by
``factor`` and ``margin``, lightly smoothed with its neighbours, and bounded by ``min_quiet``
and ``max_quiet``. A silence becomes an alert at the first moment ``t`` at which
``t - last sign of life`` reaches the threshold of ``t``'s slot.

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
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from gateway.config import LearnedRoutine

__all__ = ["LearnedDeadline", "RoutineModel"]

_SLOTS = 24
_HOUR = timedelta(hours=1)
_INSIDE, _OUT, _ANY = 0, 1, 2
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
        """A marked away period: silences overlapping it teach nothing."""
        if (start, end) not in self._away:
            self._away.append((start, end))

    def exclude_day(self, day: date) -> None:
        """A day with an SOS or fall (or otherwise not a normal day) teaches nothing."""
        self._days.setdefault(day, _Day()).excluded = True
        self._tables.clear()

    def _in_away(self, start: datetime, end: datetime) -> bool:
        return any(a < end and start < b for a, b in self._away)

    def _record(self, start: datetime, end: datetime, *, out: bool) -> None:
        context = _OUT if out else _INSIDE
        moment = start
        while moment < end:
            local = moment.astimezone(self.tz)
            slot_start = local.replace(minute=0, second=0, microsecond=0)
            slot_end = (slot_start + _HOUR).astimezone(UTC)
            segment_end = min(end, slot_end)
            elapsed = (segment_end - start).total_seconds() / 60
            day = self._days.get(local.date())
            if day is None:
                day = self._days[local.date()] = _Day()
            hour = local.hour
            for index in (context, _ANY):
                values = day.slots[index]
                current = values[hour]
                if current is None or elapsed > current:
                    values[hour] = elapsed
            moment = segment_end
        self._tables.clear()

    # -- deciding -----------------------------------------------------------------------

    def history_days(self, today: date) -> int:
        """Days of usable history before ``today``."""
        return self._table(today).days

    def ready(self, moment: datetime) -> bool:
        """Enough history to replace the fixed windows for a silence starting at ``moment``."""
        return self._table(moment.astimezone(self.tz).date()).days >= self.rule.min_days

    def deadline(self, baseline: datetime, *, factor: float = 1.0) -> LearnedDeadline | None:
        """When silence since ``baseline`` becomes unusual; None until :meth:`ready`.

        ``factor`` < 1 (the town's emergency mode) tightens every threshold.
        """
        table = self._table(baseline.astimezone(self.tz).date())
        if table.days < self.rule.min_days:
            return None
        if self.last_at is not None and baseline == self.last_at:
            context = _OUT if self.last_out else _INSIDE
        else:
            context = _ANY  # counting from a return, a closed alert or the start
        shortest = self.rule.min_quiet * factor
        longest = self.rule.max_quiet * factor
        cap = baseline + longest
        local = (baseline + shortest).astimezone(self.tz)
        slot_start = local.replace(minute=0, second=0, microsecond=0).astimezone(UTC)
        while slot_start < cap:
            slot_end = slot_start + _HOUR
            hour = slot_start.astimezone(self.tz).hour
            threshold = _pick(table.threshold, context, hour)
            if threshold is not None:
                candidate = max(
                    slot_start,
                    baseline + timedelta(minutes=threshold) * factor,
                    baseline + shortest,
                )
                if candidate < slot_end and candidate < cap:
                    return LearnedDeadline(
                        candidate, self._usual_by(table, context, baseline, hour)
                    )
            slot_start = slot_end
        hour = cap.astimezone(self.tz).hour
        return LearnedDeadline(cap, self._usual_by(table, context, baseline, hour))

    @staticmethod
    def _usual_by(table: _Table, context: int, baseline: datetime, hour: int) -> datetime:
        usual = _pick(table.usual, context, hour)
        return baseline + timedelta(minutes=usual or 0)

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
            for hour in range(_SLOTS):
                values = [v for d in days if (v := d.slots[context][hour]) is not None]
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
                # Smoothing only ever widens: a slot next to a long-quiet hour (the hour
                # before the usual wake-up) must not alarm just before the routine resumes.
                value = max(here, sum(around) / len(around))
                smoothed.append(min(high, max(low, value)))
            thresholds.append(tuple(smoothed))
            usuals.append(tuple(usual))
        return _Table(len(days), tuple(thresholds), tuple(usuals))


def _pick(table: tuple[tuple[float | None, ...], ...], context: int, hour: int) -> float | None:
    own = table[context][hour]
    return own if own is not None else table[_ANY][hour]


def _quantile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    below = int(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (position - below)
