"""Twilio's side of an alert call and its webhooks, without a network: the TwiML we answer
with, the signature check over the public URL, and reading what the webhooks carry."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from urllib.parse import parse_qsl

import httpx
import pytest

from alerts.channels.twilio.twiml import call_twiml, say_and_hang_up_twiml
from alerts.channels.twilio.webhooks import InboundSms, StatusReport, TwilioWebhooks
from alerts.templates import render
from gateway.storage.models import Notification
from tests.fakes.fake_twilio import post_signed, post_signed_sync

PUBLIC = "https://homewatch.example.cn"
TWIML_URL = f"{PUBLIC}/twilio/voice/tok123"
HELPER = "+8613700000001"
SOS_PARAMS = {
    "name": "张三",
    "village": "坝芒村",
    "address": "坝芒村3组12号",
    "time": "08:15",
    "phone": "+8613600000001",
    "code": "A7K2",
}


# -- signatures over the public URL -----------------------------------------------------------


async def test_a_post_signed_for_the_public_url_passes_however_it_reached_us() -> None:
    seen: list[httpx.Request] = []

    def app(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200)

    params = {"From": HELPER, "Body": "1"}
    async with httpx.AsyncClient(transport=httpx.MockTransport(app)) as client:
        await post_signed(
            "http://testserver/twilio/sms?x=1",
            params,
            "tok",
            sign_url=f"{PUBLIC}/twilio/sms?x=1",
            client=client,
        )
    [request] = seen
    form = dict(parse_qsl(request.content.decode()))
    signature = request.headers["X-Twilio-Signature"]
    assert TwilioWebhooks("tok", PUBLIC).verified("/twilio/sms", "x=1", form, signature)
    assert not TwilioWebhooks("tok", PUBLIC).verified("/twilio/sms", "", form, signature)
    assert not TwilioWebhooks("other", PUBLIC).verified("/twilio/sms", "x=1", form, signature)
    # Signed for where it was sent rather than the public URL: refused.
    assert not TwilioWebhooks("tok", "http://testserver").verified(
        "/twilio/sms", "x=1", form, signature
    )


def test_without_an_auth_token_nothing_passes() -> None:
    seen: list[httpx.Request] = []

    def app(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200)

    params = {"Digits": "1"}
    with httpx.Client(transport=httpx.MockTransport(app)) as client:
        post_signed_sync(f"{PUBLIC}/twilio/voice/t/gather", params, "", client=client)
    signature = seen[0].headers["X-Twilio-Signature"]
    assert not TwilioWebhooks(None, PUBLIC).verified(
        "/twilio/voice/t/gather", "", params, signature
    )
    assert not TwilioWebhooks("tok", PUBLIC).verified("/twilio/voice/t/gather", "", params, None)


# -- reading the webhooks ---------------------------------------------------------------------


def test_an_sms_from_something_that_is_not_a_phone_is_no_reply() -> None:
    assert InboundSms.parse({"From": "not-a-number", "Body": "1"}) is None
    assert InboundSms.parse({"Body": "1"}) is None
    assert InboundSms.parse({"From": "+86 137 0000 0001", "Body": " 1 "}) == InboundSms(
        HELPER, " 1 "
    )


def test_a_status_report_needs_a_sid_and_a_status() -> None:
    assert StatusReport.parse({"MessageSid": "SM1"}) is None
    assert StatusReport.parse({"CallStatus": "busy"}) is None
    assert StatusReport.parse({"CallSid": "CA1", "CallStatus": "busy"}) == StatusReport(
        "CA1", "busy", None
    )


def _call_row(role: str) -> Notification:
    return Notification(
        alert_id=7,
        token="tok123",
        body="收到请按1",
        recipient_role=role,
        params=SOS_PARAMS,
    )


def test_a_notice_outside_any_alert_is_spoken_without_listening_for_a_key() -> None:
    twilio = TwilioWebhooks("tok", PUBLIC + "/")
    speech = render("gateway_link", "voice", {"gateway": "gw-1", "since": "03:10"})
    row = Notification(
        alert_id=None, token="tok123", body=speech, recipient_role="town_duty", params={}
    )
    answered = _parse(twilio.call(row))
    assert not list(answered.iter("Gather"))
    assert [say.text for say in answered.iter("Say")] == [speech]
    assert answered.find("Hangup") is not None
    pressed = _parse(twilio.after_key(row, taken=False))
    assert not list(pressed.iter("Gather")) and not list(pressed.iter("Say"))
    assert pressed.find("Hangup") is not None


def test_a_key_that_took_the_alert_is_confirmed_and_any_other_hears_it_again() -> None:
    twilio = TwilioWebhooks("tok", PUBLIC + "/")
    confirmed = _parse(twilio.after_key(_call_row("helper"), taken=True))
    assert confirmed.findtext("Say") == render("ack_confirm", "voice", SOS_PARAMS)
    resident = _parse(twilio.after_key(_call_row("resident"), taken=True))
    assert resident.findtext("Say") == render("resident_ok", "voice", SOS_PARAMS)
    again = _parse(twilio.after_key(_call_row("helper"), taken=False))
    [gather] = again.findall("Gather")
    assert gather.attrib["action"] == f"{TWIML_URL}/gather"
    assert _parse(twilio.call(_call_row("helper"))).findall("Gather")[0].attrib["action"] == (
        f"{TWIML_URL}/gather"
    )


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
    root = _parse(say_and_hang_up_twiml(speech))
    assert [child.tag for child in root] == ["Say", "Hangup"]
    say = root.find("Say")
    assert say is not None
    assert say.attrib["language"] == "zh-CN"
    assert say.text == speech
