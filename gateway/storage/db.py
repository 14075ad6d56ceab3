"""Engines, sessions and migrations."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from gateway.crypto import Keyring
from gateway.storage.types import bind_keyring

__all__ = [
    "Database",
    "alembic_config",
    "migrate",
]

_MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(database_url: str, keyring: Keyring | None = None) -> Config:
    """An Alembic configuration bound to ``database_url`` (no alembic.ini needed).

    ``keyring`` encrypts the personal data a migration touches (env.py binds it to the
    migration's engine); without one, the development key does, and `run` re-encrypts.
    """
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    # ConfigParser interpolation would choke on '%' in passwords.
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    if keyring is not None:
        config.attributes["keyring"] = keyring
    return config


def _run_upgrade(database_url: str, keyring: Keyring | None) -> None:
    command.upgrade(alembic_config(database_url, keyring), "head")


async def migrate(database_url: str, keyring: Keyring | None = None) -> None:
    """Bring the database to the latest migration (Alembic's env runs its own loop)."""
    await asyncio.to_thread(_run_upgrade, database_url, keyring)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the API read while ingest writes; NORMAL sync is durable across process
    # crashes (the OS still has the data), which is the failure the QoS 1 ack guards against.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


class Database:
    """One engine and its session factory; created by the composition root."""

    def __init__(self, url: str, *, echo: bool = False, keyring: Keyring | None = None) -> None:
        self.url = url
        parsed = make_url(url)
        self.dialect = parsed.get_backend_name()
        kwargs: dict[str, Any] = {"echo": echo}
        if self.dialect == "postgresql":
            kwargs.update(pool_size=10, max_overflow=10, pool_pre_ping=True)
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        self.keyring = keyring or Keyring.development()
        bind_keyring(self.engine.dialect, self.keyring)
        if self.dialect == "sqlite":
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self.sessions() as session:
            yield session

    async def ping(self) -> bool:
        """True when the database answers a trivial query."""
        try:
            async with self.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except Exception:  # noqa: BLE001 - any failure means "not ok" for /healthz
            return False
        return True

    async def dispose(self) -> None:
        await self.engine.dispose()
