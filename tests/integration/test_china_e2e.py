"""The whole gateway for 隘口镇's phones: an SOS over the real broker reaches the +86 helper
through the real Aliyun SDKs (against the local fake), nothing through Twilio; a reply pushed
by Aliyun to the real HTTP server acknowledges; a wrong receipt token is refused."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import select

from gateway.storage.models import Alert
from tests.fakes.fake_aliyun import FakeAliyun
from tests.fakes.fake_robots import FakeRobots
from tests.fakes.fake_twilio import FakeTwilio
from tests.integration.test_alerts_e2e import Live, _press_sos, running_gateway
from tests.service.china_support import RECEIPT_TOKEN, SMS_CODES, china_settings, fakes
from tests.services import free_port

pytestmark = pytest.mark.integration

HELPER = "13700000001"


@pytest.fixture
async def live_china(
    database_url: str, mqtt_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Live, FakeAliyun, FakeTwilio, FakeRobots]]:
    monkeypatch.setenv("HW_TEST_ADMIN_PASSWORD", "correct-horse-battery")
    port = free_port()

    with fakes() as (aliyun, twilio, robots):
        settings = china_settings(
            database_url,
            aliyun,
            twilio,
            mqtt_url="mqtt://127.0.0.1:1883",
            mqtt_client_id=f"gw-{mqtt_prefix}",
            mqtt_topic_prefix=mqtt_prefix,
            api_port=port,
            public_url=f"http://127.0.0.1:{port}",
        )
        async with running_gateway(settings, mqtt_prefix) as live:
            yield live, aliyun, twilio, robots


async def test_sos_reaches_the_china_helper_and_an_aliyun_reply_acknowledges(
    live_china: tuple[Live, FakeAliyun, FakeTwilio, FakeRobots],
) -> None:
    live, aliyun, twilio, _ = live_china
    await _press_sos(live.prefix, "cn-1")

    def alerted() -> bool:
        return any(m["TemplateCode"] == SMS_CODES["sos_alert"] for m in aliyun.sms) and any(
            c["CalledNumber"] == HELPER for c in aliyun.calls
        )

    # (The helper may also get this week's visit digest, by Aliyun too.)
    await aliyun.wait_for_async(alerted, 10)
    [sos] = [m for m in aliyun.sms if m["TemplateCode"] == SMS_CODES["sos_alert"]]
    assert sos["PhoneNumbers"] == HELPER
    assert twilio.messages == [] and twilio.calls == []

    base = f"{live.public_url}/receipts/aliyun"
    async with httpx.AsyncClient() as client:
        refused = await client.post(f"{base}/not-the-token/sms-up", json=aliyun.sms_up(HELPER, "1"))
        assert refused.status_code == 403
        answer = await client.post(
            f"{base}/{RECEIPT_TOKEN}/sms-up", json=aliyun.sms_up(HELPER, "1")
        )
    assert answer.status_code == 200 and answer.json() == {"code": 0, "msg": "成功"}
    async with live.gateway.db.session() as session:
        alert = (await session.execute(select(Alert))).scalar_one()
    assert alert.status == "acknowledged" and alert.acknowledged_by == "李四"

    def confirmed() -> bool:
        return any(
            m["PhoneNumbers"] == HELPER and m["TemplateCode"] == SMS_CODES["ack_confirm"]
            for m in aliyun.sms
        )

    await aliyun.wait_for_async(confirmed, 10)
