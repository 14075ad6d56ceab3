"""Quiet home end to end: MQTT → store → inactivity → pre-alarm call through the real
twilio client (fake REST server) → check-in over MQTT cancels, or silence reaches the
helper. Windows are shrunk to seconds by configuration, the code path is the real one."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta

import aiomqtt
import httpx
import pytest
from sqlalchemy import select

from gateway.storage.models import Alert, AuditEntry
from tests.conftest import wait_until
from tests.fakes.fake_twilio import FakeTwilio
from tests.helpers import sms_of
from tests.integration.test_alerts_e2e import (
    HELPER,
    Live,
    _settings,
    running_gateway,
)
from tests.services import free_port

pytestmark = pytest.mark.integration

RESIDENT = "+8613600000000"
FAST_RULES = {
    "inactivity": {
        "day": {"start": "00:00", "end": "00:00", "quiet": "3s"},
        "night": {"quiet": "1h"},
    }
}
FAST_WELLBEING = {
    "wellbeing": [
        {"notify": "resident", "channels": ["voice"], "wait": "4s"},
        {"notify": "helper", "channels": ["sms", "voice"], "wait": "1m"},
        {"notify": "village_team", "channels": ["sms"], "wait": "5m", "repeat": True},
    ]
}


@pytest.fixture
async def quiet_live(
    database_url: str,
    mqtt_prefix: str,
    twilio: FakeTwilio,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Live]:
    monkeypatch.setenv("HW_TEST_ADMIN_PASSWORD", "correct-horse-battery")
    settings = _settings(
        database_url, mqtt_prefix, free_port(), twilio, rules=FAST_RULES, escalation=FAST_WELLBEING
    )
    async with running_gateway(settings, mqtt_prefix, watch_poll_seconds=0.2) as running:
        yield running


async def _publish(prefix: str, device: str, payload: dict[str, object]) -> None:
    async with aiomqtt.Client("127.0.0.1", 1883) as client:
        await client.publish(
            f"{prefix}/homewatch/{prefix}-p0-{device}/event", json.dumps(payload), qos=1
        )


async def _inactivity_alerts(live: Live) -> list[Alert]:
    async with live.gateway.db.session() as session:
        rows = await session.execute(select(Alert).where(Alert.type == "inactivity"))
        return list(rows.scalars())


async def test_pre_alarm_call_then_check_in_over_mqtt_cancels(
    quiet_live: Live,
    twilio: FakeTwilio,
) -> None:
    await _publish(quiet_live.prefix, "pir", {"type": "motion", "state": True, "id": "m1"})
    await twilio.wait_for_async(lambda: any(c["To"] == RESIDENT for c in twilio.calls), 15)
    assert not sms_of(twilio.messages, "inactivity_alert"), "the resident is asked first"
    await _publish(quiet_live.prefix, "sos", {"type": "check_in", "id": "c1"})

    async def cancelled() -> bool:
        return [a.status for a in await _inactivity_alerts(quiet_live)] == ["cancelled"]

    await wait_until(cancelled, within=10)
    await asyncio.sleep(5)  # past the resident step's wait
    assert not sms_of(twilio.messages, "inactivity_alert")
    assert not any(c["To"] == HELPER for c in twilio.calls)


async def test_unanswered_pre_alarm_reaches_the_helper(
    quiet_live: Live,
    twilio: FakeTwilio,
) -> None:
    await _publish(quiet_live.prefix, "pir", {"type": "motion", "state": True, "id": "m1"})
    await twilio.wait_for_async(lambda: any(c["To"] == RESIDENT for c in twilio.calls), 15)
    await twilio.wait_for_async(lambda: sms_of(twilio.messages, "inactivity_alert"), 15)
    [sms] = sms_of(twilio.messages, "inactivity_alert")
    assert sms["To"] == HELPER and "长时间没有活动" in sms["Body"]
    [alert] = await _inactivity_alerts(quiet_live)
    assert alert.status == "open" and alert.step_index == 1


async def test_away_and_emergency_mode_through_the_api_are_audited(
    quiet_live: Live,
) -> None:
    base = quiet_live.public_url
    async with httpx.AsyncClient(base_url=base) as client:
        token = (
            await client.post(
                "/api/v1/auth/token",
                data={"username": "admin", "password": "correct-horse-battery"},
            )
        ).json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        persons = (await client.get("/api/v1/persons", headers=auth)).json()
        person_id = persons[0]["id"]
        until = (quiet_live.gateway.clock.now() + timedelta(days=3)).isoformat()
        bad = await client.post(
            f"/api/v1/persons/{person_id}/away",
            json={"ends_at": "2020-01-01T00:00:00+00:00"},
            headers=auth,
        )
        assert bad.status_code == 422 and "ends_at" in bad.text
        away = await client.post(
            f"/api/v1/persons/{person_id}/away",
            json={"ends_at": until, "reason": "住女儿家"},
            headers=auth,
        )
        assert away.status_code == 201, away.text
        listed = (await client.get(f"/api/v1/persons/{person_id}/away", headers=auth)).json()
        assert [a["reason"] for a in listed] == ["住女儿家"]
        await _publish(quiet_live.prefix, "pir", {"type": "motion", "state": True, "id": "m1"})
        await asyncio.sleep(5)
        assert await _inactivity_alerts(quiet_live) == [], "away: nobody is called"

        on = await client.post("/api/v1/emergency-mode", json={"reason": "暴雨洪涝"}, headers=auth)
        assert on.status_code == 200 and on.json()["active"] is True
        assert on.json()["inactivity_factor"] == 0.5
        again = await client.post("/api/v1/emergency-mode", json={"reason": "x"}, headers=auth)
        assert again.status_code == 409
        off = await client.delete("/api/v1/emergency-mode", headers=auth)
        assert off.json()["active"] is False and off.json()["ended_by"] == "admin"
        unauthenticated = await client.post("/api/v1/emergency-mode", json={"reason": "x"})
        assert unauthenticated.status_code == 401
    async with quiet_live.gateway.db.session() as session:
        changes = (
            await session.execute(
                select(AuditEntry.entity, AuditEntry.action, AuditEntry.actor)
                .where(AuditEntry.entity.in_(["away_period", "emergency_mode"]))
                .order_by(AuditEntry.id)
            )
        ).all()
    assert [tuple(c) for c in changes] == [
        ("away_period", "create", "admin"),
        ("emergency_mode", "start", "admin"),
        ("emergency_mode", "end", "admin"),
    ]
