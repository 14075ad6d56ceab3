"""Apply a validated provisioning document to the database: idempotent upsert."""

from __future__ import annotations

import copy
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.devices import default_topic
from gateway.register.provisioning import PersonSpec, ProvisioningDoc
from gateway.security import hash_password, verify_password
from gateway.storage.db import Database
from gateway.storage.models import (
    AuditEntry,
    Device,
    DeviceState,
    Helper,
    Person,
    TeamMember,
    Town,
    User,
    Village,
)

__all__ = [
    "PERSON_FIELDS",
    "ProvisionReport",
    "apply_provisioning",
    "audit_person",
    "person_snapshot",
]


@dataclass
class ProvisionReport:
    """What changed, per kind of record: created / updated / unchanged."""

    counts: dict[str, Counter[str]] = field(default_factory=dict)

    def note(self, kind: str, outcome: str) -> None:
        self.counts.setdefault(kind, Counter())[outcome] += 1

    def lines(self) -> list[str]:
        out = []
        for kind, counter in self.counts.items():
            parts = [f"{counter[o]} {o}" for o in ("created", "updated", "unchanged") if counter[o]]
            out.append(f"{kind}: {', '.join(parts)}")
        return out

    @property
    def changed(self) -> bool:
        return any(c["created"] or c["updated"] for c in self.counts.values())


def _assign(record: Any, values: dict[str, Any]) -> bool:
    changed = False
    for key, value in values.items():
        if getattr(record, key) != value:
            setattr(record, key, value)
            changed = True
    return changed


def _person_values(spec: PersonSpec, village_id: int, helper_id: int) -> dict[str, Any]:
    return {
        "name": spec.name,
        "gender": spec.gender.value,
        "village_id": village_id,
        "categories": [c.value for c in spec.categories],
        "care_level": spec.care_level.value,
        "helper_id": helper_id,
        "measures": spec.measures,
        "phone": spec.phone,
        "notes": spec.notes,
        "address": spec.address,
        "guardian_name": spec.guardian_name,
        "guardian_phone": spec.guardian_phone,
        "rules_override": dict(spec.rules_override),
    }


#: The person columns the register (and its change history) is made of.
PERSON_FIELDS = (
    "name",
    "gender",
    "id_number",
    "village_id",
    "categories",
    "care_level",
    "helper_id",
    "measures",
    "phone",
    "notes",
    "address",
    "guardian_name",
    "guardian_phone",
    "health_status",
    "lifestyle",
    "medical_checkup",
    "rules_override",
)


def person_snapshot(person: Person) -> dict[str, Any]:
    """The register fields of ``person``, copied so later edits do not change the snapshot."""
    return {field: copy.copy(getattr(person, field)) for field in PERSON_FIELDS}


def audit_person(
    session: AsyncSession,
    *,
    now: datetime,
    actor: str,
    person_id: int,
    before: dict[str, Any] | None,
    after: dict[str, Any],
) -> None:
    """Keep a change of a person in the history (who, when, before/after)."""
    session.add(
        AuditEntry(
            at=now,
            actor=actor,
            action="create" if before is None else "update",
            entity="person",
            entity_id=str(person_id),
            before=before,
            after=after,
        )
    )


async def apply_provisioning(
    db: Database, doc: ProvisioningDoc, now: datetime, *, actor: str = "provision"
) -> ProvisionReport:
    """Create or update everything in ``doc`` in one transaction. Nothing is deleted."""
    report = ProvisionReport()
    async with db.session() as session, session.begin():
        session.info["actor"] = actor  # names who changed users in the audit trail
        await _apply_town(session, doc, report)
        villages = await _apply_villages(session, doc, report)
        helpers = await _apply_helpers(session, doc, villages, report)
        await _apply_persons(session, doc, villages, helpers, now, actor, report)
        await _apply_users(session, doc, villages, helpers, now, report)
    return report


async def _apply_town(session: AsyncSession, doc: ProvisioningDoc, report: ProvisionReport) -> None:
    town = (await session.execute(select(Town).limit(1))).scalar_one_or_none()
    values = {"name": doc.town, "duty_name": doc.town_duty.name, "duty_phone": doc.town_duty.phone}
    if town is None:
        session.add(Town(id=1, **values))
        report.note("town", "created")
    else:
        report.note("town", "updated" if _assign(town, values) else "unchanged")


async def _apply_villages(
    session: AsyncSession, doc: ProvisioningDoc, report: ProvisionReport
) -> dict[str, Village]:
    existing = {v.name: v for v in (await session.execute(select(Village))).scalars()}
    for spec in doc.villages:
        village = existing.get(spec.name)
        robot = spec.team_robot.as_json() if spec.team_robot is not None else None
        if village is None:
            village = Village(name=spec.name, team_robot=robot)
            session.add(village)
            await session.flush()
            existing[spec.name] = village
            report.note("villages", "created")
        elif village.team_robot != robot:
            village.team_robot = robot
            report.note("villages", "updated")
        else:
            report.note("villages", "unchanged")
        members = {
            m.phone: m
            for m in (
                await session.execute(select(TeamMember).where(TeamMember.village_id == village.id))
            ).scalars()
        }
        for member in spec.emergency_team:
            row = members.get(member.phone)
            values = {"name": member.name, "role": member.role}
            if row is None:
                session.add(TeamMember(village_id=village.id, phone=member.phone, **values))
                report.note("team members", "created")
            else:
                report.note("team members", "updated" if _assign(row, values) else "unchanged")
    return existing


async def _apply_helpers(
    session: AsyncSession,
    doc: ProvisioningDoc,
    villages: dict[str, Village],
    report: ProvisionReport,
) -> dict[str, Helper]:
    existing = {h.phone: h for h in (await session.execute(select(Helper))).scalars()}
    for spec in doc.helpers:
        values = {"name": spec.name, "title": spec.title, "village_id": villages[spec.village].id}
        helper = existing.get(spec.phone)
        if helper is None:
            helper = Helper(phone=spec.phone, **values)
            session.add(helper)
            existing[spec.phone] = helper
            report.note("helpers", "created")
        else:
            report.note("helpers", "updated" if _assign(helper, values) else "unchanged")
    await session.flush()
    return existing


async def _apply_persons(
    session: AsyncSession,
    doc: ProvisioningDoc,
    villages: dict[str, Village],
    helpers: dict[str, Helper],
    now: datetime,
    actor: str,
    report: ProvisionReport,
) -> None:
    existing = {p.id_number: p for p in (await session.execute(select(Person))).scalars()}
    devices = {d.uid: d for d in (await session.execute(select(Device))).scalars()}
    for spec in doc.persons:
        values = _person_values(spec, villages[spec.village].id, helpers[spec.helper_phone].id)
        person = existing.get(spec.id_number)
        if person is None:
            person = Person(id_number=spec.id_number, created_at=now, updated_at=now, **values)
            session.add(person)
            await session.flush()
            audit_person(
                session, now=now, actor=actor, person_id=person.id, before=None, after=values
            )
            report.note("persons", "created")
        else:
            before = person_snapshot(person)
            if _assign(person, values):
                person.updated_at = now
                audit_person(
                    session, now=now, actor=actor, person_id=person.id, before=before, after=values
                )
                report.note("persons", "updated")
            else:
                report.note("persons", "unchanged")
        for entry in spec.devices:
            topic = entry.topic or default_topic(entry.uid, entry.protocol)
            device_values = {
                "person_id": person.id,
                "kind": entry.kind.value,
                "protocol": entry.protocol.value,
                "topic": topic,
                "model": entry.model,
            }
            device = devices.get(entry.uid)
            if device is None:
                device = Device(uid=entry.uid, **device_values)
                session.add(device)
                await session.flush()
                session.add(DeviceState(device_id=device.id))
                devices[entry.uid] = device
                report.note("devices", "created")
            else:
                report.note("devices", "updated" if _assign(device, device_values) else "unchanged")


async def _apply_users(
    session: AsyncSession,
    doc: ProvisioningDoc,
    villages: dict[str, Village],
    helpers: dict[str, Helper],
    now: datetime,
    report: ProvisionReport,
) -> None:
    existing = {u.username: u for u in (await session.execute(select(User))).scalars()}
    for spec in doc.users:
        values: dict[str, Any] = {
            "role": spec.role.value,
            "village_id": villages[spec.village].id if spec.village else None,
            "helper_id": helpers[spec.phone].id if spec.phone and spec.phone in helpers else None,
        }
        user = existing.get(spec.username)
        if user is None:
            if not spec.password:
                continue
            session.add(
                User(
                    username=spec.username,
                    password_hash=hash_password(spec.password),
                    created_at=now,
                    **values,
                )
            )
            report.note("users", "created")
            continue
        changed = _assign(user, values)
        if spec.password and not verify_password(spec.password, user.password_hash):
            user.password_hash = hash_password(spec.password)
            changed = True
        report.note("users", "updated" if changed else "unchanged")
