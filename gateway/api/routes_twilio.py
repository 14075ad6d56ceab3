"""Twilio webhooks. Every request must carry a valid ``X-Twilio-Signature`` computed over
``HOMEWATCH_PUBLIC_URL`` + path: a bad or missing one gets 403 and changes nothing."""

from __future__ import annotations

import logging

from fastapi import APIRouter, HTTPException, Request, Response, status

from alerts.signatures import SIGNATURE_HEADER, verify_twilio_signature
from alerts.templates import render
from alerts.twiml import call_twiml, gather_reply_twiml
from gateway.api.deps import Ctx
from gateway.privacy import mask_phone
from gateway.register.phones import normalize_phone

__all__ = ["router"]

log = logging.getLogger(__name__)
router = APIRouter(prefix="/twilio", tags=["twilio"])

_EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'


async def _verified_form(request: Request, context: Ctx) -> dict[str, str]:
    form = await request.form()
    params = {key: str(value) for key, value in form.items()}
    url = context.settings.public_url + request.url.path
    if request.url.query:
        url += "?" + request.url.query
    token = context.settings.twilio_auth_token or ""
    if not verify_twilio_signature(token, url, params, request.headers.get(SIGNATURE_HEADER)):
        log.warning("refused a Twilio webhook with a bad signature: %s", request.url.path)
        raise HTTPException(status.HTTP_403_FORBIDDEN, "invalid Twilio signature")
    return params


def _xml(body: str) -> Response:
    return Response(body, media_type="application/xml")


@router.post("/sms")
async def inbound_sms(request: Request, context: Ctx) -> Response:
    params = await _verified_form(request, context)
    try:
        sender = normalize_phone(params.get("From", ""))
    except ValueError:
        return _xml(_EMPTY_TWIML)
    result = await context.alerts.acknowledge_by_sms(sender, params.get("Body", ""))
    if result is None:
        log.info("inbound SMS from %s acknowledged nothing", mask_phone(sender))
    # Replies go out through the notifier (templated, recorded), not as TwiML.
    return _xml(_EMPTY_TWIML)


@router.post("/voice/{token}")
async def voice(token: str, request: Request, context: Ctx) -> Response:
    await _verified_form(request, context)
    row = await context.alerts.notification_by_token(token)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "unknown call")
    action = f"{context.settings.public_url}/twilio/voice/{token}/gather"
    return _xml(call_twiml(row.body, action))


@router.post("/voice/{token}/gather")
async def gather(token: str, request: Request, context: Ctx) -> Response:
    params = await _verified_form(request, context)
    row = await context.alerts.notification_by_token(token)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "unknown call")
    result = await context.alerts.acknowledge_by_call(token, params.get("Digits", ""))
    if result is None:
        # No key, or another key: say it once more rather than hang up on them.
        action = f"{context.settings.public_url}/twilio/voice/{token}/gather"
        return _xml(call_twiml(row.body, action, repeat=1))
    reply = "resident_ok" if row.recipient_role == "resident" else "ack_confirm"
    return _xml(gather_reply_twiml(render(reply, "voice", row.params)))


@router.post("/status")
async def delivery_status(request: Request, context: Ctx) -> Response:
    params = await _verified_form(request, context)
    sid = params.get("MessageSid") or params.get("CallSid") or ""
    state = params.get("MessageStatus") or params.get("CallStatus") or ""
    if sid and state:
        await context.alerts.status_callback(sid, state, params.get("ErrorCode"))
    return Response(status_code=status.HTTP_204_NO_CONTENT)
