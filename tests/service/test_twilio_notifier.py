"""TwilioNotifier with the real twilio client against the local fake Twilio server, and
our reading of what Twilio then posts back (as the fake posts it)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from alerts.channels.twilio.webhooks import InboundSms, StatusReport
from alerts.notifiers import DeliveryError, Notifier, TwilioNotifier
from alerts.templates import render
from tests.fakes.fake_twilio import FakeTwilio

OUR_NUMBER = "+15005550006"
HELPER = "+8613700000001"
PUBLIC = "https://homewatch.example.cn"
STATUS_URL = f"{PUBLIC}/twilio/status"
TWIML_URL = f"{PUBLIC}/twilio/voice/tok123"


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    with FakeTwilio() as server:
        yield server


@pytest.fixture
def notifier(fake: FakeTwilio) -> TwilioNotifier:
    return TwilioNotifier(
        fake.account_sid, fake.auth_token, OUR_NUMBER, api_base=fake.base_url, timeout=5.0
    )


SOS_PARAMS = {
    "name": "张三",
    "village": "坝芒村",
    "address": "坝芒村3组12号",
    "time": "08:15",
    "phone": "+8613600000001",
    "code": "A7K2",
}


# -- sending --------------------------------------------------------------------------------


async def test_sms_is_created_with_to_from_body_and_status_callback(
    fake: FakeTwilio, notifier: TwilioNotifier
) -> None:
    body = render("sos_alert", "sms", SOS_PARAMS)

    delivery = await notifier.send_sms(HELPER, body, status_callback=STATUS_URL)

    assert delivery.sid.startswith("SM")
    assert len(delivery.sid) == 34
    assert delivery.status == "queued"
    [message] = fake.messages
    assert message == {
        "To": HELPER,
        "From": OUR_NUMBER,
        "Body": body,
        "StatusCallback": STATUS_URL,
        "sid": delivery.sid,
    }
    # The Chinese text arrived intact and within two UCS-2 segments.
    assert fake.resource(delivery.sid)["num_segments"] == "2"


async def test_sms_without_callback_sends_none(fake: FakeTwilio, notifier: TwilioNotifier) -> None:
    await notifier.send_sms(HELPER, "你好")
    assert "StatusCallback" not in fake.messages[0]


async def test_call_is_created_with_twiml_url_and_status_callback(
    fake: FakeTwilio, notifier: TwilioNotifier
) -> None:
    speech = render("sos_alert", "voice", SOS_PARAMS)

    delivery = await notifier.place_call(
        HELPER, speech=speech, twiml_url=TWIML_URL, status_callback=STATUS_URL
    )

    assert delivery.sid.startswith("CA")
    assert len(delivery.sid) == 34
    assert delivery.status == "queued"
    [call] = fake.calls
    assert call["To"] == HELPER
    assert call["From"] == OUR_NUMBER
    assert call["Url"] == TWIML_URL
    assert call["Method"] == "POST"
    assert call["StatusCallback"] == STATUS_URL
    assert call["StatusCallbackMethod"] == "POST"
    assert call["sid"] == delivery.sid
    assert fake.messages == []


async def test_requests_go_to_the_configured_account_path(
    fake: FakeTwilio, notifier: TwilioNotifier
) -> None:
    await notifier.send_sms(HELPER, "x")
    await notifier.place_call(HELPER, speech="x", twiml_url=TWIML_URL)
    paths = [(r.method, r.path, r.status) for r in fake.requests]
    assert paths == [
        ("POST", f"/2010-04-01/Accounts/{fake.account_sid}/Messages.json", 201),
        ("POST", f"/2010-04-01/Accounts/{fake.account_sid}/Calls.json", 201),
    ]


async def test_is_a_notifier(notifier: TwilioNotifier) -> None:
    assert isinstance(notifier, Notifier)
    assert notifier.name == "twilio"


async def test_api_base_with_trailing_slash_works(fake: FakeTwilio) -> None:
    notifier = TwilioNotifier(
        fake.account_sid, fake.auth_token, OUR_NUMBER, api_base=fake.base_url + "/"
    )
    await notifier.send_sms(HELPER, "x")
    assert len(fake.messages) == 1


async def test_twilio_edge_in_the_environment_does_not_redirect_alerts(
    fake: FakeTwilio, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without clearing them, the client would rewrite the host to <host>.sydney.us1.… .
    monkeypatch.setenv("TWILIO_EDGE", "sydney")
    monkeypatch.setenv("TWILIO_REGION", "au1")
    notifier = TwilioNotifier(fake.account_sid, fake.auth_token, OUR_NUMBER, api_base=fake.base_url)
    await notifier.send_sms(HELPER, "x")
    assert len(fake.messages) == 1


@pytest.mark.parametrize("api_base", ["ftp://example.com", "api.twilio.com", ""])
def test_api_base_must_be_http(api_base: str) -> None:
    with pytest.raises(ValueError, match="http"):
        TwilioNotifier("AC1", "t", OUR_NUMBER, api_base=api_base)


# -- failures -------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503, 429])
async def test_outage_and_rate_limit_are_retryable(
    fake: FakeTwilio, notifier: TwilioNotifier, status: int
) -> None:
    fake.fail_next(1, status)

    with pytest.raises(DeliveryError) as info:
        await notifier.send_sms(HELPER, "x")

    assert info.value.retryable is True
    assert info.value.status == str(status)
    assert fake.messages == []
    # Only one failure was asked for: the retry goes through.
    await notifier.send_sms(HELPER, "x")
    assert len(fake.messages) == 1


async def test_fail_next_counts_calls_too(fake: FakeTwilio, notifier: TwilioNotifier) -> None:
    fake.fail_next(2, 500)
    for _ in range(2):
        with pytest.raises(DeliveryError, match="HTTP 500"):
            await notifier.place_call(HELPER, speech="x", twiml_url=TWIML_URL)
    await notifier.place_call(HELPER, speech="x", twiml_url=TWIML_URL)
    assert len(fake.calls) == 1


async def test_invalid_number_is_not_retryable(notifier: TwilioNotifier) -> None:
    with pytest.raises(DeliveryError) as info:
        await notifier.send_sms("13700000001", "x")  # not E.164
    assert info.value.retryable is False
    assert info.value.status == "400"
    assert info.value.code == 21211


async def test_a_forced_400_is_not_retryable(fake: FakeTwilio, notifier: TwilioNotifier) -> None:
    fake.fail_next(1, 400)
    with pytest.raises(DeliveryError) as info:
        await notifier.place_call(HELPER, speech="x", twiml_url=TWIML_URL)
    assert info.value.retryable is False
    assert info.value.status == "400"


async def test_wrong_credentials_are_not_retryable(fake: FakeTwilio) -> None:
    notifier = TwilioNotifier(fake.account_sid, "wrong-token", OUR_NUMBER, api_base=fake.base_url)
    with pytest.raises(DeliveryError) as info:
        await notifier.send_sms(HELPER, "x")
    assert info.value.retryable is False
    assert info.value.status == "401"
    assert info.value.code == 20003
    assert fake.messages == []


async def test_twilio_down_is_retryable(fake: FakeTwilio, notifier: TwilioNotifier) -> None:
    fake.stop()

    with pytest.raises(DeliveryError) as info:
        await notifier.send_sms(HELPER, "x")

    assert info.value.retryable is True
    assert info.value.status is None
    # And when it is back, the same notifier gets through.
    fake.start()
    await notifier.send_sms(HELPER, "x")
    assert len(fake.messages) == 1


async def test_a_slow_twilio_times_out_retryably(fake: FakeTwilio) -> None:
    notifier = TwilioNotifier(
        fake.account_sid, fake.auth_token, OUR_NUMBER, api_base=fake.base_url, timeout=0.2
    )
    fake.set_delay(1.0)

    started = time.monotonic()
    with pytest.raises(DeliveryError, match="no answer within") as info:
        await notifier.send_sms(HELPER, "x")

    assert time.monotonic() - started < 0.9
    assert info.value.retryable is True
    assert info.value.status is None


# -- not blocking the event loop ------------------------------------------------------------


async def test_concurrent_sends_overlap(fake: FakeTwilio, notifier: TwilioNotifier) -> None:
    delay = 0.5
    fake.set_delay(delay)

    started = time.monotonic()
    await asyncio.gather(
        notifier.send_sms(HELPER, "一"),
        notifier.place_call(HELPER, speech="二", twiml_url=TWIML_URL),
    )
    elapsed = time.monotonic() - started

    assert delay <= elapsed < 1.8 * delay
    assert len(fake.messages) == 1
    assert len(fake.calls) == 1


async def test_the_loop_keeps_running_during_a_send(
    fake: FakeTwilio, notifier: TwilioNotifier
) -> None:
    fake.set_delay(0.4)
    gaps: list[float] = []

    async def ticker(stop: asyncio.Event) -> None:
        last = time.monotonic()
        while not stop.is_set():
            await asyncio.sleep(0.01)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    stop = asyncio.Event()
    tick = asyncio.create_task(ticker(stop))
    await notifier.send_sms(HELPER, "x")
    stop.set()
    await tick

    assert len(gaps) >= 10
    assert max(gaps) < 0.2


# -- what Twilio posts back ------------------------------------------------------------------


async def test_what_twilio_posts_back_reads_as_a_reply_and_as_status_reports(
    fake: FakeTwilio, notifier: TwilioNotifier
) -> None:
    sms = await notifier.send_sms(HELPER, "x")
    call = await notifier.place_call(HELPER, speech="x", twiml_url=TWIML_URL)

    reply = InboundSms.parse(fake.inbound_sms_params(HELPER, "A7K2"))
    assert reply == InboundSms(HELPER, "A7K2")

    answered = StatusReport.parse(fake.call_status_params(fake.calls[0], "completed", duration=42))
    assert answered == StatusReport(call.sid, "completed", None)
    undelivered = fake.message_status_params(fake.messages[0], "undelivered", error_code=30003)
    assert StatusReport.parse(undelivered) == StatusReport(sms.sid, "undelivered", "30003")

    assert fake.gather_params(fake.calls[0], "1")["Digits"] == "1"
    with pytest.raises(ValueError, match="nothing was sent"):
        fake.inbound_sms_params("+8613900000009", "1")
