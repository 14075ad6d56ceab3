"""Shared fixtures: real databases (SQLite file and a PostgreSQL database per test), the
machine's real Mosquitto with a topic prefix of our own, and a manual clock.

The suite runs in parallel (pytest-xdist, scripts/test): every name, port, folder and topic a
fixture hands out is unique per test, and session-scoped state lives once per worker."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.clock import ManualClock
from gateway.storage.db import Database, migrate
from tests.services import create_pg_database, drop_pg_database, scratch_pg_database

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


def _migrate_now(database_url: str) -> None:
    """:func:`migrate` from synchronous code, whether or not an event loop is running."""
    with ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, migrate(database_url)).result()


class MigratedTemplates:
    """A database of each kind that :func:`migrate` brought from empty to the latest
    migration once, for tests that take ``migrated`` to start from a copy: migrating took
    about a second per test, the largest part of most database tests. One per worker process,
    so that no two workers copy one template at once (PostgreSQL refuses while anyone is
    connected to it). Made on first use: a run that needs no PostgreSQL never touches it."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._sqlite: Path | None = None
        self._postgresql: contextlib.ExitStack | None = None
        self._postgresql_name = ""

    def copy_sqlite(self, path: Path) -> None:
        if self._sqlite is None:
            template = self._folder / "migrated.db"
            _migrate_now(f"sqlite+aiosqlite:///{template}")
            self._sqlite = template
        with (
            contextlib.closing(sqlite3.connect(self._sqlite)) as source,
            contextlib.closing(sqlite3.connect(path)) as target,
        ):
            source.backup(target)

    def postgresql(self) -> str:
        """The template database's name."""
        if self._postgresql is None:
            stack = contextlib.ExitStack()
            worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
            url = stack.enter_context(scratch_pg_database(f"hwtemplate_{worker}"))
            _migrate_now(url)
            self._postgresql, self._postgresql_name = stack, url.rsplit("/", 1)[1]
        return self._postgresql_name

    def close(self) -> None:
        if self._postgresql is not None:
            self._postgresql.close()


#: Drops the tests' PostgreSQL databases in the background (a few tenths of a second each,
#: hundreds of them), one at a time; pytest_sessionfinish waits for the last.
_pg_dropper = ThreadPoolExecutor(1, thread_name_prefix="pg-drop")
_pg_drops: list[Future[None]] = []


def pytest_sessionfinish() -> None:
    _pg_dropper.shutdown(wait=True)
    for drop in _pg_drops:
        if (error := drop.exception()) is not None:
            print(f"a test database was not dropped: {error!r}", file=sys.stderr)


@pytest.fixture(scope="session")
def migrated_templates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MigratedTemplates]:
    templates = MigratedTemplates(tmp_path_factory.mktemp("migrated"))
    try:
        yield templates
    finally:
        templates.close()


@pytest.fixture
def migrated() -> None:
    """Take it to have ``database_url`` at the latest migration from the start (a copy of
    what :func:`migrate` makes of an empty database; the migrations themselves are tested
    from empty)."""


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(
    request: pytest.FixtureRequest, tmp_path: Path, migrated_templates: MigratedTemplates
) -> Iterator[str]:
    """A fresh database of each kind: empty, or migrated for a test that takes ``migrated``."""
    is_migrated = "migrated" in request.fixturenames
    if request.param == "sqlite":
        path = tmp_path / "homewatch.db"
        if is_migrated:
            migrated_templates.copy_sqlite(path)
        yield f"sqlite+aiosqlite:///{path}"
        return
    template = migrated_templates.postgresql() if is_migrated else None
    url = create_pg_database(template=template)
    try:
        yield url
    finally:
        _pg_drops.append(_pg_dropper.submit(drop_pg_database, url))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'homewatch.db'}"


@pytest.fixture
async def db(database_url: str, migrated: None) -> AsyncIterator[Database]:
    """The test's ``database_url``, migrated, behind one engine."""
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
