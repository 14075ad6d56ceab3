"""Twilio notifier: SMS through the Messages resource, calls through the Calls resource.

Uses the official ``twilio`` client (9.x). Two things it does not do out of the box:

* **A different API base** (staging, or the local fake Twilio in tests; SPEC §2
  ``HOMEWATCH_TWILIO_API_BASE``). twilio-python builds every URL as
  ``client.api.base_url + "/2010-04-01/Accounts/…"`` (``twilio.base.domain.Domain``), so we
  set ``client.api.base_url``. The client would also rewrite the host for ``TWILIO_EDGE`` /
  ``TWILIO_REGION`` found in the process environment; we clear both so that our own
  configuration alone decides where alerts go.
* **Async.** The client is synchronous (requests); each call runs in a worker thread via
  :func:`asyncio.to_thread` so a slow Twilio never stalls MQTT ingest or escalation.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import urlsplit

import requests
from twilio.base.exceptions import TwilioException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from alerts.notifiers.base import Delivery, DeliveryError
from gateway.privacy import mask_phone

__all__ = ["DEFAULT_API_BASE", "TwilioNotifier"]

DEFAULT_API_BASE = "https://api.twilio.com"

_log = logging.getLogger(__name__)

# Request errors that are our own misconfiguration: retrying cannot help.
_PERMANENT_REQUEST_ERRORS = (
    requests.exceptions.InvalidURL,
    requests.exceptions.MissingSchema,
    requests.exceptions.InvalidSchema,
    requests.exceptions.InvalidHeader,
)


class TwilioNotifier:
    """Sends SMS and places calls through Twilio's REST API.

    Args:
        account_sid: ``AC…`` account SID.
        auth_token: The account's auth token (also what signs Twilio's webhooks to us).
        from_number: Our Twilio number in E.164, the sender of SMS and the caller id.
        api_base: REST API base URL; ``https://api.twilio.com`` in production.
        timeout: Seconds to wait for Twilio to connect and to answer, per request.

    Raises:
        ValueError: ``api_base`` is not an http(s) URL, or ``timeout`` is not positive.
    """

    name = "twilio"

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        from_number: str,
        api_base: str = DEFAULT_API_BASE,
        timeout: float = 10.0,
    ) -> None:
        parts = urlsplit(api_base)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"Twilio API base must be an http(s) URL, got {api_base!r}")
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.from_number = from_number
        self.api_base = api_base.rstrip("/")
        self.timeout = timeout
        self._client: Any = Client(
            account_sid, auth_token, http_client=TwilioHttpClient(timeout=timeout)
        )
        self._client.edge = None
        self._client.region = None
        self._client.api.base_url = self.api_base

    async def send_sms(self, to: str, body: str, *, status_callback: str | None = None) -> Delivery:
        """Create a Message (``POST …/Messages.json``) from our number to ``to``.

        Raises:
            DeliveryError: Twilio refused it or could not be reached.
        """
        kwargs: dict[str, Any] = {"to": to, "from_": self.from_number, "body": body}
        if status_callback:
            kwargs["status_callback"] = status_callback
        return await self._create("SMS", self._client.messages.create, to, kwargs)

    async def place_call(
        self, to: str, *, speech: str, twiml_url: str, status_callback: str | None = None
    ) -> Delivery:
        """Create a Call (``POST …/Calls.json``); Twilio fetches ``twiml_url`` (POST) on answer.

        ``speech`` is not sent: Twilio gets the same text as TwiML from ``twiml_url``, where
        the ``<Gather>`` that takes key 1 lives (:func:`alerts.channels.twilio.twiml.call_twiml`).

        Raises:
            DeliveryError: Twilio refused it or could not be reached.
        """
        kwargs: dict[str, Any] = {
            "to": to,
            "from_": self.from_number,
            "url": twiml_url,
            "method": "POST",
        }
        if status_callback:
            # Twilio's default events ("completed" only) carry the final outcome we record:
            # completed, busy, no-answer, failed, canceled.
            kwargs["status_callback"] = status_callback
            kwargs["status_callback_method"] = "POST"
        return await self._create("call", self._client.calls.create, to, kwargs)

    async def _create(self, what: str, create: Any, to: str, kwargs: dict[str, Any]) -> Delivery:
        # Note: if the awaiting task is cancelled the worker thread still finishes the request,
        # so a cancelled send may still have gone out. That errs on the side of delivery.
        try:
            instance = await asyncio.to_thread(create, **kwargs)
        except TwilioException as exc:
            # TwilioRestException (legacy error body), TwilioServiceException (RFC 9457 body)
            # or a client-side problem such as missing credentials.
            raise _twilio_error(what, to, exc) from exc
        except requests.exceptions.Timeout as exc:
            raise DeliveryError(
                f"Twilio {what} to {to}: no answer within {self.timeout:g}s", retryable=True
            ) from exc
        except _PERMANENT_REQUEST_ERRORS as exc:
            raise DeliveryError(
                f"Twilio {what} to {to}: bad request setup ({exc})", retryable=False
            ) from exc
        except requests.exceptions.RequestException as exc:  # refused, reset, DNS, TLS …
            raise DeliveryError(
                f"Twilio {what} to {to}: cannot reach {self.api_base} ({exc})", retryable=True
            ) from exc
        except ValueError as exc:
            # A 2xx whose body is not Twilio's JSON (a proxy's error page). We cannot tell
            # whether it went out; retrying risks a duplicate, not retrying risks a missed SOS.
            raise DeliveryError(
                f"Twilio {what} to {to}: unreadable answer ({exc})", retryable=True
            ) from exc
        sid = getattr(instance, "sid", None)
        if not sid:
            raise DeliveryError(f"Twilio {what} to {to}: answer carried no sid", retryable=True)
        status = str(getattr(instance, "status", None) or "queued")
        _log.debug("twilio %s to %s accepted: %s %s", what, mask_phone(to), sid, status)
        return Delivery(sid=str(sid), status=status)


def _twilio_error(what: str, to: str, exc: TwilioException) -> DeliveryError:
    """Map Twilio's error answer: 5xx, 408 and 429 are worth retrying; other 4xx are not."""
    status = getattr(exc, "status", None)
    if not isinstance(status, int):
        # Raised before any request was made (e.g. no credentials): a setup error.
        return DeliveryError(f"Twilio {what} to {to}: {exc!r}", retryable=False)
    retryable = status >= 500 or status in (408, 429)
    code = getattr(exc, "code", None)
    # On a non-JSON error body twilio-python reports the HTTP status as the "code".
    code = code if isinstance(code, int) and code != status else None
    message = getattr(exc, "msg", None) or getattr(exc, "detail", None) or getattr(exc, "title", "")
    detail = f" (Twilio error {code})" if code is not None else ""
    # Built by hand: TwilioRestException.__str__ adds ANSI colours when stderr is a tty.
    return DeliveryError(
        f"Twilio refused {what} to {to}: HTTP {status}{detail}: {message}",
        retryable=retryable,
        status=str(status),
        code=code,
    )
