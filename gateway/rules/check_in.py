"""A check-in press ("I am fine") withdraws the person's open wellbeing alerts."""

from __future__ import annotations

from collections.abc import Iterable

from alerts.types import AlertGroup, AlertType
from gateway.events import EventKind, SensorEvent
from gateway.rules.decisions import Actor, Closing, Withdraw
from gateway.rules.facts import OpenAlert

__all__ = ["WELLBEING", "CheckInRule"]

WELLBEING = tuple(t for t in AlertType if t.group is AlertGroup.WELLBEING)


class CheckInRule:
    @staticmethod
    def applies(event: SensorEvent) -> bool:
        """A live check-in (a retained one is an old press replayed by the broker)."""
        return event.kind is EventKind.CHECK_IN and not event.retained

    def decide(self, event: SensorEvent, open_alerts: Iterable[OpenAlert]) -> list[Withdraw]:
        if not self.applies(event):
            return []
        return [
            Withdraw(alert.id, Actor.RESIDENT, Closing.CHECK_IN)
            for alert in open_alerts
            if alert.type in WELLBEING
        ]
