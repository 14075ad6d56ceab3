"""Pacing for the outbox: the routine token bucket, the wake-up signal, and the spread of a
bulk send (the weekly digest) over time. Kept apart so the outbox module reads as claim and
send."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import datetime, timedelta

from gateway.clock import Clock

__all__ = ["RateLimiter", "Wake", "spread_offset"]


def spread_offset(key: str, spread: timedelta) -> timedelta:
    """A deterministic offset in ``[0, spread)`` for ``key``: the same message queued by any
    process, or again after a restart, gets the same time; different keys fall evenly."""
    if spread <= timedelta(0):
        return timedelta(0)
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    fraction = int.from_bytes(digest, "big") / 2**64
    return timedelta(seconds=int(fraction * spread.total_seconds()))


class RateLimiter:
    """A token bucket per provider on the injected clock: ``per_minute`` sustained, at most
    ``burst`` at once."""

    def __init__(self, clock: Clock, *, per_minute: int, burst: int) -> None:
        self.clock = clock
        self.rate = per_minute / 60.0
        self.burst = float(max(1, burst))
        self._buckets: dict[str, tuple[float, datetime]] = {}

    def _level(self, provider: str) -> float:
        now = self.clock.now()
        tokens, at = self._buckets.get(provider, (self.burst, now))
        tokens = min(self.burst, tokens + max(0.0, (now - at).total_seconds()) * self.rate)
        self._buckets[provider] = (tokens, now)
        return tokens

    def take(self, provider: str) -> bool:
        """Spend one token of ``provider``'s bucket; False (nothing spent) when empty."""
        tokens = self._level(provider)
        if tokens < 1.0:
            return False
        self._buckets[provider] = (tokens - 1.0, self.clock.now())
        return True

    def give_back(self, provider: str) -> None:
        """Return a token spent on a row another process claimed first."""
        tokens = self._level(provider)
        self._buckets[provider] = (min(self.burst, tokens + 1.0), self.clock.now())


class Wake:
    """ "Something was queued": one signal heard by several loops, each through its own event
    (a loop clearing its event must not swallow the wake-up of another)."""

    def __init__(self) -> None:
        self._events: list[asyncio.Event] = []

    def listener(self) -> asyncio.Event:
        event = asyncio.Event()
        self._events.append(event)
        return event

    def set(self) -> None:
        for event in self._events:
            event.set()
