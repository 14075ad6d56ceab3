"""Aliyun's receipt pushes (SPEC §11): ``/receipts/aliyun/{token}/…``.

Aliyun's HTTP batch push carries no signature of its own; the path's secret token
(HOMEWATCH_RECEIPT_TOKEN) is what tells its pushes from anyone else's. A wrong token gets
403 and changes nothing. Every accepted push is answered ``{"code": 0, "msg": "成功"}``,
which is what stops Aliyun from pushing it again.
"""

from __future__ import annotations

import hmac
import json
import logging
from typing import Any

from fastapi import APIRouter, HTTPException, Request, status

from alerts.channels.aliyun.receipts import AliyunReceipts
from gateway.api.deps import ApiContext, Ctx

__all__ = ["router"]

log = logging.getLogger(__name__)
router = APIRouter(prefix="/receipts/aliyun", tags=["receipts"])

_ACCEPTED = {"code": 0, "msg": "成功"}


async def _items(token: str, request: Request, context: ApiContext) -> list[dict[str, Any]]:
    expected = context.settings.receipt_token
    if not expected or not hmac.compare_digest(token.encode(), expected.encode()):
        log.warning(
            "refused an Aliyun receipt push with a wrong token: %s",
            request.url.path.rsplit("/", 1)[-1],
        )
        raise HTTPException(status.HTTP_403_FORBIDDEN, "wrong receipt token")
    try:
        payload = json.loads(await request.body())
    except ValueError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "body: not JSON") from exc
    if isinstance(payload, dict):
        payload = [payload]
    if not isinstance(payload, list) or not all(isinstance(item, dict) for item in payload):
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "body: expected a JSON array of objects")
    return payload


def _receipts(context: ApiContext) -> AliyunReceipts:
    return AliyunReceipts(context.db, context.clock, context.alerts)


@router.post("/{token}/sms-report")
async def sms_report(token: str, request: Request, context: Ctx) -> dict[str, Any]:
    await _receipts(context).sms_report(await _items(token, request, context))
    return _ACCEPTED


@router.post("/{token}/sms-up")
async def sms_up(token: str, request: Request, context: Ctx) -> dict[str, Any]:
    await _receipts(context).sms_up(await _items(token, request, context))
    return _ACCEPTED


@router.post("/{token}/voice-report")
async def voice_report(token: str, request: Request, context: Ctx) -> dict[str, Any]:
    await _receipts(context).voice_report(await _items(token, request, context))
    return _ACCEPTED
