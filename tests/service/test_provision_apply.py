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


async def test_provisioning_audits_every_entity_it_creates_or_changes(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Provisioning goes through the register's one write path, so villages, team members,
    helpers and devices are in the trail just as persons are (they used not to be)."""
    monkeypatch.setenv("HW_TEST_ADMIN_PASSWORD", "correct-horse-battery")
    now = datetime(2026, 3, 1, tzinfo=UTC)
    text = register_yaml("provaudit", persons=2)
    await apply_provisioning(db, parse_provisioning(text), now)
    moved = text.replace(
        "topic: provaudit/homewatch/provaudit-p0-pir}", "topic: provaudit/moved/p0-pir}", 1
    )
    await apply_provisioning(db, parse_provisioning(moved), now)
    async with db.session() as session:
        entries = (
            await session.execute(
                select(AuditEntry).where(AuditEntry.actor == "provision").order_by(AuditEntry.id)
            )
        ).scalars()
        kept = [(e.entity, e.action, e.entity_id, e.before, e.after) for e in entries]
    created = dict.fromkeys(("village", "team_member", "helper", "person", "device"), 0)
    for entity, action, _, _, _ in kept:
        if action == "create" and entity in created:
            created[entity] += 1
    assert created == {"village": 1, "team_member": 2, "helper": 1, "person": 2, "device": 8}
    device_updates = [k for k in kept if k[0] == "device" and k[1] == "update"]
    assert len(device_updates) == 1
    _, _, uid, before, after = device_updates[0]
    assert uid == "provaudit-p0-pir"
    assert before is not None and before["topic"] == "provaudit/homewatch/provaudit-p0-pir"
    assert after is not None and after["topic"] == "provaudit/moved/p0-pir"
