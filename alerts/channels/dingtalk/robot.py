"""DingTalk custom robot: ``POST`` a text message to the webhook, signed.

With the "加签" security setting the webhook URL must carry ``timestamp`` (ms) and
``sign`` = url-quoted base64(HMAC-SHA256(secret, f"{timestamp}\\n{secret}")); DingTalk
refuses a timestamp more than an hour off. It answers HTTP 200 with ``errcode`` 0 on success.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import quote_plus

from alerts.channels.robot_http import post_json

__all__ = ["dingtalk_sign", "post_dingtalk", "signed_url"]


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """The ``sign`` parameter, already url-quoted."""
    digest = hmac.new(
        secret.encode("utf-8"), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256
    ).digest()
    return quote_plus(base64.b64encode(digest).decode("ascii"))


def signed_url(webhook: str, secret: str | None, timestamp_ms: int) -> str:
    """The webhook with ``timestamp`` and ``sign`` appended (unchanged without a secret)."""
    if not secret:
        return webhook
    joiner = "&" if "?" in webhook else "?"
    return f"{webhook}{joiner}timestamp={timestamp_ms}&sign={dingtalk_sign(secret, timestamp_ms)}"


async def post_dingtalk(
    webhook: str, secret: str | None, text: str, *, timestamp_ms: int, request_timeout: float = 10.0
) -> None:
    """Post ``text`` to the group.

    Raises:
        DeliveryError: DingTalk refused it or could not be reached.
    """
    await post_json(
        "dingtalk",
        signed_url(webhook, secret, timestamp_ms),
        {"msgtype": "text", "text": {"content": text}},
        request_timeout=request_timeout,
    )
