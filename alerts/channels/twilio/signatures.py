"""Twilio webhook signatures (``X-Twilio-Signature``).

Every ``/twilio/*`` webhook checks the signature against the URL Twilio was configured to
call, i.e. ``HOMEWATCH_PUBLIC_URL`` + path (+ query), never the URL our server saw behind a
proxy (SPEC §6). Anything unsigned or wrongly signed is refused before it can acknowledge an
alert.
"""

from __future__ import annotations

from collections.abc import Mapping

from twilio.request_validator import RequestValidator

__all__ = ["SIGNATURE_HEADER", "sign", "verify_twilio_signature"]

#: The HTTP header carrying the signature.
SIGNATURE_HEADER = "X-Twilio-Signature"


def verify_twilio_signature(
    auth_token: str, url: str, params: Mapping[str, str], signature: str | None
) -> bool:
    """True if ``signature`` is Twilio's signature of ``url`` and the POST ``params``.

    Args:
        auth_token: The Twilio account's auth token.
        url: The full public URL Twilio requested, including any query string.
        params: The form-encoded POST parameters, as received.
        signature: The ``X-Twilio-Signature`` header value; missing or empty is invalid.

    Returns:
        Whether the request is authentic. Never raises for a malformed header.
    """
    if not signature or not auth_token:
        return False
    # RequestValidator also accepts the URL with and without the default port, as Twilio
    # itself is inconsistent about including it.
    try:
        return bool(RequestValidator(auth_token).validate(url, dict(params), signature))
    except ValueError:  # an unparsable URL (bad port) cannot carry a valid signature
        return False


def sign(auth_token: str, url: str, params: Mapping[str, str]) -> str:
    """The ``X-Twilio-Signature`` Twilio would send for a POST of ``params`` to ``url``.

    For tests and the fake Twilio server; production only ever verifies.
    """
    return str(RequestValidator(auth_token).compute_signature(url, dict(params)))
