"""Twilio webhooks. Every request must carry a valid ``X-Twilio-Signature`` computed over
``HOMEWATCH_PUBLIC_URL`` + path: a bad or missing one gets 403 and changes nothing. What the
requests carry is read by :mod:`alerts.channels.twilio.webhooks`; this module only wires
HTTP to it and to the alert service."""

from __future__ import annotations

import logging

from fastapi import APIRouter, HTTPException, Request, Response, status

from alerts.channels.twilio.signatures import SIGNATURE_HEADER
from alerts.channels.twilio.webhooks import (
    EMPTY_TWIML,
    InboundSms,
    StatusReport,
    TwilioWebhooks,
)
from gateway.api.deps import Ctx
from gateway.privacy import mask_phone

__all__ = ["router"]

log = logging.getLogger(__name__)
router = APIRouter(prefix="/twilio", tags=["twilio"])


async def _verified_form(request: Request, context: Ctx) -> tuple[TwilioWebhooks, dict[str, str]]:
    form = await request.form()
    params = {key: str(value) for key, value in form.items()}
    twilio = TwilioWebhooks(context.settings.twilio_auth_token, context.settings.public_url)
    signature = request.headers.get(SIGNATURE_HEADER)
    if not twilio.verified(request.url.path, request.url.query, params, signature):
        log.warning("refused a Twilio webhook with a bad signature: %s", request.url.path)
        raise HTTPException(status.HTTP_403_FORBIDDEN, "invalid Twilio signature")
    return twilio, params


def _xml(body: str) -> Response:
    return Response(body, media_type="application/xml")


@router.post("/sms")
async def inbound_sms(request: Request, context: Ctx) -> Response:
    _twilio, params = await _verified_form(request, context)
    sms = InboundSms.parse(params)
    if sms is not None and await context.alerts.acknowledge_by_sms(sms.sender, sms.body) is None:
        log.info("inbound SMS from %s acknowledged nothing", mask_phone(sms.sender))
    return _xml(EMPTY_TWIML)


@router.post("/voice/{token}")
async def voice(token: str, request: Request, context: Ctx) -> Response:
    twilio, _params = await _verified_form(request, context)
    row = await context.alerts.notification_by_token(token)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "unknown call")
    return _xml(twilio.call(row))


@router.post("/voice/{token}/gather")
async def gather(token: str, request: Request, context: Ctx) -> Response:
    twilio, params = await _verified_form(request, context)
    row = await context.alerts.notification_by_token(token)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "unknown call")
    result = await context.alerts.acknowledge_by_call(token, params.get("Digits", ""))
    return _xml(twilio.after_key(row, taken=result is not None))


@router.post("/status")
async def delivery_status(request: Request, context: Ctx) -> Response:
    _twilio, params = await _verified_form(request, context)
    report = StatusReport.parse(params)
    if report is not None:
        await context.alerts.status_callback(report.sid, report.status, report.error_code)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
