"""Healthy means able to receive: /healthz and the retained ``online`` status only once the
broker has granted the subscriptions (real Mosquitto behind a proxy that holds or refuses
the SUBACK)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aiomqtt
import httpx
import pytest

from gateway.app import Gateway
from gateway.clock import SystemClock
from gateway.config import load_settings
from gateway.register.apply import apply_provisioning
from gateway.register.provisioning import parse_provisioning
from gateway.storage.db import migrate
from tests.conftest import wait_until
from tests.fakes.suback_gate import SubackGate
from tests.helpers import register_yaml
from tests.services import free_port

pytestmark = pytest.mark.integration


@contextlib.asynccontextmanager
async def _gateway_behind(
    gate: SubackGate, database_url: str, prefix: str
) -> AsyncIterator[tuple[Gateway, str]]:
    port = free_port()
    settings = load_settings(
        database_url=database_url,
        mqtt_url=f"mqtt://127.0.0.1:{gate.port}",
        mqtt_client_id=f"gw-{prefix}",
        mqtt_topic_prefix=prefix,
        secret_key="h" * 32,
        api_port=port,
        public_url=f"http://127.0.0.1:{port}",
        notifier="console",
    )
    await migrate(database_url)
    gateway = Gateway(settings, "h" * 32, clock=SystemClock())
    await apply_provisioning(
        gateway.db, parse_provisioning(register_yaml(prefix, persons=1)), datetime.now(UTC)
    )
    stop = asyncio.Event()
    task = asyncio.create_task(gateway.run(stop, run_migrations=False))
    try:
        yield gateway, f"http://127.0.0.1:{port}"
    finally:
        gate.release()
        gate.refuse = False
        stop.set()
        await asyncio.wait_for(task, 20)
        for client_id in (f"gw-{prefix}", f"gw-{prefix}-emergency"):  # both lanes' sessions
            async with aiomqtt.Client("127.0.0.1", 1883, identifier=client_id, clean_session=True):
                pass


def _both_lanes_connected(gateway: Gateway) -> bool:
    """Healthy needs the routine session and the emergency lane subscribed."""
    return gateway.ingest.connected and gateway.emergency_ingest.connected


async def _health(client: httpx.AsyncClient, url: str) -> tuple[int, dict[str, str]] | None:
    try:
        response = await client.get(f"{url}/healthz")
    except httpx.HTTPError:
        return None
    return response.status_code, response.json()


async def _retained_status(prefix: str) -> str | None:
    """The gateway's retained status as a newcomer sees it (None: nothing retained)."""
    async with aiomqtt.Client("127.0.0.1", 1883) as client:
        await client.subscribe(f"{prefix}/gateway/gw-{prefix}/status", qos=1)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(0.5):
                async for message in client.messages:
                    return str(message.payload.decode())
    return None


async def test_not_healthy_until_the_broker_has_granted_the_subscriptions(
    database_url: str, mqtt_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HW_TEST_ADMIN_PASSWORD", "correct-horse-battery")
    async with (
        SubackGate(1883, hold=True) as gate,
        _gateway_behind(gate, database_url, mqtt_prefix) as (gateway, url),
        httpx.AsyncClient() as client,
    ):
        await asyncio.wait_for(gate.suback_arrived.wait(), 15)
        # Connected over TCP, SUBSCRIBE sent, SUBACK not yet delivered: cannot hear yet.
        await wait_until(lambda: _health(client, url), within=10)
        assert await _health(client, url) == (
            503,
            {"status": "degraded", "mqtt": "subscribing", "database": "ok", "notifier": "console"},
        )
        assert not gateway.ingest.connected
        assert await _retained_status(mqtt_prefix) is None, "no 'online' before the SUBACK"
        gate.release()
        await wait_until(lambda: _both_lanes_connected(gateway), within=10)
        assert await _health(client, url) == (
            200,
            {"status": "ok", "mqtt": "connected", "database": "ok", "notifier": "console"},
        )
        assert await _retained_status(mqtt_prefix) == "online"


async def test_a_refused_subscription_is_never_healthy_and_heals_when_granted(
    database_url: str, mqtt_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HW_TEST_ADMIN_PASSWORD", "correct-horse-battery")
    async with (
        SubackGate(1883, refuse=True) as gate,
        _gateway_behind(gate, database_url, mqtt_prefix) as (gateway, url),
        httpx.AsyncClient() as client,
    ):
        await wait_until(lambda: gate.subacks >= 2, within=15)  # refused, reconnected, again
        status = await _health(client, url)
        assert status is not None and status[0] == 503
        assert status[1]["mqtt"] in ("subscribing", "disconnected")
        assert not gateway.ingest.connected
        assert await _retained_status(mqtt_prefix) is None
        gate.refuse = False  # the broker's ACL is fixed: the next reconnection succeeds
        await wait_until(lambda: _both_lanes_connected(gateway), within=20)
        assert (await _health(client, url) or (0, {}))[0] == 200
