"""Applying a provisioning file is idempotent and reports what changed."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from gateway.register.apply import apply_provisioning
from gateway.register.provisioning import parse_provisioning
from gateway.storage.db import Database
from gateway.storage.models import AuditEntry, Device, Person
from tests.helpers import register_yaml


async def test_second_apply_changes_nothing_and_edits_are_audited(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HW_TEST_ADMIN_PASSWORD", "correct-horse-battery")
    now = datetime(2026, 3, 1, tzinfo=UTC)
    text = register_yaml("prov", persons=2)
    first = await apply_provisioning(db, parse_provisioning(text), now)
    assert first.counts["persons"]["created"] == 2 and first.counts["devices"]["created"] == 8
    second = await apply_provisioning(db, parse_provisioning(text), now)
    assert not second.changed
    edited = text.replace("每周上门一次", "每周上门两次", 1)
    third = await apply_provisioning(db, parse_provisioning(edited), now)
    assert third.counts["persons"]["updated"] == 1
    async with db.session() as session:
        assert (await session.execute(select(func.count(Person.id)))).scalar_one() == 2
        assert (await session.execute(select(func.count(Device.id)))).scalar_one() == 8
        update = (
            await session.execute(select(AuditEntry).where(AuditEntry.action == "update"))
        ).scalar_one()
    assert update.before is not None and update.before["measures"] == "每周上门一次"
    assert update.after is not None and update.after["measures"] == "每周上门两次"
