"""SOS over the real broker → the real twilio client → a local fake Twilio; signed webhooks
through the real HTTP server acknowledge; a kill -9 mid-escalation loses and repeats nothing."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import aiomqtt
import httpx
import pytest
from sqlalchemy import select

from gateway.app import Gateway
from gateway.clock import Clock, ManualClock
from gateway.config import Settings, load_settings
from gateway.register.apply import apply_provisioning
from gateway.register.provisioning import parse_provisioning
from gateway.storage.db import migrate
from gateway.storage.models import Alert, Notification
from tests.conftest import wait_until
from tests.fakes.fake_twilio import FakeTwilio
from tests.helpers import GATEWAY_START, gateway_config, pinned_clock, register_yaml, sms_of
from tests.integration.conftest import ACCOUNT, TOKEN
from tests.services import GatewayProcess, free_port

pytestmark = pytest.mark.integration

HELPER = "+8613700000001"
TEAM = ("+8613900000001", "+8613900000002")


@dataclass
class Live:
    gateway: Gateway
    public_url: str
    prefix: str


def _settings(database_url: str, prefix: str, port: int, twilio: FakeTwilio, **extra: object):  # type: ignore[no-untyped-def]
    return load_settings(
        database_url=database_url,
        mqtt_url="mqtt://127.0.0.1:1883",
        mqtt_client_id=f"gw-{prefix}",
        mqtt_topic_prefix=prefix,
        secret_key="k" * 32,
        api_port=port,
        public_url=f"http://127.0.0.1:{port}",
        twilio_account_sid=ACCOUNT,
        twilio_auth_token=TOKEN,
        twilio_from="+15005550006",
        twilio_api_base=twilio.base_url,
        **gateway_config(**extra),
    )


@contextlib.asynccontextmanager
async def running_gateway(
    settings: Settings,
    prefix: str,
    *,
    watch_poll_seconds: float | None = None,
    clock: Clock | None = None,
    register: str | None = None,
) -> AsyncIterator[Live]:
    """A migrated, provisioned (one resident, unless ``register`` says otherwise) gateway
    running in this loop until exit, on ``clock`` (default: wall-speed time from a pinned
    Wednesday morning, whatever today is); its persistent MQTT session is wiped afterwards."""
    await migrate(settings.database_url)
    clock = clock or pinned_clock()
    gateway = Gateway(settings, "k" * 32, clock=clock)
    if watch_poll_seconds is not None:
        gateway.runner.poll_seconds = watch_poll_seconds
    await apply_provisioning(
        gateway.db,
        parse_provisioning(register or register_yaml(prefix, persons=1)),
        clock.now(),
    )
    stop = asyncio.Event()
    task = asyncio.create_task(gateway.run(stop, run_migrations=False))
    await wait_until(lambda: gateway.ingest.connected, within=10)
    async with httpx.AsyncClient() as client:

        async def api_up() -> bool:
            try:
                return (await client.get(f"{settings.public_url}/healthz")).status_code == 200
            except httpx.HTTPError:
                return False

        await wait_until(api_up, within=10)
    try:
        yield Live(gateway, settings.public_url, prefix)
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)
        async with aiomqtt.Client("127.0.0.1", 1883, identifier=f"gw-{prefix}", clean_session=True):
            pass


@pytest.fixture
async def live(
    database_url: str, mqtt_prefix: str, twilio: FakeTwilio, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Live]:
    monkeypatch.setenv("HW_TEST_ADMIN_PASSWORD", "correct-horse-battery")
    settings = _settings(database_url, mqtt_prefix, free_port(), twilio)
    async with running_gateway(settings, mqtt_prefix) as running:
        yield running


async def _press_sos(prefix: str, press_id: str) -> None:
    async with aiomqtt.Client("127.0.0.1", 1883) as client:
        await client.publish(
            f"{prefix}/homewatch/{prefix}-p0-sos/event",
            json.dumps({"type": "sos", "id": press_id}),
            qos=1,
        )


async def test_sos_reaches_the_helper_and_a_signed_sms_reply_acknowledges(
    live: Live, twilio: FakeTwilio
) -> None:
    await _press_sos(live.prefix, "p-1")
    await twilio.wait_for_async(
        lambda: bool(sms_of(twilio.messages, "sos_alert")) and len(twilio.calls) >= 1, 10
    )
    [sms] = sms_of(twilio.messages, "sos_alert")
    assert sms["To"] == HELPER and "老人0" in sms["Body"] and "回复1" in sms["Body"]
    [call] = twilio.calls
    assert call["To"] == HELPER and call["Url"].startswith(f"{live.public_url}/twilio/voice/")

    async with httpx.AsyncClient() as client:
        twiml = await twilio.post_signed(call["Url"], twilio.voice_params(call), client=client)
        assert twiml.status_code == 200
        assert 'language="zh-CN"' in twiml.text and 'numDigits="1"' in twiml.text

        forged = await client.post(
            f"{live.public_url}/twilio/sms",
            data=twilio.inbound_sms_params(HELPER, "1"),
            headers={"X-Twilio-Signature": "bm90LWEtc2lnbmF0dXJl"},
        )
        assert forged.status_code == 403
        unsigned = await client.post(
            f"{live.public_url}/twilio/sms", data=twilio.inbound_sms_params(HELPER, "1")
        )
        assert unsigned.status_code == 403

        token = (
            await client.post(
                f"{live.public_url}/api/v1/auth/token",
                data={"username": "admin", "password": "correct-horse-battery"},
            )
        ).json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        alerts = (await client.get(f"{live.public_url}/api/v1/alerts", headers=auth)).json()
        assert [a["status"] for a in alerts] == ["open"], "a forged reply changes nothing"

        reply = await twilio.post_signed(
            f"{live.public_url}/twilio/sms", twilio.inbound_sms_params(HELPER, "1"), client=client
        )
        assert reply.status_code == 200
        alert_url = f"{live.public_url}/api/v1/alerts/{alerts[0]['id']}"
        detail = (await client.get(alert_url, headers=auth)).json()
    assert detail["status"] == "acknowledged" and detail["acknowledged_by"] == "李四"
    sent = [n for n in detail["notifications"] if n["purpose"] == "alert"]
    assert {(n["channel"], n["recipient_phone"]) for n in sent} == {
        ("sms", HELPER),
        ("voice", HELPER),
    }
    assert all(n["sid"] for n in sent)
    await twilio.wait_for_async(lambda: bool(sms_of(twilio.messages, "ack_confirm", to=HELPER)), 10)


async def test_a_digest_due_at_start_and_an_sos_are_told_apart(
    database_url: str, mqtt_prefix: str, twilio: FakeTwilio, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A gateway started after the digest's weekday and hour still sends the week's visit
    digest (issue #10): the helper's phone gets both, and a reply acknowledges the alert.
    Settle and spread are shortened so the digest goes out within the test."""
    monkeypatch.setenv("HW_TEST_ADMIN_PASSWORD", "correct-horse-battery")
    # The pinned Wednesday 10:00 is two days after the Monday 08:00 digest.
    digest = {"weekday": 1, "hour": 8, "settle": "0s", "spread": "1s"}
    settings = _settings(database_url, mqtt_prefix, free_port(), twilio, digest=digest)
    async with running_gateway(settings, mqtt_prefix) as live:
        await twilio.wait_for_async(lambda: bool(sms_of(twilio.messages, "visit_digest")), 10)
        await _press_sos(live.prefix, "d-1")
        await twilio.wait_for_async(lambda: bool(sms_of(twilio.messages, "sos_alert")), 10)
        [digest_sms] = sms_of(twilio.messages, "visit_digest", to=HELPER)
        assert "6月8日至14日" in digest_sms["Body"] and "老人0" in digest_sms["Body"]
        [alert_sms] = sms_of(twilio.messages, "sos_alert", to=HELPER)
        assert "紧急求助" in alert_sms["Body"]
        async with httpx.AsyncClient() as client:
            reply = await twilio.post_signed(
                f"{live.public_url}/twilio/sms",
                twilio.inbound_sms_params(HELPER, "1"),
                client=client,
            )
        assert reply.status_code == 200
        await twilio.wait_for_async(
            lambda: bool(sms_of(twilio.messages, "ack_confirm", to=HELPER)), 10
        )


async def test_key_1_in_the_call_acknowledges_and_tells_the_others(
    live: Live, twilio: FakeTwilio
) -> None:
    await _press_sos(live.prefix, "p-2")
    await twilio.wait_for_async(lambda: any(c["To"] == HELPER for c in twilio.calls), 10)
    call = next(c for c in twilio.calls if c["To"] == HELPER)
    async with httpx.AsyncClient() as client:
        answer = await twilio.post_signed(
            call["Url"] + "/gather", twilio.gather_params(call, "1"), client=client
        )
    assert answer.status_code == 200 and "已确认" in answer.text
    async with live.gateway.db.session() as session:
        alert = (await session.execute(select(Alert))).scalar_one()
    assert alert.status == "acknowledged" and alert.acknowledged_by == "李四"


async def test_twilio_outage_during_a_step_is_retried(
    database_url: str, mqtt_prefix: str, twilio: FakeTwilio, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both first attempts of the helper's step (SMS and call) get 503; once the injected
    clock passes the retry delay, the retries go out to Twilio and are recorded."""
    monkeypatch.setenv("HW_TEST_ADMIN_PASSWORD", "correct-horse-battery")
    clock = ManualClock(GATEWAY_START)
    settings = _settings(database_url, mqtt_prefix, free_port(), twilio)
    twilio.fail_next(2, status=503)
    async with running_gateway(settings, mqtt_prefix, clock=clock) as live:
        await _press_sos(live.prefix, "p-3")

        async def rows() -> list[Notification]:
            async with live.gateway.db.session() as session:
                query = select(Notification).where(Notification.purpose == "alert")
                return list((await session.execute(query.order_by(Notification.id))).scalars())

        async def failed_then_scheduled() -> bool:
            found = await rows()
            return sum(r.status == "failed" for r in found) == 2 and (
                sum(r.attempt == 2 and r.status == "pending" for r in found) == 2
            )

        await wait_until(failed_then_scheduled, within=10)
        assert twilio.messages == [] and twilio.calls == [], "the outage took nothing"

        clock.advance(timedelta(seconds=19))
        await asyncio.sleep(0.5)
        assert twilio.messages == [] and twilio.calls == [], "not before the 20 s backoff"
        clock.advance(timedelta(seconds=1))
        await twilio.wait_for_async(
            lambda: len(twilio.messages) == 1 and len(twilio.calls) == 1, timeout=10
        )
        assert twilio.messages[0]["To"] == HELPER and twilio.calls[0]["To"] == HELPER

        async def retries_recorded() -> bool:
            retries = [r for r in await rows() if r.attempt == 2]
            return len(retries) == 2 and all(r.sid and r.status == "queued" for r in retries)

        await wait_until(retries_recorded, within=10)
        sids = {r.sid for r in await rows() if r.attempt == 2}
        assert sids == {twilio.messages[0]["sid"], twilio.calls[0]["sid"]}


async def test_a_restart_with_another_escalation_file_leaves_an_open_alert_on_its_chain(
    database_url: str, mqtt_prefix: str, twilio: FakeTwilio, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The gateway raises an SOS under one ``escalation:`` section, stops, and starts again
    with another: the alert's next step is its own (the team, by voice, after 2 minutes),
    while an alert raised afterwards follows the new section."""
    monkeypatch.setenv("HW_TEST_ADMIN_PASSWORD", "correct-horse-battery")
    clock = ManualClock(GATEWAY_START)
    port = free_port()
    first = {
        "emergency": [
            {"notify": "helper", "channels": ["sms"], "wait": "2m"},
            {"notify": "village_team", "channels": ["voice"], "wait": "5m", "repeat": True},
        ]
    }
    second = {
        "emergency": [
            {"notify": "town_duty", "channels": ["sms"], "wait": "30m", "repeat": True},
        ]
    }
    settings = _settings(database_url, mqtt_prefix, port, twilio, escalation=first)
    async with running_gateway(settings, mqtt_prefix, clock=clock) as live:
        await _press_sos(live.prefix, "r-1")
        await twilio.wait_for_async(lambda: len(twilio.messages) == 1, timeout=10)
    assert twilio.messages[0]["To"] == HELPER and twilio.calls == []

    settings = _settings(database_url, mqtt_prefix, port, twilio, escalation=second)
    async with running_gateway(settings, mqtt_prefix, clock=clock) as live:
        clock.advance(timedelta(minutes=2))
        await twilio.wait_for_async(lambda: len(twilio.calls) == 2, timeout=10)
        assert sorted(c["To"] for c in twilio.calls) == sorted(TEAM)
        assert len(twilio.messages) == 1, "no SMS: the original team step had only voice"

        async with live.gateway.db.session() as session:
            sos = (await session.execute(select(Alert))).scalar_one()
        await live.gateway.alerts.resolve(sos.id, "李四")
        await twilio.wait_for_async(lambda: len(twilio.messages) >= 2, timeout=10)
        clock.advance(timedelta(minutes=1))  # past the SOS debounce: a new alert
        await _press_sos(live.prefix, "r-2")
        # The new file's only step: the duty line by "sms", a call since it is a landline.
        await twilio.wait_for_async(
            lambda: any(c["To"] == "+862376000000" for c in twilio.calls), timeout=10
        )
        assert len(twilio.calls) == 3, "the new alert follows the new file: the duty line"
        assert not any(m["To"] == "+862376000000" for m in twilio.messages)


def test_kill_9_mid_escalation_resumes_without_repeating(
    sqlite_url: str, tmp_path: Path, run_id: str, twilio: FakeTwilio
) -> None:
    """The real `homewatch run` process, killed after the helper's step; short waits. The
    process runs on the system clock: a weekly digest may come out at any time of the week,
    so only the alert's messages are counted."""
    prefix = f"kx{run_id}"
    port = free_port()
    config = tmp_path / "homewatch.yaml"
    config.write_text(
        "timezone: Asia/Shanghai\n"
        "escalation:\n  emergency:\n"
        "    - {notify: helper, channels: [sms], wait: 4s}\n"
        "    - {notify: village_team, channels: [sms], wait: 4s}\n"
        "    - {notify: town_duty, channels: [sms], wait: 1h}\n",
        encoding="utf-8",
    )
    env = {
        **os.environ,
        "HOMEWATCH_CONFIG": str(config),
        "HOMEWATCH_DATABASE_URL": sqlite_url,
        "HOMEWATCH_MQTT_CLIENT_ID": f"gw-{prefix}",
        "HOMEWATCH_SECRET_KEY": "k" * 32,
        "HOMEWATCH_API_PORT": str(port),
        "HOMEWATCH_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "HOMEWATCH_TWILIO_ACCOUNT_SID": ACCOUNT,
        "HOMEWATCH_TWILIO_AUTH_TOKEN": TOKEN,
        "HOMEWATCH_TWILIO_FROM": "+15005550006",
        "HOMEWATCH_TWILIO_API_BASE": twilio.base_url,
        "HW_TEST_ADMIN_PASSWORD": "correct-horse-battery",
    }
    register = tmp_path / "register.yaml"
    register.write_text(register_yaml(prefix, persons=1), encoding="utf-8")
    gateway = GatewayProcess(env, tmp_path / "gw.log")
    gateway.provision(register)
    try:
        gateway.start()  # inside: a start that times out still leaves no process behind
        asyncio.run(_press_sos(prefix, "k-1"))
        twilio.wait_for(lambda: len(sms_of(twilio.messages, "sos_alert")) == 1, 10)
        gateway.kill9()
        time.sleep(1.0)
        gateway.start()
        twilio.wait_for(lambda: len(sms_of(twilio.messages, "sos_alert")) >= 3, 30)
        time.sleep(2.0)
        recipients = [m["To"] for m in sms_of(twilio.messages, "sos_alert")]
        assert recipients.count(HELPER) == 1, "the helper's step must not be repeated"
        assert sorted(recipients[1:3]) == sorted(TEAM)
        assert len(recipients) == 3, "the duty line waits its turn"
    finally:
        gateway.stop()


async def test_api_shows_devices_events_unknown_devices_and_masks_ids_for_helpers(
    live: Live,
) -> None:
    p = live.prefix
    async with aiomqtt.Client("127.0.0.1", 1883) as mqtt:
        await mqtt.publish(
            f"{p}/homewatch/{p}-p0-pir/event",
            json.dumps({"type": "motion", "state": True, "battery": 77}),
            qos=1,
        )
        await mqtt.publish(f"{p}/homewatch/nobody-{p}/event", json.dumps({"type": "sos"}), qos=1)
    base = f"{live.public_url}/api/v1"
    async with httpx.AsyncClient() as client:

        async def login(user: str) -> dict[str, str]:
            response = await client.post(
                f"{base}/auth/token", data={"username": user, "password": "correct-horse-battery"}
            )
            return {"Authorization": f"Bearer {response.json()['access_token']}"}

        admin = await login("admin")
        assert (await client.get(f"{base}/persons")).status_code == 401

        async def stored() -> bool:
            page = (
                await client.get(f"{base}/events", params={"device": f"{p}-p0-pir"}, headers=admin)
            ).json()
            return bool(page["total"] == 1)

        await wait_until(stored, within=10)
        device = (await client.get(f"{base}/devices/{p}-p0-pir", headers=admin)).json()
        assert device["online"] is True and device["battery"] == 77 and device["last_seen_at"]
        unknown = (await client.get(f"{base}/unknown-devices", headers=admin)).json()
        assert f"{p}/homewatch/nobody-{p}/event" in [u["topic"] for u in unknown]
        full = (await client.get(f"{base}/persons", headers=admin)).json()[0]["id_number"]
        helper = await login("lisi")
        masked = (await client.get(f"{base}/persons", headers=helper)).json()[0]["id_number"]
        assert "*" not in full and masked != full and masked.count("*") == 10
        assert (await client.get(f"{base}/unknown-devices", headers=helper)).status_code == 403
        mine = (await client.get(f"{base}/devices", headers=helper)).json()
        assert {d["uid"] for d in mine} == {f"{p}-p0-{k}" for k in ("sos", "pir", "zsos", "door")}
        listed = {d["uid"]: d for d in (await client.get(f"{base}/devices", headers=admin)).json()}
        assert listed[f"{p}-p0-pir"]["battery"] == 77
        health = (await client.get(f"{live.public_url}/healthz")).json()
        assert health["notifier"] == "twilio", "healthz names the channel that reaches people"
        metrics = (await client.get(f"{live.public_url}/metrics")).text
        assert 'homewatch_events_total{result="accepted"}' in metrics
        assert 'homewatch_events_total{result="unknown_device"}' in metrics
