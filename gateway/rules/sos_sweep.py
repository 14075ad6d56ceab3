"""The SOS safety net: an SOS or fall that was stored but never became an alert (the
process died between storing the press and raising its alert) is raised from the store.

The runner reads the candidates in a window that leaves the normal path its chance first
(:data:`GRACE`), looking back :data:`LOOKBACK` at start and afterwards only at what
arrived since the previous sweep.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta

from gateway.rules.decisions import EmergencyDetail, Raise
from gateway.rules.emergency import EMERGENCY_TYPES
from gateway.rules.facts import EmergencyCandidate

__all__ = ["GRACE", "LOOKBACK", "SosSweepRule"]

log = logging.getLogger(__name__)

LOOKBACK = timedelta(minutes=30)
GRACE = timedelta(seconds=10)


class SosSweepRule:
    def __init__(self) -> None:
        self.swept_until: datetime | None = None

    def window(self, now: datetime) -> tuple[datetime, datetime] | None:
        """The (lower, upper] receive-time window to read next; None: nothing new yet."""
        upper = now - GRACE
        lower = self.swept_until or now - LOOKBACK
        return (lower, upper) if upper > lower else None

    def decide(self, candidates: Iterable[EmergencyCandidate], upper: datetime) -> list[Raise]:
        raised: list[Raise] = []
        for found in candidates:
            if found.covered:
                continue
            log.error(
                "recovering a %s from %s that never raised an alert", found.kind, found.device_uid
            )
            raised.append(
                Raise(
                    EMERGENCY_TYPES[found.kind],
                    found.person_id,
                    found.received_at,
                    EmergencyDetail(),
                    found.device_uid,
                )
            )
        self.swept_until = upper
        return raised
