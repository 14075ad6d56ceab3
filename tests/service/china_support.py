"""A gateway core wired for 隘口镇's phones: +86 through Aliyun (a local fake speaking its
wire format to the official SDKs), others through Twilio (the local fake Twilio), the
village team's DingTalk robot (a local fake checking the signature), and the real API app
for the receipt pushes — over a real database, with a manual clock."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import select

from alerts.channels.setup import build_dispatcher
from alerts.service import AlertService
from alerts.templates import TEMPLATES
from gateway.app import build_notifier
from gateway.clock import ManualClock
from gateway.config import Settings, load_settings
from gateway.register.apply import apply_provisioning
from gateway.register.provisioning import parse_provisioning
from gateway.storage.db import Database
from gateway.storage.models import Notification, Person
from tests.fakes.fake_aliyun import FakeAliyun
from tests.fakes.fake_robots import FakeRobots
from tests.fakes.fake_twilio import FakeTwilio
from tests.helpers import register_yaml
from tests.service.api_support import app_client

SIGN_NAME = "隘口镇民政办"
SHOW_NUMBER = "02376000000"
RECEIPT_TOKEN = "receipt-token-4f9c2b7e1d"
ROBOT_TOKEN = "dingtalk-token-bm"
ROBOT_SECRET = "SEC0123456789abcdef"
SMS_CODES = {
    name: f"SMS_{100001 + i}"
    for i, name in enumerate(n for n, t in TEMPLATES.items() if "sms" in t.channels)
}
TTS_CODES = {
    name: f"TTS_{200001 + i}"
    for i, name in enumerate(n for n, t in TEMPLATES.items() if "voice" in t.channels)
}
CHANNELS: dict[str, Any] = {
    "default": {"sms": "twilio", "voice": "twilio"},
    "routes": [{"prefix": "+86", "sms": "aliyun_sms", "voice": "aliyun_voice"}],
}


@dataclass
class China:
    db: Database
    clock: ManualClock
    settings: Settings
    alerts: AlertService
    aliyun: FakeAliyun
    twilio: FakeTwilio
    robots: FakeRobots
    client: httpx.AsyncClient
    person_ids: list[int]

    def sms_to(self, national: str, template: str | None = None) -> list[dict[str, str]]:
        return [
            m
            for m in self.aliyun.sms
            if m["PhoneNumbers"] == national
            and (template is None or m["TemplateCode"] == SMS_CODES[template])
        ]

    def calls_to(self, national: str) -> list[dict[str, str]]:
        return [c for c in self.aliyun.calls if c["CalledNumber"] == national]

    async def push(
        self, kind: str, items: list[dict[str, Any]], token: str = RECEIPT_TOKEN
    ) -> httpx.Response:
        return await self.client.post(f"/receipts/aliyun/{token}/{kind}", json=items)

    async def rows(self, **where: Any) -> list[Notification]:
        async with self.db.session() as session:
            query = select(Notification).order_by(Notification.id)
            for key, value in where.items():
                query = query.where(getattr(Notification, key) == value)
            return list((await session.execute(query)).scalars())


def china_settings(
    database_url: str, aliyun: FakeAliyun, twilio: FakeTwilio, **extra: Any
) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "secret_key": "s" * 32,
        "public_url": "http://gw.example",
        "twilio_account_sid": twilio.account_sid,
        "twilio_auth_token": twilio.auth_token,
        "twilio_from": "+15005550006",
        "twilio_api_base": twilio.base_url,
        "channels": CHANNELS,
        "aliyun": {
            "sms": {"sign_name": SIGN_NAME, "templates": SMS_CODES},
            "voice": {"called_show_number": SHOW_NUMBER, "templates": TTS_CODES},
        },
        "aliyun_access_key_id": aliyun.access_key_id,
        "aliyun_access_key_secret": aliyun.access_key_secret,
        "aliyun_sms_endpoint": aliyun.endpoint,
        "aliyun_voice_endpoint": aliyun.endpoint,
        "aliyun_protocol": "http",
        "receipt_token": RECEIPT_TOKEN,
    }
    values.update(extra)
    return load_settings(**values)


@contextmanager
def fakes() -> Iterator[tuple[FakeAliyun, FakeTwilio, FakeRobots]]:
    with (
        FakeAliyun(
            sign_name=SIGN_NAME,
            sms_templates=set(SMS_CODES.values()),
            tts_templates=set(TTS_CODES.values()),
        ) as aliyun,
        FakeTwilio() as twilio,
        FakeRobots(dingtalk={ROBOT_TOKEN: ROBOT_SECRET}) as robots,
    ):
        yield aliyun, twilio, robots


ROBOT_YAML = (
    "    team_robot: {provider: dingtalk, url_env: HW_TEST_ROBOT_URL,"
    " secret_env: HW_TEST_ROBOT_SECRET}\n    emergency_team:\n"
)


@asynccontextmanager
async def china(db: Database, clock: ManualClock, *, persons: int = 2) -> AsyncIterator[China]:
    with fakes() as (aliyun, twilio, robots):
        text = register_yaml("cn", persons=persons).replace("    emergency_team:\n", ROBOT_YAML, 1)
        doc = parse_provisioning(text, env={"HW_TEST_ADMIN_PASSWORD": "correct-horse-battery"})
        await apply_provisioning(db, doc, clock.now())
        async with db.session() as session:
            person_ids = list(
                (await session.execute(select(Person.id).order_by(Person.id))).scalars()
            )
        settings = china_settings(db.url, aliyun, twilio)
        notifier = build_notifier(settings)
        env = {
            "HW_TEST_ROBOT_URL": robots.dingtalk_url(ROBOT_TOKEN),
            "HW_TEST_ROBOT_SECRET": ROBOT_SECRET,
        }
        alerts = AlertService(
            db,
            clock,
            notifier,
            escalation=settings.escalation,
            rules=settings.rules,
            public_url=settings.public_url,
            timezone=settings.tz,
            worker_id="cn",
            channels=build_dispatcher(settings, db, clock, notifier, env=env),
        )
        async with app_client(settings, db, clock, alerts, secret_key="s" * 32) as client:
            yield China(db, clock, settings, alerts, aliyun, twilio, robots, client, person_ids)
