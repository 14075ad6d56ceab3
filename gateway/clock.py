"""Injected clocks: rules and escalation never call ``datetime.now`` themselves."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Protocol

__all__ = ["Clock", "ManualClock", "ScaledClock", "SystemClock", "sleep_unless"]


class Clock(Protocol):
    """A source of the current time (aware, UTC) and of waiting on it."""

    def now(self) -> datetime:
        """The current time, timezone-aware in UTC."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time."""
        ...


class SystemClock:
    """Wall-clock time."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class ScaledClock:
    """Simulated time running ``speed`` times faster than the wall clock (demo, simulator)."""

    def __init__(self, speed: float, start: datetime | None = None) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = speed
        self._origin_wall = datetime.now(UTC)
        self._origin_sim = start or self._origin_wall

    def now(self) -> datetime:
        elapsed = datetime.now(UTC) - self._origin_wall
        return self._origin_sim + elapsed * self.speed

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self.speed)


class ManualClock:
    """A clock that only moves when a test advances it."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        self._now = start.astimezone(UTC)
        self._changed = asyncio.Event()

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta | float) -> None:
        """Move time forward and wake every sleeper whose deadline passed."""
        step = delta if isinstance(delta, timedelta) else timedelta(seconds=delta)
        if step < timedelta(0):
            raise ValueError("time does not run backwards")
        self._now += step
        self._changed.set()
        self._changed = asyncio.Event()

    async def sleep(self, seconds: float) -> None:
        deadline = self._now + timedelta(seconds=max(0.0, seconds))
        while self._now < deadline:
            await self._changed.wait()


async def sleep_unless(clock: Clock, seconds: float, *events: asyncio.Event) -> None:
    """Sleep ``seconds`` of ``clock`` time, waking early as soon as any of ``events`` is set
    (the background loops' pause: a stop request must not wait out the poll interval)."""
    waiters = [
        asyncio.ensure_future(clock.sleep(seconds)),
        *(asyncio.ensure_future(event.wait()) for event in events),
    ]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
