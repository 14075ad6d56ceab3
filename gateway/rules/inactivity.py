"""Inactivity: a home silent for longer than its quiet windows (or its learned routine) allow.

While the alert is untaken, renewed activity withdraws it; once a helper has taken it,
closing it is theirs to do (they may already be on the way). An SOS or fall being handled
already has people on the way, so the same silence raises nothing more.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from alerts.types import AlertType
from gateway.rules.decisions import (
    Actor,
    CensorRoutine,
    Closing,
    Decision,
    ExcludeFromRoutine,
    InactivityDetail,
    Raise,
    Verdict,
    Withdraw,
)
from gateway.rules.facts import ACTIVITY_KINDS, HomeFacts
from gateway.rules.quiet import QuietFacts, inactivity_due

__all__ = ["InactivityRule"]


def _earliest(*moments: datetime | None) -> datetime | None:
    present = [m for m in moments if m is not None]
    return min(present) if present else None


class InactivityRule:
    def __init__(self, tz: ZoneInfo) -> None:
        self.tz = tz

    @staticmethod
    def watched(home: HomeFacts) -> bool:
        """Only a home with an activity sensor that has reported can be judged by silence
        (a sensor that never reported is not installed yet)."""
        ignored = home.rules.inactivity.ignore_devices
        return any(
            d.kind in ACTIVITY_KINDS and d.last_seen_at is not None and d.uid not in ignored
            for d in home.devices
        )

    def decide(self, home: HomeFacts, now: datetime) -> Verdict:
        if not self.watched(home):
            return Verdict()
        alert = home.alert(AlertType.INACTIVITY)
        if alert is not None:
            resumed = home.last_activity is not None and home.last_activity >= alert.raised_at
            if resumed and alert.untaken:
                return Verdict((Withdraw(alert.id, Actor.SYSTEM, Closing.ACTIVITY_RESUMED),))
            return Verdict()
        in_emergency = any(home.alert(t) for t in (AlertType.SOS, AlertType.FALL))
        if home.away_until is not None or in_emergency:
            # Neither an absence nor an emergency is a routine to learn.
            decisions: tuple[Decision, ...] = ()
            if home.rules.inactivity.learned.enabled:  # (its model may still be warming)
                decisions = (ExcludeFromRoutine(home.person_id, now),)
            return Verdict(decisions, home.away_until)
        facts = QuietFacts(
            home.last_activity,
            home.created_at,
            home.returned_at,
            home.last_closed.get(AlertType.INACTIVITY),
        )
        due = inactivity_due(
            facts,
            home.rules.inactivity,
            self.tz,
            factor=home.inactivity_factor,
            routine=home.routine,
        )
        if now < due.at:
            return Verdict(next_check=_earliest(due.at, home.next_away_start))
        raised: list[Decision] = [
            Raise(
                AlertType.INACTIVITY,
                home.person_id,
                now,
                InactivityDetail(due.baseline, due.usual_by, now),
            )
        ]
        if home.rules.inactivity.learned.enabled:
            raised.append(CensorRoutine(home.person_id, now))
        return Verdict(tuple(raised))
