"""SPEC §11 end to end inside one process: +86 recipients through Aliyun's official SDKs
(against a local fake that checks their signatures), the village team's DingTalk robot
(signed), receipts pushed to the real API app — on both databases, with a manual clock."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import func, select

from alerts.channels.carrier_texts import carrier_render
from alerts.types import AlertStatus, AlertTrigger, AlertType
from gateway.clock import ManualClock
from gateway.storage.db import Database
from gateway.storage.models import Alert, ProviderReceipt
from tests.fakes.fake_aliyun import carrier_would_block
from tests.service.china_support import SHOW_NUMBER, SIGN_NAME, SMS_CODES, TTS_CODES, China, china

HELPER = "13700000001"  # 李四, as Aliyun writes a mainland number
TEAM = ("13900000001", "13900000002")  # 王五, 赵六


async def _alert(cn: China, kind: AlertType, person: int = 0) -> Alert:
    alert, new = await cn.alerts.raise_alert(
        AlertTrigger(kind, cn.person_ids[person], cn.clock.now())
    )
    assert new
    return alert


async def _sos_to_the_team(cn: China) -> Alert:
    """An SOS nobody answers for 3 minutes: the helper, then the village team, are told."""
    alert = await _alert(cn, AlertType.SOS)
    await cn.alerts.tick()
    cn.clock.advance(timedelta(minutes=3))
    await cn.alerts.tick()
    return alert


async def _status(cn: China, alert_id: int) -> Alert:
    async with cn.db.session() as session:
        alert = await session.get(Alert, alert_id)
        assert alert is not None
        return alert


async def test_sos_reaches_the_china_helper_by_aliyun_sms_and_ivr_and_nothing_by_twilio(
    db: Database, clock: ManualClock
) -> None:
    async with china(db, clock) as cn:
        alert = await _alert(cn, AlertType.SOS)
        await cn.alerts.tick()

        [sms] = cn.sms_to(HELPER)
        assert sms["SignName"] == SIGN_NAME
        assert sms["TemplateCode"] == SMS_CODES["sos_alert"]
        variables = json.loads(sms["TemplateParam"])
        assert variables["name"] == "老人0" and variables["code"] == alert.code
        assert "phone" not in variables, "no phone number in a text to a mainland phone"
        [call] = cn.calls_to(HELPER)
        assert call["CalledShowNumber"] == SHOW_NUMBER
        assert call["StartCode"] == TTS_CODES["sos_alert"]
        assert json.loads(call["StartTtsParams"])["name"] == "老人0"
        assert call["MenuKeyMap.1.Key"] == "1"
        assert call["MenuKeyMap.1.Code"] == TTS_CODES["ack_confirm"]
        assert cn.twilio.messages == [] and cn.twilio.calls == [], "nothing through Twilio"

        rows = await cn.rows(alert_id=alert.id)
        by_channel = {row.channel: row for row in rows}
        assert by_channel["sms"].provider == "aliyun_sms"
        assert by_channel["sms"].sid == sms["BizId"]
        assert sms["OutId"] == str(by_channel["sms"].id)
        assert "本人电话" not in by_channel["sms"].body, "the row shows what was sent"
        assert by_channel["sms"].body.endswith(f"回复1接单，或回复{alert.code}。")
        assert by_channel["voice"].provider == "aliyun_voice"
        assert by_channel["voice"].sid == call["CallId"]
        assert not cn.robots.posts, "the helper step does not post to the team robot"


async def test_team_step_also_reaches_the_dingtalk_robot_signed(
    db: Database, clock: ManualClock
) -> None:
    async with china(db, clock) as cn:
        alert = await _sos_to_the_team(cn)

        for phone in TEAM:
            assert len(cn.sms_to(phone, "sos_alert")) == 1 and len(cn.calls_to(phone)) == 1
        [post] = cn.robots.posts
        assert post.provider == "dingtalk" and post.signed
        assert alert.code in post.text and "老人0" in post.text
        assert cn.robots.refused == []
        [robot_row] = await cn.rows(alert_id=alert.id, channel="robot")
        assert robot_row.provider == "dingtalk" and robot_row.status == "delivered"


async def test_uplink_1_from_a_team_member_acknowledges_and_the_others_get_taken(
    db: Database, clock: ManualClock
) -> None:
    async with china(db, clock) as cn:
        alert = await _sos_to_the_team(cn)

        push = cn.aliyun.sms_up(TEAM[1], "1", sign_name=SIGN_NAME)
        response = await cn.push("sms-up", push)
        assert response.status_code == 200
        assert response.json() == {"code": 0, "msg": "成功"}
        taken = await _status(cn, alert.id)
        assert taken.status == AlertStatus.ACKNOWLEDGED.value and taken.acknowledged_by == "赵六"

        await cn.alerts.tick()
        for phone in (HELPER, TEAM[0]):
            [sms] = cn.sms_to(phone, "taken")
            assert json.loads(sms["TemplateParam"])["taker"] == "赵六"
        assert not cn.sms_to(TEAM[1], "taken"), "the taker gets a confirmation, not 'taken'"
        assert len(cn.sms_to(TEAM[1], "ack_confirm")) == 1
        assert any("赵六已接单" in post.text for post in cn.robots.posts)
        assert cn.twilio.messages == []


async def test_the_same_uplink_pushed_twice_acknowledges_once(
    db: Database, clock: ManualClock
) -> None:
    async with china(db, clock) as cn:
        first = await _alert(cn, AlertType.SOS, person=0)
        second = await _alert(cn, AlertType.SOS, person=1)
        await cn.alerts.tick()
        push = cn.aliyun.sms_up(HELPER, "1")

        assert (await cn.push("sms-up", push)).status_code == 200
        assert (await cn.push("sms-up", push)).status_code == 200  # Aliyun pushes again

        statuses = sorted([(await _status(cn, a.id)).status for a in (first, second)])
        assert statuses == ["acknowledged", "open"], "one reply, one acknowledgement"


async def test_the_alert_code_as_reply_picks_that_alert(db: Database, clock: ManualClock) -> None:
    async with china(db, clock) as cn:
        first = await _alert(cn, AlertType.SOS, person=0)
        second = await _alert(cn, AlertType.SOS, person=1)
        await cn.alerts.tick()
        await cn.push("sms-up", cn.aliyun.sms_up(HELPER, f" {first.code.lower()} "))
        assert (await _status(cn, first.id)).status == "acknowledged"
        assert (await _status(cn, second.id)).status == "open"


async def test_ivr_key_1_acknowledges_a_fall(db: Database, clock: ManualClock) -> None:
    async with china(db, clock) as cn:
        alert = await _alert(cn, AlertType.FALL)
        await cn.alerts.tick()
        [call] = cn.calls_to(HELPER)

        response = await cn.push("voice-report", cn.aliyun.voice_report(call, dtmf="1"))
        assert response.json() == {"code": 0, "msg": "成功"}

        fall = await _status(cn, alert.id)
        assert fall.status == "acknowledged" and fall.acknowledged_by == "李四"
        [voice] = await cn.rows(alert_id=alert.id, channel="voice")
        assert voice.status == "completed"


async def test_wrong_token_receipts_are_refused_and_change_nothing(
    db: Database, clock: ManualClock
) -> None:
    async with china(db, clock) as cn:
        alert = await _alert(cn, AlertType.FALL)
        await cn.alerts.tick()
        [call] = cn.calls_to(HELPER)
        [sms] = cn.sms_to(HELPER)
        before = [(r.id, r.status) for r in await cn.rows()]
        pushes = {
            "sms-up": cn.aliyun.sms_up(HELPER, "1"),
            "voice-report": cn.aliyun.voice_report(call, dtmf="1"),
            "sms-report": cn.aliyun.sms_report(sms),
        }
        for kind, items in pushes.items():
            for token in ("wrong-token", RECEIPT_TOKEN_PREFIX):
                response = await cn.push(kind, items, token=token)
                assert response.status_code == 403, (kind, token)

        assert (await _status(cn, alert.id)).status == "open"
        assert [(r.id, r.status) for r in await cn.rows()] == before
        async with cn.db.session() as session:
            assert (await session.execute(select(func.count(ProviderReceipt.id)))).scalar_one() == 0


RECEIPT_TOKEN_PREFIX = "receipt-token"  # a prefix of the real token is still wrong


async def test_the_fourth_sos_sms_to_one_number_in_a_day_is_throttled_to_voice(
    db: Database, clock: ManualClock
) -> None:
    async with china(db, clock) as cn:
        alerts = []
        for round_ in range(4):
            alert = await _alert(cn, AlertType.SOS, person=round_ % 2)
            await cn.alerts.tick()
            await cn.alerts.resolve(alert.id, "李四", "误按")
            alerts.append(alert)
            clock.advance(timedelta(hours=1))

        assert len(cn.sms_to(HELPER, "sos_alert")) == 3, "the carrier's limit: 3 a day"
        assert len(cn.calls_to(HELPER)) == 4, "the fourth still reaches the helper, by voice"
        [throttled] = await cn.rows(alert_id=alerts[3].id, channel="sms", template="sos_alert")
        assert throttled.status == "throttled" and throttled.sid is None
        assert "3 times" in (throttled.error or "")

        clock.advance(timedelta(hours=21))  # 24 h after the first: one slot frees up
        fifth = await _alert(cn, AlertType.SOS)
        await cn.alerts.tick()
        [row] = await cn.rows(alert_id=fifth.id, channel="sms", template="sos_alert")
        assert row.status == "sent" and len(cn.sms_to(HELPER, "sos_alert")) == 4


async def test_a_throttled_sms_step_without_voice_goes_by_voice(
    db: Database, clock: ManualClock
) -> None:
    async with china(db, clock) as cn:
        for _ in range(4):
            alert = await _alert(cn, AlertType.BATTERY_LOW)  # technical: SMS only
            await cn.alerts.tick()
            await cn.alerts.tick()  # what a failure schedules goes out on the next pass
            await cn.alerts.resolve(alert.id, "李四")
            clock.advance(timedelta(minutes=10))
        assert len(cn.sms_to(HELPER, "battery_low")) == 3
        [call] = cn.calls_to(HELPER)
        assert call["StartCode"] == TTS_CODES["battery_low"]


async def test_no_answer_on_an_aliyun_call_is_retried_like_a_twilio_call(
    db: Database, clock: ManualClock
) -> None:
    async with china(db, clock) as cn:
        alert = await _alert(cn, AlertType.FALL)
        await cn.alerts.tick()
        [call] = cn.calls_to(HELPER)
        report = cn.aliyun.voice_report(call, status_code="200003")  # 用户未接听
        await cn.push("voice-report", report)
        await cn.push("voice-report", report)  # pushed again: still one retry
        first, retry = await cn.rows(alert_id=alert.id, channel="voice")
        assert first.status == "no-answer"
        assert retry.status == "pending" and retry.attempt == 2
        clock.advance(timedelta(seconds=20))
        await cn.alerts.tick()
        assert len(cn.calls_to(HELPER)) == 2
        assert [r.attempt for r in await cn.rows(alert_id=alert.id, channel="voice")] == [1, 2]


async def test_sms_reports_update_the_delivery_status(db: Database, clock: ManualClock) -> None:
    async with china(db, clock) as cn:
        alert = await _alert(cn, AlertType.SOS)
        await cn.alerts.tick()
        [sms] = cn.sms_to(HELPER)
        assert (await cn.push("sms-report", cn.aliyun.sms_report(sms))).status_code == 200
        [row] = await cn.rows(alert_id=alert.id, channel="sms")
        assert row.status == "delivered"


async def test_an_undelivered_sms_report_names_the_carrier_and_its_code(
    db: Database, clock: ManualClock
) -> None:
    async with china(db, clock) as cn:
        alert = await _alert(cn, AlertType.SOS)
        await cn.alerts.tick()
        [sms] = cn.sms_to(HELPER)
        report = cn.aliyun.sms_report(sms, success=False)
        assert (await cn.push("sms-report", report)).status_code == 200
        [row, *_] = await cn.rows(alert_id=alert.id, channel="sms")
        assert row.status == "undelivered"
        assert row.error == "aliyun_sms error MK:0001"


async def test_what_reaches_a_mainland_phone_carries_no_link_or_number(
    db: Database, clock: ManualClock
) -> None:
    async with china(db, clock) as cn:
        await _sos_to_the_team(cn)
        assert cn.aliyun.refused == []
        for sms in cn.aliyun.sms:
            variables = json.loads(sms["TemplateParam"])
            name = next(n for n, c in SMS_CODES.items() if c == sms["TemplateCode"])
            assert not carrier_would_block(carrier_render(name, "sms", variables))


async def test_two_alerts_due_at_once_go_to_one_number_in_one_sms(
    db: Database, clock: ManualClock
) -> None:
    async with china(db, clock) as cn:
        sos = await _alert(cn, AlertType.SOS, person=0)
        fall = await _alert(cn, AlertType.FALL, person=1)
        await cn.alerts.tick()

        [sms] = cn.sms_to(HELPER)
        assert sms["TemplateCode"] == SMS_CODES["alerts_open"]
        variables = json.loads(sms["TemplateParam"])
        assert variables["count"] == "2"
        assert sos.code in variables["alerts"] and fall.code in variables["alerts"]
        assert "老人0" in variables["alerts"] and "老人1" in variables["alerts"]
        assert len(cn.calls_to(HELPER)) == 2, "each alert still gets its call"
        rows = [r for r in await cn.rows(channel="sms") if r.alert_id in (sos.id, fall.id)]
        assert sorted(r.status for r in rows) == ["sent", "sent"]
        assert {r.sid.split("+")[0] for r in rows if r.sid} == {sms["BizId"]}
        assert all(fall.code in r.body and sos.code in r.body for r in rows)

        # Each code in that one SMS takes its own alert.
        await cn.push("sms-up", cn.aliyun.sms_up(HELPER, fall.code))
        assert (await _status(cn, fall.id)).status == "acknowledged"
        assert (await _status(cn, sos.id)).status == "open"
        await cn.push("sms-up", cn.aliyun.sms_up(HELPER, sos.code))
        assert (await _status(cn, sos.id)).status == "acknowledged"
