"""Fixtures of the end-to-end tests: a fake Twilio REST server the real client talks to."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.fake_twilio import FakeTwilio

ACCOUNT = "AC" + "0" * 32
TOKEN = "fake-auth-token-0123456789abcdef"


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    with FakeTwilio(account_sid=ACCOUNT, auth_token=TOKEN) as fake:
        yield fake
