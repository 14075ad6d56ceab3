"""A token bucket per device (SPEC §10): one broken or hostile device flooding the broker
must not starve the others of the ingest's database time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

__all__ = ["DeviceRateLimiter"]


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: datetime


class DeviceRateLimiter:
    """``rate`` messages a second on average, bursts of up to ``burst``; time is the
    message's receive time, so tests (and replays) drive it without sleeping."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = float(burst)
        self._buckets: dict[str, _Bucket] = {}

    def allow(self, device: str, now: datetime) -> bool:
        """Take one token for ``device``; False when it has none left."""
        if self.rate <= 0:
            return True  # limiting switched off
        bucket = self._buckets.get(device)
        if bucket is None:
            bucket = self._buckets[device] = _Bucket(self.burst, now)
        elapsed = max(0.0, (now - bucket.at).total_seconds())
        bucket.tokens = min(self.burst, bucket.tokens + elapsed * self.rate)
        bucket.at = max(bucket.at, now)
        if bucket.tokens < 1:
            return False
        bucket.tokens -= 1
        return True
