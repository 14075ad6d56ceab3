"""The real FastAPI app over a real database, driven in-process through httpx."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
from sqlalchemy import select

from alerts.notifiers import ConsoleNotifier
from alerts.service import AlertService
from gateway.api.app import create_app
from gateway.api.deps import ApiContext
from gateway.clock import ManualClock
from gateway.config import Settings, load_settings
from gateway.metrics import Metrics
from gateway.register.apply import apply_provisioning
from gateway.register.provisioning import parse_provisioning
from gateway.security import hash_password
from gateway.storage.db import Database
from gateway.storage.models import Helper, User, Village
from tests.helpers import GATEWAY_START, register_yaml

PASSWORD = "correct-horse-battery"
SECRET = "s" * 32


@asynccontextmanager
async def app_client(
    settings: Settings,
    db: Database,
    clock: ManualClock,
    alerts: AlertService,
    *,
    secret_key: str = SECRET,
    base_url: str = "http://testserver",
) -> AsyncIterator[httpx.AsyncClient]:
    """The real app in this process, reached through httpx (no socket, no server)."""
    app = create_app(
        ApiContext(
            settings=settings,
            db=db,
            clock=clock,
            metrics=Metrics(),
            alerts=alerts,
            secret_key=secret_key,
            health=lambda: "connected",
        )
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
        yield client


@dataclass
class Api:
    client: httpx.AsyncClient
    db: Database
    clock: ManualClock
    settings: Settings

    async def login(self, username: str) -> dict[str, str]:
        response = await self.client.post(
            "/api/v1/auth/token", data={"username": username, "password": PASSWORD}
        )
        assert response.status_code == 200, response.text
        return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def add_user(
    db: Database, username: str, role: str, *, village: str | None = None, helper: str | None = None
) -> None:
    """A login for a village officer (``village``) or a helper (``helper`` phone)."""
    async with db.session() as session, session.begin():
        village_id = helper_id = None
        if village is not None:
            village_id = (
                await session.execute(select(Village.id).where(Village.name == village))
            ).scalar_one()
        if helper is not None:
            helper_id = (
                await session.execute(select(Helper.id).where(Helper.phone_bidx == helper))
            ).scalar_one()
        session.add(
            User(
                username=username,
                password_hash=hash_password(PASSWORD),
                role=role,
                village_id=village_id,
                helper_id=helper_id,
                created_at=datetime(2026, 1, 1, tzinfo=UTC),
            )
        )


@asynccontextmanager
async def running_api(db: Database, tmp_path: Path, *, persons: int = 2) -> AsyncIterator[Api]:
    """The register of tests.helpers (坝芒村, helper 李四, users admin and lisi) plus a second
    village 隘口村 with its own helper 周强 and officers ``akofficer`` and ``bmofficer``.

    The clock starts at a pinned Wednesday morning whatever today is (month, week and day
    windows are then the same on every run); bearer tokens are stamped and checked with the
    wall clock, so they stay valid however far a test moves this one.
    """
    clock = ManualClock(GATEWAY_START)
    text = register_yaml("api", persons=persons).replace(
        "helpers:\n",
        "  - name: 隘口村\n    emergency_team: []\nhelpers:\n"
        '  - {name: 周强, phone: "+8613700000003", title: 驻村干部, village: 隘口村}\n',
    )
    doc = parse_provisioning(text, env={"HW_TEST_ADMIN_PASSWORD": PASSWORD})
    await apply_provisioning(db, doc, clock.now())
    await add_user(db, "akofficer", "village_officer", village="隘口村")
    await add_user(db, "bmofficer", "village_officer", village="坝芒村")
    settings = load_settings(
        database_url=db.url, secret_key=SECRET, data_dir=str(tmp_path / "data")
    )
    alerts = AlertService(
        db,
        clock,
        ConsoleNotifier(),
        escalation=settings.escalation,
        rules=settings.rules,
        public_url=settings.public_url,
        timezone=settings.tz,
        worker_id="test",
    )
    async with app_client(settings, db, clock, alerts) as client:
        yield Api(client, db, clock, settings)
