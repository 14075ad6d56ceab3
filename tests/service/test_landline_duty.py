"""A number that cannot take an SMS (the town's landline duty line) is called, never texted:
in an escalation step, in the gateway-link notice outside any alert, and it is left out of
the "taken"/"resolved" SMS. Through the real twilio client against the fake Twilio, on both
real databases; the TwiML of the notice call is fetched through the real app, signed."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import select

from alerts.notifiers import TwilioNotifier
from alerts.service import AlertService
from alerts.templates import render
from alerts.types import AlertTrigger, AlertType
from gateway.clock import ManualClock
from gateway.config import EscalationConfig, RulesConfig, load_settings
from gateway.register.apply import apply_provisioning
from gateway.register.provisioning import parse_provisioning
from gateway.storage.db import Database
from gateway.storage.models import Notification, Person, Town
from tests.fakes.fake_twilio import FakeTwilio
from tests.helpers import is_template, register_yaml
from tests.service.api_support import app_client as in_process_app

HELPER = "+8613700000001"
TEAM = ("+8613900000001", "+8613900000002")
DUTY = "+862376000000"  # the register's 023-76000000, as stored
PUBLIC = "http://gw.example"
SECRET = "s" * 32
LINK = {"gateway": "homewatch-gateway", "since": "03:10"}

#: The SPEC's chains: emergency helper 3 m, team 5 m, duty line 10 m (repeating), each
#: step [sms, voice].
CHAIN = EscalationConfig()


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    with FakeTwilio() as fake:
        yield fake


@pytest.fixture
async def person_id(db: Database, clock: ManualClock, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setenv("HW_TEST_ADMIN_PASSWORD", "correct-horse-battery")
    await apply_provisioning(db, parse_provisioning(register_yaml("ll", persons=1)), clock.now())
    async with db.session() as session:
        return (await session.execute(select(Person.id))).scalars().one()


@pytest.fixture
def service(db: Database, clock: ManualClock, twilio: FakeTwilio) -> AlertService:
    notifier = TwilioNotifier(
        twilio.account_sid, twilio.auth_token, "+15005550006", api_base=twilio.base_url
    )
    return AlertService(
        db,
        clock,
        notifier,
        escalation=CHAIN,
        rules=RulesConfig(),
        public_url=PUBLIC,
        timezone=ZoneInfo("Asia/Shanghai"),
        worker_id="w1",
    )


@pytest.fixture
async def app_client(
    db: Database, clock: ManualClock, service: AlertService, twilio: FakeTwilio, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    """The real app in-process, verifying Twilio's signatures against PUBLIC."""
    settings = load_settings(
        database_url=db.url,
        secret_key=SECRET,
        data_dir=str(tmp_path / "data"),
        public_url=PUBLIC,
        twilio_auth_token=twilio.auth_token,
    )
    async with in_process_app(
        settings, db, clock, service, secret_key=SECRET, base_url=PUBLIC
    ) as client:
        yield client


async def _rows(db: Database, phone: str) -> list[tuple[str, str]]:
    """(purpose, channel) of every notification queued to ``phone``, in order."""
    async with db.session() as session:
        rows = await session.execute(
            select(Notification.purpose, Notification.channel)
            .where(Notification.recipient_phone_bidx == phone)
            .order_by(Notification.id)
        )
        return [(purpose, channel) for purpose, channel in rows.all()]


async def test_an_sos_reaching_the_duty_step_calls_the_landline_once_and_texts_no_one_there(
    db: Database,
    clock: ManualClock,
    service: AlertService,
    twilio: FakeTwilio,
    person_id: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await service.raise_alert(AlertTrigger(AlertType.SOS, person_id, clock.now()))
    await service.tick()
    clock.advance(timedelta(minutes=3))
    await service.tick()
    with caplog.at_level("INFO", logger="alerts.escalation"):
        clock.advance(timedelta(minutes=5))
        await service.tick()
    assert any("cannot take SMS" in r.getMessage() for r in caplog.records)

    assert await _rows(db, DUTY) == [("alert", "voice")], "one call, no SMS row"
    assert [c["To"] for c in twilio.calls].count(DUTY) == 1
    assert not [m for m in twilio.messages if m["To"] == DUTY]
    for phone in (HELPER, *TEAM):  # mobiles: both channels, as configured
        assert await _rows(db, phone) == [("alert", "sms"), ("alert", "voice")], phone

    clock.advance(timedelta(minutes=10))
    await service.tick()
    assert await _rows(db, DUTY) == [("alert", "voice")] * 2, "the repeat is a call too"


async def test_taken_and_resolved_go_to_every_mobile_notified_but_not_the_landline(
    db: Database, clock: ManualClock, service: AlertService, twilio: FakeTwilio, person_id: int
) -> None:
    alert, _ = await service.raise_alert(AlertTrigger(AlertType.SOS, person_id, clock.now()))
    for wait in (0, 3, 5):
        clock.advance(timedelta(minutes=wait))
        await service.tick()
    assert await _rows(db, DUTY) == [("alert", "voice")]

    assert await service.acknowledge_by_sms(TEAM[0], "1") is not None
    await service.tick()
    await service.resolve(alert.id, "王五")
    await service.tick()

    for phone in (HELPER, TEAM[1]):
        texts = [m["Body"] for m in twilio.messages if m["To"] == phone]
        assert any(is_template(t, "taken") for t in texts), phone
        assert any(is_template(t, "resolved") for t in texts), phone
    assert await _rows(db, DUTY) == [("alert", "voice")], "no 'taken'/'resolved' for a landline"
    assert not [m for m in twilio.messages if m["To"] == DUTY]


async def test_a_landline_duty_line_is_called_when_the_gateway_loses_its_broker(
    db: Database,
    service: AlertService,
    twilio: FakeTwilio,
    person_id: int,
    app_client: httpx.AsyncClient,
) -> None:
    assert await service.notify_town_duty("gateway_link", LINK)
    await service.send_pending()

    assert not twilio.messages, "an SMS to a landline would be refused: it would never hear"
    [call] = twilio.calls
    assert call["To"] == DUTY and call["Url"].startswith(f"{PUBLIC}/twilio/voice/")
    assert await _rows(db, DUTY) == [("system", "voice")]

    answered = await twilio.post_signed(call["Url"], twilio.voice_params(call), client=app_client)
    assert answered.status_code == 200
    twiml = ET.fromstring(answered.text)
    assert [say.text for say in twiml.iter("Say")] == [render("gateway_link", "voice", LINK)]
    assert all(say.get("language") == "zh-CN" for say in twiml.iter("Say"))
    assert not list(twiml.iter("Gather")), "nothing to acknowledge: no key is offered"
    assert twiml.find("Hangup") is not None

    # A key press replayed at the gather URL acknowledges nothing and says nothing.
    pressed = await twilio.post_signed(
        call["Url"] + "/gather", twilio.gather_params(call, "1"), client=app_client
    )
    assert pressed.status_code == 200
    assert not list(ET.fromstring(pressed.text).iter("Say"))


async def test_a_mobile_duty_line_still_gets_the_gateway_link_by_sms(
    db: Database, service: AlertService, twilio: FakeTwilio, person_id: int
) -> None:
    async with db.session() as session, session.begin():
        town = (await session.execute(select(Town))).scalar_one()
        town.duty_phone = "+8613800000009"
    assert await service.notify_town_duty("gateway_link_restored", LINK)
    await service.send_pending()

    assert twilio.calls == []
    [sms] = twilio.messages
    assert sms["To"] == "+8613800000009"
    assert sms["Body"] == render("gateway_link_restored", "sms", LINK)


async def test_a_landline_whose_calls_fail_is_not_texted_as_the_fallback(
    db: Database, clock: ManualClock, service: AlertService, twilio: FakeTwilio, person_id: int
) -> None:
    await service.raise_alert(AlertTrigger(AlertType.SOS, person_id, clock.now()))
    for wait in (0, 3, 5):
        clock.advance(timedelta(minutes=wait))
        await service.tick()
    for _attempt in range(3):  # the call and both retries go unanswered
        [*_, call] = [c for c in twilio.calls if c["To"] == DUTY]
        assert await service.status_callback(call["sid"], "no-answer")
        clock.advance(timedelta(seconds=61))
        await service.send_pending()
    assert await _rows(db, DUTY) == [("alert", "voice")] * 3, "no SMS fallback to a landline"
    assert not [m for m in twilio.messages if m["To"] == DUTY]
