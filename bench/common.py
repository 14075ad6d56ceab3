"""Statistics and settings shared by the benchmarks (services come from tests.services)."""

from __future__ import annotations

import statistics
from typing import Any

from gateway.config import Settings, load_settings
from tests.fakes.fake_twilio import FakeTwilio


def settings_with_fake_twilio(
    database_url: str, prefix: str, twilio: FakeTwilio, **extra: Any
) -> Settings:
    """A benchmark gateway's settings: its own client id, the real twilio client pointed at
    the local fake Twilio."""
    return load_settings(
        database_url=database_url,
        mqtt_client_id=f"gw-{prefix}",
        secret_key="l" * 32,
        twilio_account_sid=twilio.account_sid,
        twilio_auth_token=twilio.auth_token,
        twilio_from="+15005550006",
        twilio_api_base=twilio.base_url,
        **extra,
    )


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def median(values: list[float]) -> float:
    return statistics.median(values)
