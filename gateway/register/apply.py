"""Apply a validated provisioning document to the database: idempotent upsert through the
register service's batch commands."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.register.provisioning import PersonSpec, ProvisioningDoc
from gateway.register.service import PERSON_FIELDS, RegisterService, person_snapshot
from gateway.storage.db import Database
from gateway.storage.models import Device, Helper, Person, TeamMember, Town, Village

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
    register = RegisterService(session, actor=actor, now=now)
    register.audit("person", person_id, "create" if before is None else "update", before, after)


async def apply_provisioning(
    db: Database, doc: ProvisioningDoc, now: datetime, *, actor: str = "provision"
) -> ProvisionReport:
    """Create or update everything in ``doc`` in one transaction. Nothing is deleted.

    The file is validated whole by the parser, so records go to the register service's
    batch commands: a county's tens of thousands of rows are a few round trips, not one each.
    """
    report = ProvisionReport()
    async with db.session() as session, session.begin():
        register = RegisterService(session, actor=actor, now=now)
        await _apply_town(session, doc, report)
        villages = await _apply_villages(register, doc, report)
        helpers = await _apply_helpers(register, doc, villages, report)
        await _apply_persons(register, doc, villages, helpers, report)
        await _apply_users(register, doc, villages, helpers, report)
    return report


async def _apply_town(session: AsyncSession, doc: ProvisioningDoc, report: ProvisionReport) -> None:
    town = (await session.execute(select(Town).limit(1))).scalar_one_or_none()
    values = {"name": doc.town, "duty_name": doc.town_duty.name, "duty_phone": doc.town_duty.phone}
    if town is None:
        session.add(Town(id=1, **values))
        report.note("town", "created")
        return
    changed = False
    for key, value in values.items():
        if getattr(town, key) != value:
            setattr(town, key, value)
            changed = True
    report.note("town", "updated" if changed else "unchanged")


def _outcome(changed: bool) -> str:
    return "updated" if changed else "unchanged"


async def _apply_villages(
    register: RegisterService, doc: ProvisioningDoc, report: ProvisionReport
) -> dict[str, Village]:
    session = register.session
    existing = {v.name: v for v in (await session.execute(select(Village))).scalars()}
    new: list[tuple[str, dict[str, str] | None]] = []
    for spec in doc.villages:
        robot = spec.team_robot.as_json() if spec.team_robot is not None else None
        village = existing.get(spec.name)
        if village is None:
            new.append((spec.name, robot))
            report.note("villages", "created")
        else:
            changed = await register.update_village(village, {"team_robot": robot})
            report.note("villages", _outcome(changed))
    existing.update({v.name: v for v in await register.create_villages(new)})
    members = {
        (m.village_id, m.phone): m for m in (await session.execute(select(TeamMember))).scalars()
    }
    new_members: list[dict[str, Any]] = []
    for spec in doc.villages:
        village_id = existing[spec.name].id
        for member in spec.emergency_team:
            values = {"name": member.name, "role": member.role}
            row = members.get((village_id, member.phone))
            if row is None:
                new_members.append({"village_id": village_id, "phone": member.phone, **values})
                report.note("team members", "created")
            else:
                report.note("team members", _outcome(register.update_team_member(row, values)))
    await register.add_team_members(new_members)
    return existing


async def _apply_helpers(
    register: RegisterService,
    doc: ProvisioningDoc,
    villages: dict[str, Village],
    report: ProvisionReport,
) -> dict[str, Helper]:
    existing = {h.phone: h for h in (await register.session.execute(select(Helper))).scalars()}
    new: list[dict[str, Any]] = []
    for spec in doc.helpers:
        values = {"name": spec.name, "title": spec.title, "village_id": villages[spec.village].id}
        helper = existing.get(spec.phone)
        if helper is None:
            new.append({"phone": spec.phone, **values})
            report.note("helpers", "created")
        else:
            changed = await register.update_helper(helper, values, checked=True)
            report.note("helpers", _outcome(changed))
    existing.update({h.phone: h for h in await register.create_helpers(new)})
    return existing


async def _apply_persons(
    register: RegisterService,
    doc: ProvisioningDoc,
    villages: dict[str, Village],
    helpers: dict[str, Helper],
    report: ProvisionReport,
) -> None:
    session = register.session
    existing = {p.id_number: p for p in (await session.execute(select(Person))).scalars()}
    new: list[dict[str, Any]] = []
    for spec in doc.persons:
        values = _person_values(spec, villages[spec.village].id, helpers[spec.helper_phone].id)
        person = existing.get(spec.id_number)
        if person is None:
            new.append({"id_number": spec.id_number, **values})
            report.note("persons", "created")
        else:
            changed = await register.update_person(person, values, checked=True)
            report.note("persons", _outcome(changed))
    existing.update({p.id_number: p for p in await register.create_persons(new)})

    devices = {d.uid: d for d in (await session.execute(select(Device))).scalars()}
    new_devices: list[dict[str, Any]] = []
    for spec in doc.persons:
        person_id = existing[spec.id_number].id
        for entry in spec.devices:
            values = register.with_topic(
                {
                    "uid": entry.uid,
                    "person_id": person_id,
                    "kind": entry.kind.value,
                    "protocol": entry.protocol.value,
                    "topic": entry.topic,
                    "model": entry.model,
                }
            )
            device = devices.get(entry.uid)
            if device is None:
                new_devices.append(values)
                report.note("devices", "created")
            else:
                changed = await register.update_device(device, values, checked=True)
                report.note("devices", _outcome(changed))
    await register.create_devices(new_devices)


async def _apply_users(
    register: RegisterService,
    doc: ProvisioningDoc,
    villages: dict[str, Village],
    helpers: dict[str, Helper],
    report: ProvisionReport,
) -> None:
    for spec in doc.users:
        values: dict[str, Any] = {
            "role": spec.role.value,
            "village_id": villages[spec.village].id if spec.village else None,
            "helper_id": helpers[spec.phone].id if spec.phone and spec.phone in helpers else None,
        }
        outcome = await register.set_user(spec.username, values, password=spec.password)
        if outcome != "skipped":
            report.note("users", outcome)
