"""The texts as filed with a mainland carrier: no links, no phone numbers (SPEC §11).

Mainland carriers block or delay an SMS that carries a URL or a phone number, and they only
deliver text filed in advance as a template whose variables are filled in. Our named
templates (:mod:`alerts.templates`) name the resident's phone in alert SMS; the carrier
version drops it (a helper finds it in the console, and the village team knows the
household). Everything else is the same wording, so a filed template and our Twilio
reference never drift apart.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from alerts.templates import TEMPLATES, Channel

__all__ = ["carrier_params", "carrier_render", "carrier_text"]

# The phone clause of the alert SMS ("地址{address}，本人电话{phone}。").
_PHONE_CLAUSE = re.compile(r"[，,]?本人电话\{phone\}")
_WHITESPACE_RUN = re.compile(r"[\s\u3000]+")


def carrier_text(name: str, channel: Channel) -> str:
    """Template ``name``'s text for ``channel`` as filed with the carrier.

    Raises:
        KeyError: No template of that name, or no text for that channel.
    """
    return _PHONE_CLAUSE.sub("", TEMPLATES[name].text(channel))


def _needed(text: str) -> list[str]:
    return re.findall(r"\{(\w+)\}", text)


def carrier_params(name: str, channel: Channel, params: Mapping[str, Any]) -> dict[str, str]:
    """Exactly the variables the filed template has, as strings (the TemplateParam JSON).

    Raises:
        KeyError: A variable has no value (names it).
    """
    values: dict[str, str] = {}
    for key in _needed(carrier_text(name, channel)):
        if key not in params:
            raise KeyError(f"template {name!r} ({channel}) needs parameter {key!r}")
        values[key] = _WHITESPACE_RUN.sub(" ", str(params[key])).strip()
    return values


def carrier_render(name: str, channel: Channel, params: Mapping[str, Any]) -> str:
    """What the recipient reads or hears: the filed text with its variables filled in."""
    return carrier_text(name, channel).format_map(carrier_params(name, channel, params))
