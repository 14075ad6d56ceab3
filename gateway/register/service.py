"""The one write path of the register: villages, emergency teams, helpers, persons, devices
and users are created, changed and removed here, whoever asks (the HTTP routes, the
provisioning file, the 台账 import, ``homewatch user add``).

Each command checks what only the database can tell (a name or phone already taken, a
village or helper that does not exist, an ID number that contradicts the gender) and keeps
the change in the audit trail the same way for every entity: who, when, what, before/after.
Field formats (phones, ID number check digits, vocabularies) are checked at the edges that
read them (the API's schemas, the provisioning parser, the 台账 reader) before a command is
called. A refused command raises :class:`RecordRefusedError` naming the field at fault, or
:class:`RegisterConflictError` when the record's state forbids it; nothing has been written then.

Commands add to the caller's session and never commit: one route, one provisioning file or
one 台账 sheet is one transaction, committed (or rolled back) by the caller. Nothing here
flushes per record unless an id is needed, so a batch of thousands is a few round trips.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.devices import default_topic
from gateway.devices.vocabulary import Protocol
from gateway.register.bulk import insert_many, read_back
from gateway.register.history import audit_entity, columns_of
from gateway.register.idnumber import describe_problem
from gateway.security import hash_password, verify_password
from gateway.storage import register_queries as rq
from gateway.storage.models import (
    AuditEntry,
    Device,
    DeviceState,
    Helper,
    Person,
    TeamMember,
    User,
    Village,
)

__all__ = [
    "DEVICE_FIELDS",
    "HELPER_FIELDS",
    "PERSON_FIELDS",
    "TEAM_FIELDS",
    "OutOfScopeError",
    "RecordRefusedError",
    "RegisterConflictError",
    "RegisterService",
    "columns_of",
    "person_snapshot",
]

TEAM_FIELDS = ("village_id", "name", "phone", "role")
HELPER_FIELDS = ("name", "phone", "title", "village_id")
DEVICE_FIELDS = ("uid", "person_id", "kind", "protocol", "topic", "model")
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


_Row = dict[str, Any] | None


class RecordRefusedError(ValueError):
    """The record is invalid; ``field`` names the field at fault."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


class RegisterConflictError(ValueError):
    """The record's state forbids the command (e.g. a village that still has persons)."""


class OutOfScopeError(PermissionError):
    """The actor may not change this village."""


def person_snapshot(person: Person) -> dict[str, Any]:
    """The register fields of ``person``, copied so later edits do not change the snapshot."""
    return columns_of(person, PERSON_FIELDS)


def _assign(record: Any, values: Mapping[str, Any]) -> dict[str, Any]:
    """Set ``values`` on ``record``; the ones that differed, with their old values."""
    before: dict[str, Any] = {}
    for key, value in values.items():
        old = getattr(record, key)
        if old != value:
            before[key] = copy.copy(old)
            setattr(record, key, value)
    return before


def _hash(password: str) -> str:
    try:
        return hash_password(password)
    except ValueError as error:
        raise RecordRefusedError("password", str(error)) from error


class RegisterService:
    """Register commands in one session, made by ``actor`` at ``now``.

    ``village`` limits the commands to one village (a village_officer's own); None allows
    every village.
    """

    def __init__(
        self,
        session: AsyncSession,
        *,
        actor: str,
        now: datetime,
        village: int | None = None,
        all_villages: bool = True,
    ) -> None:
        self.session = session
        self.actor = actor
        self.now = now
        self._village = village
        self._all_villages = all_villages
        # Users are audited by the model's before_flush hook, which reads the actor here.
        session.info["actor"] = actor

    async def commit(self) -> None:
        await self.session.commit()

    # ------------------------------------------------------------------ the trail

    def audit(
        self, entity: str, entity_id: str | int, action: str, before: _Row, after: _Row
    ) -> None:
        """Keep one change with who made it and when (added to the caller's transaction)."""
        audit_entity(
            self.session,
            now=self.now,
            actor=self.actor[:100],
            entity=entity,
            entity_id=entity_id,
            action=action,
            before=before,
            after=after,
        )

    async def _audit_many(self, entries: Sequence[tuple[str, str | int, str, _Row, _Row]]) -> None:
        """Many changes kept at once: one multi-row insert instead of one per change."""
        await insert_many(
            self.session,
            AuditEntry,
            [
                {
                    "at": self.now,
                    "actor": self.actor[:100],
                    "action": action,
                    "entity": entity,
                    "entity_id": str(entity_id),
                    "before": before,
                    "after": after,
                }
                for entity, entity_id, action, before, after in entries
            ],
        )

    def _audit_change(
        self, entity: str, entity_id: str | int, before: dict[str, Any], after: dict[str, Any]
    ) -> bool:
        if before == after:
            return False
        self.audit(entity, entity_id, "update", before, after)
        return True

    # ------------------------------------------------------------------ scope

    def _may_change(self, village_id: int | None) -> bool:
        return self._all_villages or (village_id is not None and village_id == self._village)

    def _require_village(self, village_id: int) -> None:
        if not self._may_change(village_id):
            raise OutOfScopeError("a village_officer may only change their own village")

    async def _existing_village(self, field: str, village_id: int) -> None:
        if await self.session.get(Village, village_id) is None:
            raise RecordRefusedError(field, f"no village {village_id}")
        self._require_village(village_id)

    # ------------------------------------------------------------------ villages

    async def create_village(
        self, name: str, *, team_robot: dict[str, str] | None = None
    ) -> Village:
        if await rq.village_by_name(self.session, name) is not None:
            raise RecordRefusedError("name", f"village {name!r} already exists")
        return (await self.create_villages([(name, team_robot)]))[0]

    async def create_villages(
        self, specs: Iterable[tuple[str, dict[str, str] | None]]
    ) -> list[Village]:
        """New villages (names already known to be free), with one flush for their ids."""
        villages = [Village(name=name, team_robot=robot) for name, robot in specs]
        self.session.add_all(villages)
        await self.session.flush()
        await self._audit_many(
            [("village", v.id, "create", None, {"name": v.name}) for v in villages]
        )
        return villages

    async def update_village(self, village: Village, values: Mapping[str, Any]) -> bool:
        if "name" in values and values["name"] != village.name:
            other = await rq.village_by_name(self.session, values["name"])
            if other is not None:
                raise RecordRefusedError("name", f"village {values['name']!r} already exists")
        before = _assign(village, values)
        return self._audit_change(
            "village", village.id, before, {key: values[key] for key in before}
        )

    async def remove_village(self, village: Village) -> None:
        if await rq.count_persons_of_village(self.session, village.id):
            raise RegisterConflictError("the village still has persons or helpers; move them first")
        self.audit("village", village.id, "delete", {"name": village.name}, None)
        await self.session.delete(village)

    # ------------------------------------------------------------------ emergency teams

    async def add_team_member(self, village_id: int, values: Mapping[str, Any]) -> TeamMember:
        self._require_village(village_id)
        village = await rq.village_with_team(self.session, village_id)
        if village is None:
            raise RecordRefusedError("village_id", f"no village {village_id}")
        if any(m.phone == values["phone"] for m in village.team):
            raise RecordRefusedError(
                "phone", f"{values['phone']} is already in this village's team"
            )
        return (await self.add_team_members([{"village_id": village_id, **values}]))[0]

    async def add_team_members(self, rows: Iterable[Mapping[str, Any]]) -> list[TeamMember]:
        members = [TeamMember(**row) for row in rows]
        self.session.add_all(members)
        await self.session.flush()
        await self._audit_many(
            [("team_member", m.id, "create", None, columns_of(m, TEAM_FIELDS)) for m in members]
        )
        return members

    def update_team_member(self, member: TeamMember, values: Mapping[str, Any]) -> bool:
        before = columns_of(member, TEAM_FIELDS)
        _assign(member, values)
        return self._audit_change("team_member", member.id, before, columns_of(member, TEAM_FIELDS))

    async def remove_team_member(self, member: TeamMember) -> None:
        self.audit("team_member", member.id, "delete", columns_of(member, TEAM_FIELDS), None)
        await self.session.delete(member)

    # ------------------------------------------------------------------ helpers

    async def _check_helper(self, values: Mapping[str, Any], helper_id: int | None) -> None:
        if "village_id" in values:
            await self._existing_village("village_id", values["village_id"])
        if "phone" in values:
            other = await rq.helper_by_phone(self.session, values["phone"])
            if other is not None and other.id != helper_id:
                raise RecordRefusedError(
                    "phone", f"{values['phone']} is already the phone of helper {other.id}"
                )

    async def create_helper(self, values: Mapping[str, Any]) -> Helper:
        await self._check_helper(values, None)
        return (await self.create_helpers([values]))[0]

    async def create_helpers(self, rows: Iterable[Mapping[str, Any]]) -> list[Helper]:
        helpers = [Helper(**row) for row in rows]
        self.session.add_all(helpers)
        await self.session.flush()
        await self._audit_many(
            [("helper", h.id, "create", None, columns_of(h, HELPER_FIELDS)) for h in helpers]
        )
        return helpers

    async def update_helper(
        self, helper: Helper, values: Mapping[str, Any], *, checked: bool = False
    ) -> bool:
        if not checked:
            await self._check_helper(values, helper.id)
        before = columns_of(helper, HELPER_FIELDS)
        _assign(helper, values)
        return self._audit_change("helper", helper.id, before, columns_of(helper, HELPER_FIELDS))

    async def remove_helper(self, helper: Helper) -> None:
        if await rq.count_persons_of_helper(self.session, helper.id):
            raise RegisterConflictError("the helper still looks after persons; reassign them first")
        self.audit("helper", helper.id, "delete", columns_of(helper, HELPER_FIELDS), None)
        await self.session.delete(helper)

    # ------------------------------------------------------------------ persons

    async def _check_person(
        self, merged: Mapping[str, Any], changed: Mapping[str, Any], person_id: int | None
    ) -> None:
        """Cross-field and database checks; ``merged`` is the person as it would be."""
        if "village_id" in changed:
            await self._existing_village("village_id", merged["village_id"])
        if (
            changed.get("helper_id") is not None
            and await self.session.get(Helper, merged["helper_id"]) is None
        ):
            raise RecordRefusedError("helper_id", f"no helper {merged['helper_id']}")
        if "id_number" in changed or "gender" in changed:
            problem = describe_problem(merged["id_number"], merged["gender"])
            if problem is not None:
                raise RecordRefusedError("id_number", problem)
            other = await rq.person_by_id_number(self.session, merged["id_number"])
            if other is not None and other != person_id:
                raise RecordRefusedError("id_number", f"already in the register as person {other}")
        if merged.get("guardian_phone") and not merged.get("guardian_name"):
            raise RecordRefusedError("guardian_phone", "needs guardian_name as well")

    async def create_person(self, values: Mapping[str, Any]) -> Person:
        await self._check_person(values, values, None)
        return (await self.create_persons([values]))[0]

    async def create_persons(self, rows: Iterable[Mapping[str, Any]]) -> list[Person]:
        """New persons (already checked): inserted in bulk, read back by ID number."""
        values = [
            {"rules_override": {}, **row, "created_at": self.now, "updated_at": self.now}
            for row in rows
        ]
        await insert_many(self.session, Person, values)
        persons = await read_back(
            self.session, Person, Person.id_number_bidx, [row["id_number"] for row in values]
        )
        await self._audit_many(
            [("person", p.id, "create", None, person_snapshot(p)) for p in persons]
        )
        return persons

    async def update_person(
        self, person: Person, changes: Mapping[str, Any], *, checked: bool = False
    ) -> bool:
        """Change what differs; only that is kept in the history (the monthly replay of the
        台账 needs no more)."""
        before = person_snapshot(person)
        if not checked:
            await self._check_person({**before, **changes}, changes, person.id)
        old = _assign(person, changes)
        if not old:
            return False
        person.updated_at = self.now
        self.audit("person", person.id, "update", old, {key: changes[key] for key in old})
        return True

    async def leave(self, person: Person, reason: str) -> None:
        """The person leaves the register (每月动态调整); their devices are taken off too."""
        if person.removed_at is not None:
            raise RegisterConflictError("the person has already left the register")
        for device in list(person.devices):
            await self.remove_device(device)
        person.removed_at = self.now
        person.updated_at = self.now
        self.audit(
            "person",
            person.id,
            "remove",
            {"removed_at": None},
            {"removed_at": self.now.isoformat(), "reason": reason},
        )

    def restore(self, person: Person) -> None:
        if person.removed_at is None:
            raise RegisterConflictError("the person is on the register")
        self.audit(
            "person",
            person.id,
            "restore",
            {"removed_at": person.removed_at.isoformat()},
            {"removed_at": None},
        )
        person.removed_at = None
        person.updated_at = self.now

    async def delete_person(self, person: Person) -> None:
        """Undo a person entered by mistake; one with visits or alerts must be kept."""
        if await rq.person_has_records(self.session, person.id):
            raise RegisterConflictError(
                "the person has visits or alerts on record and cannot be deleted"
            )
        for device in list(person.devices):
            await self.remove_device(device)
        self.audit(
            "person",
            person.id,
            "delete",
            {**person_snapshot(person), "id_number": person.id_number},
            None,
        )
        await self.session.delete(person)

    # ------------------------------------------------------------------ devices

    async def _check_device(self, values: Mapping[str, Any], device_id: int | None) -> None:
        if "person_id" in values:
            person = await self.session.get(Person, values["person_id"])
            if person is None or not self._may_change(person.village_id):
                raise RecordRefusedError("person_id", f"no person {values['person_id']}")
        if values.get("topic"):
            other = await rq.device_by_topic(self.session, values["topic"])
            if other is not None and other.id != device_id:
                raise RecordRefusedError(
                    "topic",
                    f"MQTT topic {values['topic']!r} is already used by {other.uid!r}",
                )

    @staticmethod
    def with_topic(values: Mapping[str, Any]) -> dict[str, Any]:
        """``values`` with the protocol's default topic when none is given."""
        topic = values.get("topic") or default_topic(values["uid"], Protocol(values["protocol"]))
        return {**values, "topic": topic}

    async def create_device(self, values: Mapping[str, Any]) -> Device:
        values = self.with_topic(values)
        if await rq.device_with_person(self.session, values["uid"]) is not None:
            raise RecordRefusedError("uid", f"device uid {values['uid']!r} is already registered")
        await self._check_device(values, None)
        return (await self.create_devices([values]))[0]

    async def create_devices(self, rows: Iterable[Mapping[str, Any]]) -> list[Device]:
        """New devices (already checked) and their empty state rows, inserted in bulk."""
        values = [self.with_topic(row) for row in rows]
        await insert_many(self.session, Device, values)
        devices = await read_back(self.session, Device, Device.uid, [row["uid"] for row in values])
        await insert_many(self.session, DeviceState, [{"device_id": d.id} for d in devices])
        await self._audit_many(
            [("device", d.uid, "create", None, columns_of(d, DEVICE_FIELDS)) for d in devices]
        )
        return devices

    async def update_device(
        self, device: Device, values: Mapping[str, Any], *, checked: bool = False
    ) -> bool:
        # Ingest reloads its topic map from the database on its own (every 15 s).
        if not checked:
            await self._check_device(values, device.id)
        before = columns_of(device, DEVICE_FIELDS)
        _assign(device, values)
        return self._audit_change("device", device.uid, before, columns_of(device, DEVICE_FIELDS))

    async def remove_device(self, device: Device) -> None:
        self.audit("device", device.uid, "delete", columns_of(device, DEVICE_FIELDS), None)
        await self.session.delete(device)

    # ------------------------------------------------------------------ users

    async def set_user(
        self, username: str, values: Mapping[str, Any], *, password: str | None = None
    ) -> str:
        """Create or update a login: ``"created"``, ``"updated"`` or ``"unchanged"``.

        A new user needs a ``password``; without one nothing is created (``"skipped"``).
        The password is hashed again only when it changed. The model's own hook keeps every
        user change in the audit trail (whoever makes it, the console too), under this actor.
        """
        user = (
            await self.session.execute(select(User).where(User.username == username))
        ).scalar_one_or_none()
        if user is None:
            if password is None:
                return "skipped"
            self.session.add(
                User(
                    username=username,
                    password_hash=_hash(password),
                    created_at=self.now,
                    **values,
                )
            )
            return "created"
        changed = bool(_assign(user, values))
        if password is not None and not verify_password(password, user.password_hash):
            user.password_hash = _hash(password)
            changed = True
        return "updated" if changed else "unchanged"
