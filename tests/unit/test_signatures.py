"""X-Twilio-Signature: computed and checked exactly as Twilio does."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from alerts.channels.twilio.signatures import sign, verify_twilio_signature

TOKEN = "12345"
URL = "https://homewatch.example.cn/twilio/voice/tok123/gather?attempt=1"
PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Caller": "+8613700000001",
    "Digits": "1",
    "From": "+8613700000001",
    "To": "+15005550006",
}


def _twilio_reference_signature(token: str, url: str, params: dict[str, str]) -> str:
    # Twilio's documented algorithm, written out independently of the library:
    # HMAC-SHA1 over the URL followed by each parameter name and value, sorted by name.
    data = url + "".join(name + params[name] for name in sorted(params))
    digest = hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def test_sign_matches_twilios_algorithm() -> None:
    assert sign(TOKEN, URL, PARAMS) == _twilio_reference_signature(TOKEN, URL, PARAMS)


def test_a_correct_signature_verifies() -> None:
    assert verify_twilio_signature(TOKEN, URL, PARAMS, sign(TOKEN, URL, PARAMS)) is True


def test_chinese_parameters_verify() -> None:
    params = {"From": "+8613700000001", "Body": "收到，马上去"}
    assert verify_twilio_signature(TOKEN, URL, params, sign(TOKEN, URL, params)) is True


@pytest.mark.parametrize("signature", [None, ""])
def test_a_missing_signature_is_refused(signature: str | None) -> None:
    assert verify_twilio_signature(TOKEN, URL, PARAMS, signature) is False


def test_a_changed_parameter_is_refused() -> None:
    signature = sign(TOKEN, URL, PARAMS)
    assert verify_twilio_signature(TOKEN, URL, {**PARAMS, "Digits": "2"}, signature) is False
    assert verify_twilio_signature(TOKEN, URL, {**PARAMS, "Extra": "x"}, signature) is False


def test_another_url_is_refused() -> None:
    signature = sign(TOKEN, URL, PARAMS)
    other = URL.replace("tok123", "tok124")
    assert verify_twilio_signature(TOKEN, other, PARAMS, signature) is False


def test_another_token_is_refused() -> None:
    signature = sign("other-token", URL, PARAMS)
    assert verify_twilio_signature(TOKEN, URL, PARAMS, signature) is False


def test_an_empty_auth_token_never_verifies() -> None:
    # A gateway configured without a token must not accept anything signed with "".
    assert verify_twilio_signature("", URL, PARAMS, sign("", URL, PARAMS)) is False


def test_a_garbage_signature_is_refused() -> None:
    assert verify_twilio_signature(TOKEN, URL, PARAMS, "not base64 at all ✗") is False


def test_the_default_port_may_be_present_or_not() -> None:
    # Twilio signs sometimes with, sometimes without the default port.
    signature = sign(TOKEN, URL, PARAMS)
    with_port = URL.replace("homewatch.example.cn", "homewatch.example.cn:443")
    assert verify_twilio_signature(TOKEN, with_port, PARAMS, signature) is True


def test_an_unparsable_url_is_refused_not_raised() -> None:
    assert verify_twilio_signature(TOKEN, "https://x:notaport/", PARAMS, "abc=") is False
