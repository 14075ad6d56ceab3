"""What of a phone number or ID number may appear in a log line (SPEC §10: nothing)."""

from __future__ import annotations

import re

__all__ = ["mask_phone", "redact"]

# Runs of 7+ digits (optionally with a leading +): phones in any format, ID numbers.
_DIGITS = re.compile(r"\+?\d[\d\s-]{5,}\d[Xx]?")


def mask_phone(phone: str | None) -> str:
    """Enough to tell two recipients apart in a log (the last two digits), no more."""
    if not phone:
        return "-"
    return "…" + phone[-2:]


def redact(text: str) -> str:
    """``text`` (a provider's error message, say) with every long run of digits masked."""
    return _DIGITS.sub(lambda m: mask_phone(m.group(0)), text)
