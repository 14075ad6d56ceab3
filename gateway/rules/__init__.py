"""Rules: plain classes fed events (and, for time-based rules, ticks) with injected clocks."""

from __future__ import annotations

from gateway.rules.emergency import EmergencyRule

__all__ = ["EmergencyRule"]
