"""Aliyun's receipt pushes (SPEC §11): ``/receipts/aliyun/{token}/…``. A wrong token gets
403 and changes nothing; what a push carries is read by
:mod:`alerts.channels.aliyun.webhooks` and acted on by its receipts."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, HTTPException, Request, status

from alerts.channels.aliyun.receipts import AliyunReceipts
from alerts.channels.aliyun.webhooks import ACCEPTED, ReceiptPushError, receipt_items, token_matches
from gateway.api.deps import ApiContext, Ctx

__all__ = ["router"]

log = logging.getLogger(__name__)
router = APIRouter(prefix="/receipts/aliyun", tags=["receipts"])


async def _items(token: str, request: Request, context: ApiContext) -> list[dict[str, Any]]:
    if not token_matches(token, context.settings.receipt_token):
        log.warning(
            "refused an Aliyun receipt push with a wrong token: %s",
            request.url.path.rsplit("/", 1)[-1],
        )
        raise HTTPException(status.HTTP_403_FORBIDDEN, "wrong receipt token")
    try:
        return receipt_items(await request.body())
    except ReceiptPushError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from exc


def _receipts(context: ApiContext) -> AliyunReceipts:
    return AliyunReceipts(context.db, context.clock, context.alerts)


@router.post("/{token}/sms-report")
async def sms_report(token: str, request: Request, context: Ctx) -> dict[str, Any]:
    await _receipts(context).sms_report(await _items(token, request, context))
    return ACCEPTED


@router.post("/{token}/sms-up")
async def sms_up(token: str, request: Request, context: Ctx) -> dict[str, Any]:
    await _receipts(context).sms_up(await _items(token, request, context))
    return ACCEPTED


@router.post("/{token}/voice-report")
async def voice_report(token: str, request: Request, context: Ctx) -> dict[str, Any]:
    await _receipts(context).voice_report(await _items(token, request, context))
    return ACCEPTED
