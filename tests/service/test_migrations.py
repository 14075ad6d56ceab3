"""The migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select, text

from gateway.register.apply import apply_provisioning
from gateway.register.provisioning import parse_provisioning
from gateway.storage.db import Database, alembic_config, migrate
from gateway.storage.models import Alert, Base, Notification, Person
from tests.helpers import register_yaml


def _schema_drift(connection: Any) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": False})
    return list(compare_metadata(context, Base.metadata))


async def test_migrated_database_matches_the_models(db: Database) -> None:
    async with db.engine.connect() as connection:
        drift = await connection.run_sync(_schema_drift)
    assert drift == [], f"models and migrations disagree; add a migration: {drift}"


async def test_notification_priority_is_backfilled_from_the_alert_group(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows queued before migration 0004 leave in the right order after it."""
    config = alembic_config(database_url)
    # The register and alerts are written with today's models, then the schema goes back to
    # 0003 (the tables they live in keep them) and the old-style outbox rows are added.
    await migrate(database_url)
    db = Database(database_url)
    try:
        monkeypatch.setenv("HW_TEST_ADMIN_PASSWORD", "correct-horse-battery")
        now = datetime(2026, 3, 10, tzinfo=UTC)
        await apply_provisioning(db, parse_provisioning(register_yaml("mig", persons=1)), now)
        async with db.session() as session, session.begin():
            person_id = (await session.execute(select(Person.id))).scalars().one()
            for code, kind, group in (
                ("SOS1", "sos", "emergency"),
                ("INA1", "inactivity", "wellbeing"),
            ):
                session.add(
                    Alert(
                        code=code,
                        type=kind,
                        group=group,
                        status="resolved",
                        person_id=person_id,
                        raised_at=now,
                        last_trigger_at=now,
                    )
                )
    finally:
        await db.dispose()
    await asyncio.to_thread(command.downgrade, config, "0003")
    db = Database(database_url)
    try:
        async with db.engine.begin() as connection:
            codes = (await connection.execute(text("SELECT code, id FROM alerts"))).all()
            alerts: dict[str, int] = {str(code): int(alert_id) for code, alert_id in codes}
            for token, alert_id, purpose in (
                ("a", alerts["SOS1"], "alert"),
                ("b", alerts["INA1"], "alert"),
                ("c", None, "system"),
                ("d", None, "digest"),
                ("e", alerts["INA1"], "taken"),
            ):
                await connection.execute(
                    text(
                        "INSERT INTO notifications (alert_id, purpose, template, recipient_role,"
                        " recipient_name, recipient_phone, channel, attempt, status, not_before,"
                        " token, params, body, created_at, updated_at, failure_handled) VALUES"
                        " (:alert_id, :purpose, 'x', 'helper', '李四', '+8613700000001', 'sms', 1,"
                        " 'sent', :now, :token, '{}', 'x', :now, :now, false)"
                    ),
                    {"alert_id": alert_id, "purpose": purpose, "now": now, "token": token},
                )
    finally:
        await db.dispose()
    await migrate(database_url)
    db = Database(database_url)
    try:
        async with db.session() as session:
            rows = dict(
                (await session.execute(select(Notification.token, Notification.priority))).all()
            )
    finally:
        await db.dispose()
    assert rows == {"a": 0, "b": 1, "c": 2, "d": 3, "e": 3}
    await asyncio.to_thread(command.downgrade, config, "0003")
