"""What Twilio's webhooks carry, and what we answer (SPEC §6).

Every ``/twilio/*`` request must carry a valid ``X-Twilio-Signature`` computed over
``HOMEWATCH_PUBLIC_URL`` + path (+ query): the URL Twilio was told to call, never the one our
server saw behind a proxy. The HTTP routes (``gateway.api.routes_twilio``) hand the form
here and act on what comes back, so nothing Twilio-specific lives in them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from alerts.channels.twilio.signatures import verify_twilio_signature
from alerts.channels.twilio.twiml import (
    call_twiml,
    hangup_twiml,
    say_and_hang_up_twiml,
)
from alerts.templates import render
from gateway.register.phones import normalize_phone
from gateway.storage.models import Notification

__all__ = ["EMPTY_TWIML", "InboundSms", "StatusReport", "TwilioWebhooks"]

#: The answer that makes Twilio do nothing (replies go out through the outbox, recorded).
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'


@dataclass(frozen=True, slots=True)
class InboundSms:
    """An SMS to our number: the sender in E.164 and the text."""

    sender: str
    body: str

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> InboundSms | None:
        """None when the sender is not a phone number we could have notified."""
        try:
            sender = normalize_phone(params.get("From", ""))
        except ValueError:
            return None
        return cls(sender, params.get("Body", ""))


@dataclass(frozen=True, slots=True)
class StatusReport:
    """A status callback for a message (``MessageSid``) or a call (``CallSid``)."""

    sid: str
    status: str
    error_code: str | None

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> StatusReport | None:
        """None when the callback names no sid or no status (nothing to record)."""
        sid = params.get("MessageSid") or params.get("CallSid") or ""
        state = params.get("MessageStatus") or params.get("CallStatus") or ""
        if not (sid and state):
            return None
        return cls(sid, state, params.get("ErrorCode"))


class TwilioWebhooks:
    """Verifies Twilio's requests and builds the TwiML of alert calls.

    Args:
        auth_token: The account's auth token (what Twilio signs with); empty refuses all.
        public_url: ``HOMEWATCH_PUBLIC_URL``, the base Twilio calls.
    """

    def __init__(self, auth_token: str | None, public_url: str) -> None:
        self.auth_token = auth_token or ""
        self.public_url = public_url.rstrip("/")

    def verified(
        self, path: str, query: str, params: Mapping[str, str], signature: str | None
    ) -> bool:
        """Whether Twilio signed this request (``path`` and ``query`` as requested)."""
        url = self.public_url + path + (f"?{query}" if query else "")
        return verify_twilio_signature(self.auth_token, url, params, signature)

    def gather_url(self, token: str) -> str:
        return f"{self.public_url}/twilio/voice/{token}/gather"

    def call(self, row: Notification) -> str:
        """The TwiML of an answered call: an alert's speech listening for key 1, or a
        notice outside any alert (nothing to acknowledge) spoken without listening."""
        if row.alert_id is None:
            return say_and_hang_up_twiml(row.body)
        return call_twiml(row.body, self.gather_url(row.token))

    def after_key(self, row: Notification, *, taken: bool) -> str:
        """The answer to a key press: the confirmation when it took (or cancelled) the
        alert; otherwise the speech once more rather than hanging up on them. A notice
        outside any alert offers no key, so a press there (a replayed request) ends it."""
        if row.alert_id is None:
            return hangup_twiml()
        if not taken:
            return call_twiml(row.body, self.gather_url(row.token), repeat=1)
        reply = "resident_ok" if row.recipient_role == "resident" else "ack_confirm"
        return say_and_hang_up_twiml(render(reply, "voice", row.params))
