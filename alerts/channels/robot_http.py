"""The one HTTP call both group robots make: JSON in, ``{"errcode": 0}`` out."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

import requests

from alerts.notifiers.base import DeliveryError

__all__ = ["post_json"]

# Robot rate limits (DingTalk: 20 a minute per robot) answer errcode 130101 / WeCom 45009.
_RATE_LIMITED = frozenset({130101, 45009})


def _post(url: str, payload: dict[str, Any], timeout: float) -> requests.Response:
    return requests.post(url, json=payload, timeout=timeout)


async def post_json(
    provider: str, url: str, payload: dict[str, Any], *, request_timeout: float
) -> None:
    """POST ``payload``; the robot's ``errcode`` must be 0.

    Raises:
        DeliveryError: Refused (``errcode`` other than 0, HTTP 4xx) or unreachable.
    """
    # The URL carries the robot's key or signature: log only where it points.
    where = urlsplit(url).netloc
    try:
        response = await asyncio.to_thread(_post, url, payload, request_timeout)
    except requests.exceptions.RequestException as exc:
        raise DeliveryError(
            f"{provider} robot at {where}: unreachable ({type(exc).__name__})", retryable=True
        ) from exc
    if response.status_code >= 400:
        raise DeliveryError(
            f"{provider} robot at {where}: HTTP {response.status_code}",
            retryable=response.status_code >= 500 or response.status_code == 429,
            status=str(response.status_code),
        )
    try:
        answer = response.json()
    except ValueError as exc:
        raise DeliveryError(
            f"{provider} robot at {where}: unreadable answer", retryable=True
        ) from exc
    errcode = answer.get("errcode") if isinstance(answer, dict) else None
    if errcode != 0:
        errmsg = answer.get("errmsg", "") if isinstance(answer, dict) else ""
        raise DeliveryError(
            f"{provider} robot at {where}: errcode {errcode} {errmsg}",
            retryable=errcode in _RATE_LIMITED,
            code=errcode if isinstance(errcode, int) else None,
        )
