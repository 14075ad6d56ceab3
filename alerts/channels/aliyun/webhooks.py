"""What Aliyun's receipt pushes carry (SPEC §11): ``/receipts/aliyun/{token}/…``.

Aliyun's HTTP batch push carries no signature of its own; the path's secret token
(HOMEWATCH_RECEIPT_TOKEN) is what tells its pushes from anyone else's. The body is a JSON
array of receipts (a single object is taken as an array of one). Every accepted push is
answered :data:`ACCEPTED`, which is what stops Aliyun from pushing it again.
"""

from __future__ import annotations

import hmac
import json
from typing import Any

__all__ = ["ACCEPTED", "ReceiptPushError", "receipt_items", "token_matches"]

ACCEPTED: dict[str, Any] = {"code": 0, "msg": "成功"}


class ReceiptPushError(ValueError):
    """The push's body is not what Aliyun sends (the API answers 400, nothing recorded)."""


def token_matches(token: str, expected: str | None) -> bool:
    """Whether the path's token is ours; without one configured, no push is accepted."""
    return bool(expected) and hmac.compare_digest(token.encode(), (expected or "").encode())


def receipt_items(body: bytes) -> list[dict[str, Any]]:
    """The receipts of one push.

    Raises:
        ReceiptPushError: The body is not JSON, or not an array of objects.
    """
    try:
        payload = json.loads(body)
    except ValueError as exc:
        raise ReceiptPushError("body: not JSON") from exc
    if isinstance(payload, dict):
        payload = [payload]
    if not isinstance(payload, list) or not all(isinstance(item, dict) for item in payload):
        raise ReceiptPushError("body: expected a JSON array of objects")
    return payload
