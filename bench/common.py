"""Statistics and settings shared by the benchmarks (services come from tests.services)."""

from __future__ import annotations

import statistics
from pathlib import Path
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


def write_section(heading: str, command: str, table: str) -> None:
    """Put ``table`` under ``heading`` in docs/BENCHMARKS.md with the command that made it:
    in place of that section when it exists, else at the end."""
    path = Path(__file__).resolve().parent.parent / "docs" / "BENCHMARKS.md"
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    section = f"{heading}\n\n`{command}`\n\n{table}\n"
    if heading in text:
        before, _, rest = text.partition(heading)
        following = rest.find("\n## ")
        text = before + section + ("\n" + rest[following + 1 :] if following >= 0 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text, encoding="utf-8")
