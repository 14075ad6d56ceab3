"""The broker link: the town duty line hears directly when the MQTT path has been down for
``rules.gateway_link`` (an SMS, or a call to a landline, goes by the notifier, which does not
need the broker), and again when it is restored."""

from __future__ import annotations

from datetime import datetime, timedelta

from gateway.rules.decisions import LinkChange, TellDuty

__all__ = ["BrokerLinkRule"]


class BrokerLinkRule:
    def __init__(self, threshold: timedelta) -> None:
        self.threshold = threshold
        self.down_since: datetime | None = None
        self.reported = False

    def decide(self, connected: bool, now: datetime) -> TellDuty | None:
        if connected:
            restored = TellDuty(LinkChange.RESTORED, now) if self.reported else None
            self.down_since = None
            self.reported = False
            return restored
        if self.down_since is None:
            self.down_since = now
        if not self.reported and now - self.down_since >= self.threshold:
            return TellDuty(LinkChange.DOWN, self.down_since)
        return None

    def told(self, decision: TellDuty, *, delivered: bool) -> None:
        """The runner reports whether the duty line could be told (none registered: try
        again on the next check)."""
        if decision.change is LinkChange.DOWN:
            self.reported = delivered
