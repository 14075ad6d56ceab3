"""The migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from gateway.storage.db import Database
from gateway.storage.models import Base


def _schema_drift(connection: Any) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": False})
    return list(compare_metadata(context, Base.metadata))


async def test_migrated_database_matches_the_models(db: Database) -> None:
    async with db.engine.connect() as connection:
        drift = await connection.run_sync(_schema_drift)
    assert drift == [], f"models and migrations disagree; add a migration: {drift}"
