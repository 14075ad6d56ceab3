"""The ingest log tells a broker that was never reached from a connection lost (issue #10)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from gateway.clock import SystemClock
from gateway.config import load_settings
from gateway.ingest import MqttIngest
from gateway.metrics import Metrics
from gateway.registry import DeviceRegistry
from gateway.storage.db import Database
from tests.conftest import wait_until
from tests.services import free_port


async def test_a_broker_never_reached_is_not_a_connection_lost(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()  # nothing listens there
    settings = load_settings(database_url=db.url, mqtt_url=f"mqtt://127.0.0.1:{port}")
    ingest = MqttIngest(settings, db, DeviceRegistry(), SystemClock(), Metrics())
    stop = asyncio.Event()
    with caplog.at_level(logging.WARNING, logger="gateway.ingest"):
        task = asyncio.create_task(ingest.run(stop))
        await wait_until(lambda: any("cannot connect" in r.getMessage() for r in caplog.records))
        stop.set()
        await asyncio.wait_for(task, 10)
    messages = [r.getMessage() for r in caplog.records]
    assert any(f"cannot connect to the broker at 127.0.0.1:{port}" in m for m in messages)
    assert not any("connection lost" in m for m in messages)
