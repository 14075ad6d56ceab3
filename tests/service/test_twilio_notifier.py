"""TwilioNotifier with the real twilio client against the local fake Twilio server.

Also the TwiML for calls, and the fake's webhook helpers (signed as Twilio signs them).
"""

from __future__ import annotations

import asyncio
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from urllib.parse import parse_qsl

import httpx
import pytest

from alerts.notifiers import DeliveryError, Notifier, TwilioNotifier
from alerts.signatures import verify_twilio_signature
from alerts.templates import render
from alerts.twiml import call_twiml, gather_reply_twiml
from tests.fakes.fake_twilio import FakeTwilio, post_signed, post_signed_sync

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


# -- the fake's waiting helpers ---------------------------------------------------------------


async def test_wait_for_async_sees_a_send_in_flight(
    fake: FakeTwilio, notifier: TwilioNotifier
) -> None:
    fake.set_delay(0.1)
    task = asyncio.create_task(notifier.send_sms(HELPER, "x"))
    await fake.wait_for_async(lambda: len(fake.messages) == 1, timeout=3)
    await task


async def test_wait_for_times_out_with_an_assertion(fake: FakeTwilio) -> None:
    with pytest.raises(AssertionError, match="not met"):
        fake.wait_for(lambda: bool(fake.messages), timeout=0.05)
    with pytest.raises(AssertionError, match="not met"):
        await fake.wait_for_async(lambda: bool(fake.calls), timeout=0.05)


def test_wait_for_wakes_on_a_request_from_another_thread(fake: FakeTwilio) -> None:
    notifier = TwilioNotifier(fake.account_sid, fake.auth_token, OUR_NUMBER, api_base=fake.base_url)
    fake.set_delay(0.1)
    thread = threading.Thread(target=lambda: asyncio.run(notifier.send_sms(HELPER, "x")))
    thread.start()
    try:
        fake.wait_for(lambda: len(fake.messages) == 1, timeout=5)
    finally:
        thread.join(timeout=5)


# -- Twilio calling our webhooks ----------------------------------------------------------------


async def test_post_signed_sends_a_signature_the_app_accepts(
    fake: FakeTwilio, notifier: TwilioNotifier
) -> None:
    await notifier.send_sms(HELPER, "x", status_callback=STATUS_URL)
    seen: list[httpx.Request] = []

    def app(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    params = fake.message_status_params(fake.messages[0], "delivered")
    async with httpx.AsyncClient(transport=httpx.MockTransport(app)) as client:
        response = await fake.post_signed(STATUS_URL, params, client=client)

    assert response.status_code == 204
    [request] = seen
    form = dict(parse_qsl(request.content.decode()))
    assert form["MessageStatus"] == "delivered"
    assert form["MessageSid"] == fake.messages[0]["sid"]
    signature = request.headers["X-Twilio-Signature"]
    assert verify_twilio_signature(fake.auth_token, STATUS_URL, form, signature)
    assert not verify_twilio_signature("other", STATUS_URL, form, signature)


async def test_post_signed_can_sign_the_public_url_while_sending_elsewhere() -> None:
    seen: list[httpx.Request] = []

    def app(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200)

    params = {"From": HELPER, "Body": "1"}
    async with httpx.AsyncClient(transport=httpx.MockTransport(app)) as client:
        await post_signed(
            "http://testserver/twilio/sms",
            params,
            "tok",
            sign_url=f"{PUBLIC}/twilio/sms",
            client=client,
        )
    signature = seen[0].headers["X-Twilio-Signature"]
    assert verify_twilio_signature("tok", f"{PUBLIC}/twilio/sms", params, signature)
    assert not verify_twilio_signature("tok", "http://testserver/twilio/sms", params, signature)


def test_post_signed_sync_signs_too() -> None:
    seen: list[httpx.Request] = []

    def app(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200)

    params = {"Digits": "1"}
    with httpx.Client(transport=httpx.MockTransport(app)) as client:
        post_signed_sync(f"{PUBLIC}/twilio/voice/t/gather", params, "tok", client=client)
    signature = seen[0].headers["X-Twilio-Signature"]
    assert verify_twilio_signature("tok", f"{PUBLIC}/twilio/voice/t/gather", params, signature)


async def test_webhook_parameter_builders_use_twilios_field_names(
    fake: FakeTwilio, notifier: TwilioNotifier
) -> None:
    await notifier.send_sms(HELPER, "x")
    await notifier.place_call(HELPER, speech="x", twiml_url=TWIML_URL)
    call = fake.calls[0]

    inbound = fake.inbound_sms_params(HELPER, "A7K2")
    assert inbound["From"] == HELPER
    assert inbound["To"] == OUR_NUMBER
    assert inbound["Body"] == "A7K2"
    assert inbound["MessageSid"].startswith("SM")

    gather = fake.gather_params(call, "1")
    assert gather["CallSid"] == call["sid"]
    assert gather["Digits"] == "1"
    assert gather["To"] == HELPER

    status = fake.call_status_params(call, "completed", duration=42)
    assert status["CallStatus"] == "completed"
    assert status["CallDuration"] == "42"

    failed = fake.message_status_params(fake.messages[0], "undelivered", error_code=30003)
    assert failed["ErrorCode"] == "30003"

    with pytest.raises(ValueError, match="nothing was sent"):
        fake.inbound_sms_params("+8613900000009", "1")


# -- TwiML ----------------------------------------------------------------------------------


def _parse(xml: str) -> ET.Element:
    return ET.fromstring(xml.encode())


def test_call_twiml_says_it_twice_in_mandarin_inside_a_one_key_gather() -> None:
    speech = render("sos_alert", "voice", SOS_PARAMS)
    action = f"{TWIML_URL}/gather"

    root = _parse(call_twiml(speech, action))

    assert root.tag == "Response"
    gathers = root.findall("Gather")
    assert len(gathers) == 2
    for gather in gathers:
        assert gather.attrib == {
            "numDigits": "1",
            "action": action,
            "method": "POST",
            "timeout": "8",
        }
        [say] = list(gather)
        assert say.tag == "Say"
        assert say.attrib["language"] == "zh-CN"
        assert say.text == speech
    assert [child.tag for child in root] == ["Gather", "Gather", "Hangup"]


def test_call_twiml_repeat_and_voice() -> None:
    root = _parse(call_twiml("收到请按1", "https://x/g", repeat=3, voice="Polly.Zhiyu"))
    says = root.findall("Gather/Say")
    assert len(says) == 3
    assert {say.attrib["voice"] for say in says} == {"Polly.Zhiyu"}
    with pytest.raises(ValueError, match="repeat"):
        call_twiml("x", "https://x/g", repeat=0)


def test_call_twiml_escapes_xml() -> None:
    xml = call_twiml("张三<&>", "https://x/g?a=1&b=2")
    root = _parse(xml)
    assert root.find("Gather/Say") is not None
    assert root.findall("Gather")[0].attrib["action"] == "https://x/g?a=1&b=2"
    assert "<&>" not in xml


def test_gather_reply_says_and_hangs_up() -> None:
    speech = render("ack_confirm", "voice", {})
    root = _parse(gather_reply_twiml(speech))
    assert [child.tag for child in root] == ["Say", "Hangup"]
    say = root.find("Say")
    assert say is not None
    assert say.attrib["language"] == "zh-CN"
    assert say.text == speech
