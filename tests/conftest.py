"""Shared fixtures: real databases (SQLite file and a PostgreSQL database per test), the
machine's real Mosquitto with a topic prefix of our own, and a manual clock."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.clock import ManualClock
from gateway.storage.db import Database, migrate
from tests.services import scratch_pg_database

MQTT_URL = os.environ.get("HOMEWATCH_TEST_MQTT_URL", "mqtt://127.0.0.1:1883")


@pytest.fixture(autouse=True)
def _own_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    """A test's gateway settings are the ones it writes down: HOMEWATCH_* variables of the
    shell running the suite (a developer's zone, notifier, config file) never leak in."""
    for name in list(os.environ):
        if name.startswith("HOMEWATCH_") and not name.startswith("HOMEWATCH_TEST_"):
            monkeypatch.delenv(name)


@pytest.fixture
def run_id() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture
def mqtt_prefix(run_id: str) -> str:
    """Our own topic space on the shared broker: never assume it is empty."""
    return f"hwtest-{run_id}"


@pytest.fixture
def mqtt_url() -> str:
    return MQTT_URL


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path, run_id: str) -> Iterator[str]:
    """A fresh, empty database of each kind."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'homewatch.db'}"
        return
    with scratch_pg_database() as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'homewatch.db'}"


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    await migrate(database_url)
    database = Database(database_url)
    try:
        yield database
    finally:
        await database.dispose()


@pytest.fixture
def clock() -> ManualClock:
    # A Tuesday morning in the town (08:00 Asia/Shanghai).
    return ManualClock(datetime(2026, 3, 10, 0, 0, tzinfo=UTC))


async def wait_until(predicate: object, within: float = 10.0, interval: float = 0.05) -> None:
    """Poll an (async or sync) predicate until it holds; fail the test after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        result = predicate()  # type: ignore[operator]
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {within}s")
        await asyncio.sleep(interval)
