"""AliyunSms / AliyunVoice: the official SDKs against the local fake Aliyun, and how each
kind of answer becomes a delivery or a DeliveryError (retry or not)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from alerts.channels.aliyun import AliyunAccount, AliyunSms, AliyunVoice
from alerts.channels.base import Outgoing
from alerts.notifiers.base import DeliveryError
from tests.fakes.fake_aliyun import FakeAliyun
from tests.services import free_port

PARAMS = {
    "name": "张三",
    "village": "坝芒村",
    "address": "坝芒村3组12号",
    "time": "08:15",
    "phone": "13600000001",
    "code": "A7K2",
}


@pytest.fixture
def fake() -> Iterator[FakeAliyun]:
    with FakeAliyun(sign_name="隘口镇民政办") as server:
        yield server


def _account(fake: FakeAliyun, secret: str | None = None) -> AliyunAccount:
    return AliyunAccount(
        fake.access_key_id, secret or fake.access_key_secret, protocol="http", timeout_ms=3000
    )


def _sms(fake: FakeAliyun, **account: str) -> AliyunSms:
    return AliyunSms(
        _account(fake, **account), fake.endpoint, "隘口镇民政办", {"sos_alert": "SMS_100001"}
    )


def _message(channel: str = "sms", to: str = "+8613700000001", role: str = "helper") -> Outgoing:
    return Outgoing(41, to, channel, "sos_alert", PARAMS, "body", "tok", role, "李四", alert_id=5)


async def test_send_sms_carries_sign_template_params_and_out_id(fake: FakeAliyun) -> None:
    delivery = await _sms(fake).send(_message())
    [sms] = fake.sms
    assert delivery.sid == sms["BizId"] and delivery.status == "sent"
    assert sms["PhoneNumbers"] == "13700000001"
    assert sms["SignName"] == "隘口镇民政办" and sms["TemplateCode"] == "SMS_100001"
    assert json.loads(sms["TemplateParam"]) == {
        "village": "坝芒村",
        "name": "张三",
        "time": "08:15",
        "address": "坝芒村3组12号",
        "code": "A7K2",
    }
    assert sms["OutId"] == "41"


async def test_ivr_call_plays_the_template_and_key_1_the_confirmation(fake: FakeAliyun) -> None:
    voice = AliyunVoice(
        _account(fake),
        fake.endpoint,
        "02376000000",
        {"sos_alert": "TTS_1", "ack_confirm": "TTS_2", "resident_ok": "TTS_3"},
        play_times=3,
        key_timeout_ms=8000,
    )
    delivery = await voice.send(_message("voice"))
    await voice.send(_message("voice", role="resident"))
    helper, resident = fake.calls
    assert delivery.sid == helper["CallId"]
    assert helper["CalledNumber"] == "13700000001" and helper["CalledShowNumber"] == "02376000000"
    assert helper["StartCode"] == "TTS_1" and helper["OutId"] == "41"
    assert json.loads(helper["StartTtsParams"])["address"] == "坝芒村3组12号"
    assert helper["MenuKeyMap.1.Key"] == "1" and helper["MenuKeyMap.1.Code"] == "TTS_2"
    assert (helper["PlayTimes"], helper["Timeout"]) == ("3", "8000")
    assert resident["MenuKeyMap.1.Code"] == "TTS_3", "a resident's key 1 means 'I am fine'"


async def test_a_notice_call_to_a_landline_duty_line_offers_no_acknowledgement(
    fake: FakeAliyun,
) -> None:
    params = {"gateway": "gw-1", "since": "03:10"}
    notice = Outgoing(
        43, "+862376000000", "voice", "gateway_link", params, "b", "t", "town_duty", "值班", None
    )
    voice = AliyunVoice(
        _account(fake),
        fake.endpoint,
        "02376000000",
        {"sos_alert": "TTS_1", "ack_confirm": "TTS_2", "gateway_link": "TTS_9"},
    )
    await voice.send(notice)
    [call] = fake.calls
    # A landline keeps its trunk 0: IvrCall refuses "2376000000" as no number at all.
    assert call["CalledNumber"] == "02376000000" and call["StartCode"] == "TTS_9"
    assert json.loads(call["StartTtsParams"]) == params
    # IvrCall requires a key map: key 1 plays the notice again, never "已确认".
    assert call["MenuKeyMap.1.Code"] == "TTS_9"
    assert json.loads(call["MenuKeyMap.1.TtsParams"]) == params

    unfiled = AliyunVoice(
        _account(fake), fake.endpoint, "02376000000", {"sos_alert": "TTS_1", "ack_confirm": "TTS_2"}
    )
    with pytest.raises(DeliveryError, match=r"aliyun\.voice\.templates\.gateway_link") as caught:
        await unfiled.send(notice)
    assert not caught.value.retryable and len(fake.calls) == 1


async def test_a_wrong_secret_is_refused_by_signature_and_not_retried(fake: FakeAliyun) -> None:
    with pytest.raises(DeliveryError) as caught:
        await _sms(fake, secret="not-the-secret").send(_message())
    assert not caught.value.retryable and caught.value.status == "400"
    assert fake.refused == [("SendSms", "SignatureDoesNotMatch")] and fake.sms == []


async def test_an_outage_is_retryable(fake: FakeAliyun) -> None:
    fake.fail_next(status=503, code="ServiceUnavailable")
    with pytest.raises(DeliveryError) as caught:
        await _sms(fake).send(_message())
    assert caught.value.retryable and caught.value.status == "503"
    await _sms(fake).send(_message())
    assert len(fake.sms) == 1


async def test_an_unreachable_endpoint_is_retryable() -> None:
    account = AliyunAccount("id", "secret", protocol="http", timeout_ms=2000)
    sms = AliyunSms(account, f"127.0.0.1:{free_port()}", "签名", {"sos_alert": "SMS_1"})
    with pytest.raises(DeliveryError) as caught:
        await sms.send(_message())
    assert caught.value.retryable


async def test_a_business_refusal_is_not_retried(fake: FakeAliyun) -> None:
    with pytest.raises(DeliveryError) as caught:
        await _sms(fake).send(_message(to="+862376000000"))  # a landline takes no SMS
    assert not caught.value.retryable and "isv.MOBILE_NUMBER_ILLEGAL" in str(caught.value)


async def test_the_carriers_own_flow_control_reads_as_throttled(fake: FakeAliyun) -> None:
    fake.fail_next(status=200, code="isv.BUSINESS_LIMIT_CONTROL")
    with pytest.raises(DeliveryError) as caught:
        await _sms(fake).send(_message())
    assert caught.value.status == "throttled" and not caught.value.retryable


async def test_a_template_without_code_is_refused_before_any_request(fake: FakeAliyun) -> None:
    sms = AliyunSms(_account(fake), fake.endpoint, "隘口镇民政办", {})
    with pytest.raises(DeliveryError, match="no template code"):
        await sms.send(_message())
    assert fake.refused == [] and fake.sms == []


async def test_an_explained_alert_goes_as_the_plain_template_when_no_code_is_filed(
    fake: FakeAliyun,
) -> None:
    """The learned-routine variant is optional for a town's carrier account: without its
    own code the plain inactivity SMS goes, with exactly the plain template's parameters."""
    codes = {"inactivity_alert": "SMS_100003"}
    params = {**PARAMS, "since": "07:10", "usual_by": "07:40", "now": "09:10"}
    plain = AliyunSms(_account(fake), fake.endpoint, "隘口镇民政办", codes)
    explained = AliyunSms(
        _account(fake),
        fake.endpoint,
        "隘口镇民政办",
        {**codes, "inactivity_alert_usual": "SMS_100013"},
    )
    message = Outgoing(
        42, "+8613700000001", "sms", "inactivity_alert_usual", params, "b", "t", "helper", "李四", 5
    )
    await plain.send(message)
    await explained.send(message)
    first, second = fake.sms
    assert first["TemplateCode"] == "SMS_100003"
    assert "usual_by" not in json.loads(first["TemplateParam"])
    assert second["TemplateCode"] == "SMS_100013"
    assert json.loads(second["TemplateParam"])["usual_by"] == "07:40"
