"""When does a quiet home become a worry? Pure functions of time, windows and local zone.

The rules engine asks these on every tick, from *persisted* facts (last activity, when a
door opened), so a restart neither forgets a silence nor fires it twice.

Inactivity, precisely (SPEC §6 ``rules.inactivity``): after the last sign of life at
``baseline``, the alert is due at the earlier of

* ``baseline + night.quiet`` — nobody is expected to sleep longer than that; and
* the first moment inside a day window that has seen ``day.quiet`` of silence *within that
  window* (counting from the window's start, or from ``baseline`` if later).

So a resident who goes to bed at 20:00 and gets up at 06:40 is never alerted (night quiet
runs to 08:00; the day window only starts counting at 06:00), while a silence from 10:00
alerts at 14:00. Reading the rule as "alert whenever the silence exceeds the quiet of the
window we are in now" would fire every morning at 06:00 for an early sleeper: exactly the
false alarm that makes volunteers stop answering.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from gateway.config import DoorOpenNightRule, InactivityRule, RulesConfig
from gateway.rules.routine import RoutineModel

__all__ = [
    "InactivityDue",
    "QuietFacts",
    "door_open_deadline",
    "explanation_times",
    "in_window",
    "inactivity_deadline",
    "inactivity_detail",
    "inactivity_due",
    "offline_since",
    "window_occurrences",
]

# How far ahead a deadline is searched: a window that never fits its quiet (a two-hour day
# window with a four-hour quiet) must not loop for ever.
_SEARCH_DAYS = 4


def window_occurrences(
    start: time, end: time, after: datetime, tz: ZoneInfo
) -> Iterator[tuple[datetime, datetime]]:
    """The daily local window [start, end) as UTC intervals, from the one that contains or
    follows ``after`` onwards. ``end <= start`` crosses midnight; ``start == end`` is all day.
    """
    local_day = after.astimezone(tz).date() - timedelta(days=1)
    for _ in range(_SEARCH_DAYS + 1):
        opens = datetime.combine(local_day, start, tzinfo=tz)
        closes_day = local_day if end > start else local_day + timedelta(days=1)
        closes = datetime.combine(closes_day, end, tzinfo=tz)
        if closes.astimezone(UTC) > after:
            yield opens.astimezone(UTC), closes.astimezone(UTC)
        local_day += timedelta(days=1)


def in_window(moment: datetime, start: time, end: time, tz: ZoneInfo) -> bool:
    return any(
        opens <= moment < closes for opens, closes in window_occurrences(start, end, moment, tz)
    )


def _first_quiet_inside(
    start: time, end: time, quiet: timedelta, since: datetime, tz: ZoneInfo
) -> datetime | None:
    """The first moment inside a window occurrence that has been quiet for ``quiet``."""
    for opens, closes in window_occurrences(start, end, since, tz):
        counting_from = max(opens, since)
        if counting_from + quiet <= closes:
            return counting_from + quiet
    return None


def inactivity_deadline(
    baseline: datetime, rule: InactivityRule, tz: ZoneInfo, *, factor: float = 1.0
) -> datetime:
    """When silence since ``baseline`` becomes an inactivity alert (``factor`` < 1 in
    emergency mode tightens both windows)."""
    night_deadline = baseline + rule.night.quiet * factor
    day_deadline = _first_quiet_inside(
        rule.day.start, rule.day.end, rule.day.quiet * factor, baseline, tz
    )
    if day_deadline is None:
        return night_deadline
    return min(night_deadline, day_deadline)


def door_open_deadline(
    opened_at: datetime, rule: DoorOpenNightRule, tz: ZoneInfo
) -> datetime | None:
    """When a door that has stood open since ``opened_at`` becomes a night alert: open for
    ``open_for`` inside the night window (a door left open all day alerts at 22:15)."""
    return _first_quiet_inside(rule.start, rule.end, rule.open_for, opened_at, tz)


# -- the decisions the live watcher and the replay share ---------------------------------


@dataclass(frozen=True, slots=True)
class QuietFacts:
    """What is known about one person's silence, wherever it was read from."""

    last_activity: datetime | None
    created_at: datetime
    #: When the person's last marked absence ended.
    returned_at: datetime | None = None
    #: When the person's last inactivity alert was closed (no re-alert for the same silence).
    last_closed: datetime | None = None

    @property
    def baseline(self) -> datetime:
        """Where the silence is counted from."""
        return max(
            t
            for t in (self.last_activity, self.created_at, self.returned_at, self.last_closed)
            if t is not None
        )


@dataclass(frozen=True, slots=True)
class InactivityDue:
    """When the silence since ``baseline`` becomes an alert; ``usual_by`` when a learned
    routine decided (activity usually comes by then)."""

    at: datetime
    baseline: datetime
    usual_by: datetime | None = None


def inactivity_due(
    facts: QuietFacts,
    rule: InactivityRule,
    tz: ZoneInfo,
    *,
    factor: float = 1.0,
    routine: RoutineModel | None = None,
) -> InactivityDue:
    """The fixed windows, or the home's learned routine once it has enough history."""
    baseline = facts.baseline
    if routine is not None and rule.learned.enabled:
        checked = facts.last_closed is not None and baseline == facts.last_closed
        learned = routine.deadline(baseline, factor=factor, checked=checked)
        if learned is not None:
            return InactivityDue(learned.at, baseline, learned.usual_by)
    return InactivityDue(inactivity_deadline(baseline, rule, tz, factor=factor), baseline)


def inactivity_detail(due: InactivityDue, now: datetime, tz: ZoneInfo) -> dict[str, str]:
    """The alert's detail: ``since`` for the templates, and for a learned routine the
    explanation a helper or the console shows ("通常 07:40 前有活动，现在 09:10 仍无活动")."""
    detail = {
        "since": due.baseline.astimezone(tz).strftime("%H:%M"),
        "last_activity_at": due.baseline.isoformat(),
    }
    if due.usual_by is not None:
        usual, at = explanation_times(due.usual_by, now, tz)
        detail["usual_by"] = usual
        detail["now"] = at
        detail["explanation"] = f"通常 {usual} 前有活动，现在 {at} 仍无活动"
    return detail


def explanation_times(usual_by: datetime, now: datetime, tz: ZoneInfo) -> tuple[str, str]:
    """``usual_by`` and ``now`` as the short local times an alert's explanation and its
    ``inactivity_alert_usual`` template carry (HH:MM; a day apart: 3月5日07:40)."""
    usual, at = usual_by.astimezone(tz), now.astimezone(tz)
    usual_text = usual.strftime("%H:%M")
    if usual.date() != at.date():
        usual_text = f"{usual.month}月{usual.day}日{usual_text}"
    return usual_text, at.strftime("%H:%M")


def offline_since(
    now: datetime,
    rules: RulesConfig,
    *,
    online: bool | None,
    last_seen_at: datetime | None,
    registered_at: datetime,
) -> datetime | None:
    """Since when a device counts as offline (None: it does not): reported offline for
    ``offline_grace``, or silent for ``device_silence``."""
    last = last_seen_at or registered_at
    if online is False and now - last >= rules.offline_grace:
        return last
    if now - last >= rules.device_silence:
        return last
    return None
