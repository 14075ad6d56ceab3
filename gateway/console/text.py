"""The console's words: one catalogue per language, read by the templates as ``t``."""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import yaml

__all__ = ["DEFAULT_LANGUAGE", "LANGUAGES", "catalogue", "duration_text"]

DEFAULT_LANGUAGE = "zh-CN"
#: Chinese for the town; English for visitors and the project's own people.
LANGUAGES = ("zh-CN", "en")


@cache
def catalogue(language: str = DEFAULT_LANGUAGE) -> dict[str, Any]:
    text = resources.files("gateway.console").joinpath(f"text/{language}.yaml").read_text("utf-8")
    loaded: dict[str, Any] = yaml.safe_load(text)
    return loaded


def duration_text(seconds: float, language: str = DEFAULT_LANGUAGE) -> str:
    """ "3 小时 12 分": the two largest units, as an operator reads an age at a glance."""
    words = catalogue(language)["duration"]
    total = max(int(seconds), 0)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} {words['days']} {hours} {words['hours']}"
    if hours:
        return f"{hours} {words['hours']} {minutes} {words['minutes']}"
    if minutes:
        return f"{minutes} {words['minutes']} {secs} {words['seconds']}"
    return f"{secs} {words['seconds']}"
