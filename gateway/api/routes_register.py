"""The register over HTTP: villages and their emergency teams, helpers, persons, devices.

Writes follow the read scoping of :class:`Principal`: a town_admin changes anything, a
village_officer only their own village (and cannot move anyone out of it), a helper reads
their own persons and changes nothing. Every change is kept in the audit log with who made
it and before/after; ``GET /persons/{id}/history`` shows a person's.
"""

from __future__ import annotations

from typing import Any, NoReturn

from fastapi import APIRouter, HTTPException, Response, status
from pydantic import BaseModel

from gateway import audit
from gateway.api.deps import (
    AdminUser,
    Ctx,
    CurrentUser,
    Principal,
    SessionDep,
    visible_person,
)
from gateway.api.errors import field_error
from gateway.api.schemas import DeviceOut
from gateway.api.schemas_register import (
    AuditOut,
    DeviceIn,
    DevicePatch,
    HelperIn,
    HelperOut,
    HelperPatch,
    PersonDetailOut,
    PersonIn,
    PersonPatch,
    RemovalIn,
    TeamMemberIn,
    TeamMemberOut,
    TeamMemberPatch,
    VillageIn,
    VillageOut,
)
from gateway.devices import default_topic
from gateway.register.apply import audit_person, person_snapshot
from gateway.register.history import audit_entity, columns_of, person_history
from gateway.register.idnumber import describe_problem
from gateway.register.vocabulary import Role
from gateway.storage import register_queries as rq
from gateway.storage.models import Device, DeviceState, Helper, Person, TeamMember, Village

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["register"])

_TEAM_FIELDS = ("village_id", "name", "phone", "role")
_HELPER_FIELDS = ("name", "phone", "title", "village_id")
_DEVICE_FIELDS = ("uid", "person_id", "kind", "protocol", "topic", "model")
#: Person fields that may be cleared with null; the others must keep a value.
_NULLABLE_PERSON_FIELDS = {"helper_id", "phone", "guardian_name", "guardian_phone"}


def _not_found(what: str) -> NoReturn:
    raise HTTPException(status.HTTP_404_NOT_FOUND, f"no {what}")


def _require_writer(user: Principal) -> None:
    if user.role is Role.HELPER:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, "helpers can read the register, not change it"
        )


def _require_village(user: Principal, village_id: int) -> None:
    if user.role is Role.VILLAGE_OFFICER and village_id != user.village_id:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, "a village_officer may only change their own village"
        )


def _plain(value: Any) -> Any:
    """Enums and lists of enums as the plain strings the tables hold."""
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value.value if hasattr(value, "value") else value


def _changes(body: BaseModel, nullable: set[str], *, partial: bool = True) -> dict[str, Any]:
    """The body's fields as column values: only those sent when ``partial`` (a PATCH)."""
    dumped = body.model_dump(exclude_unset=partial)
    changes = {key: _plain(value) for key, value in dumped.items()}
    for key, value in changes.items():
        if value is None and key not in nullable:
            field_error(key, "must not be null")
    return changes


# --------------------------------------------------------------------------- villages


@router.get("/villages", response_model=list[VillageOut])
async def list_villages(user: CurrentUser, session: SessionDep) -> list[VillageOut]:
    village_id: int | None = None
    if user.role is Role.VILLAGE_OFFICER:
        village_id = user.village_id if user.village_id is not None else -1
    elif user.role is Role.HELPER:
        helper = await session.get(Helper, user.helper_id) if user.helper_id else None
        village_id = helper.village_id if helper else -1
    return [VillageOut.of(v) for v in await rq.list_villages(session, village_id)]


@router.post("/villages", response_model=VillageOut, status_code=status.HTTP_201_CREATED)
async def create_village(
    body: VillageIn, user: AdminUser, session: SessionDep, context: Ctx
) -> VillageOut:
    if await rq.village_by_name(session, body.name) is not None:
        field_error("name", f"village {body.name!r} already exists")
    village = Village(name=body.name)
    session.add(village)
    await session.flush()
    audit_entity(
        session,
        now=context.clock.now(),
        actor=user.username,
        entity="village",
        entity_id=village.id,
        action="create",
        before=None,
        after={"name": body.name},
    )
    await session.commit()
    found = await rq.village_with_team(session, village.id)
    assert found is not None
    return VillageOut.of(found)


@router.patch("/villages/{village_id}", response_model=VillageOut)
async def rename_village(
    village_id: int, body: VillageIn, user: AdminUser, session: SessionDep, context: Ctx
) -> VillageOut:
    village = await rq.village_with_team(session, village_id)
    if village is None:
        _not_found(f"village {village_id}")
    if body.name != village.name:
        other = await rq.village_by_name(session, body.name)
        if other is not None:
            field_error("name", f"village {body.name!r} already exists")
        audit_entity(
            session,
            now=context.clock.now(),
            actor=user.username,
            entity="village",
            entity_id=village.id,
            action="update",
            before={"name": village.name},
            after={"name": body.name},
        )
        village.name = body.name
        await session.commit()
    return VillageOut.of(village)


@router.delete("/villages/{village_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_village(
    village_id: int, user: AdminUser, session: SessionDep, context: Ctx
) -> Response:
    village = await session.get(Village, village_id)
    if village is None:
        _not_found(f"village {village_id}")
    if await rq.count_persons_of_village(session, village_id):
        raise HTTPException(
            status.HTTP_409_CONFLICT, "the village still has persons or helpers; move them first"
        )
    audit_entity(
        session,
        now=context.clock.now(),
        actor=user.username,
        entity="village",
        entity_id=village_id,
        action="delete",
        before={"name": village.name},
        after=None,
    )
    await session.delete(village)
    await session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# --------------------------------------------------------------------------- emergency teams


@router.post(
    "/villages/{village_id}/team",
    response_model=TeamMemberOut,
    status_code=status.HTTP_201_CREATED,
)
async def add_team_member(
    village_id: int, body: TeamMemberIn, user: CurrentUser, session: SessionDep, context: Ctx
) -> TeamMemberOut:
    _require_writer(user)
    if await session.get(Village, village_id) is None:
        _not_found(f"village {village_id}")
    _require_village(user, village_id)
    village = await rq.village_with_team(session, village_id)
    assert village is not None
    if any(m.phone == body.phone for m in village.team):
        field_error("phone", f"{body.phone} is already in this village's team")
    member = TeamMember(village_id=village_id, name=body.name, phone=body.phone, role=body.role)
    session.add(member)
    await session.flush()
    audit_entity(
        session,
        now=context.clock.now(),
        actor=user.username,
        entity="team_member",
        entity_id=member.id,
        action="create",
        before=None,
        after=columns_of(member, _TEAM_FIELDS),
    )
    await session.commit()
    return TeamMemberOut.of(member)


async def _team_member(member_id: int, user: Principal, session: SessionDep) -> TeamMember:
    _require_writer(user)
    member = await rq.team_member(session, member_id)
    if member is None or (
        user.role is Role.VILLAGE_OFFICER and member.village_id != user.village_id
    ):
        _not_found(f"team member {member_id}")
    return member


@router.patch("/team-members/{member_id}", response_model=TeamMemberOut)
async def update_team_member(
    member_id: int, body: TeamMemberPatch, user: CurrentUser, session: SessionDep, context: Ctx
) -> TeamMemberOut:
    member = await _team_member(member_id, user, session)
    before = columns_of(member, _TEAM_FIELDS)
    for key, value in _changes(body, set()).items():
        setattr(member, key, value)
    after = columns_of(member, _TEAM_FIELDS)
    if after != before:
        audit_entity(
            session,
            now=context.clock.now(),
            actor=user.username,
            entity="team_member",
            entity_id=member.id,
            action="update",
            before=before,
            after=after,
        )
        await session.commit()
    return TeamMemberOut.of(member)


@router.delete("/team-members/{member_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_team_member(
    member_id: int, user: CurrentUser, session: SessionDep, context: Ctx
) -> Response:
    member = await _team_member(member_id, user, session)
    audit_entity(
        session,
        now=context.clock.now(),
        actor=user.username,
        entity="team_member",
        entity_id=member.id,
        action="delete",
        before=columns_of(member, _TEAM_FIELDS),
        after=None,
    )
    await session.delete(member)
    await session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# --------------------------------------------------------------------------- helpers


@router.get("/helpers", response_model=list[HelperOut])
async def list_helpers(user: CurrentUser, session: SessionDep) -> list[HelperOut]:
    if user.role is Role.VILLAGE_OFFICER:
        rows = await rq.list_helpers(session, village_id=user.village_id or -1)
    elif user.role is Role.HELPER:
        rows = await rq.list_helpers(session, helper_id=user.helper_id or -1)
    else:
        rows = await rq.list_helpers(session)
    return [HelperOut.of(h) for h in rows]


async def _check_helper_values(
    values: dict[str, Any], user: Principal, session: SessionDep, helper_id: int | None
) -> None:
    if "village_id" in values:
        if await session.get(Village, values["village_id"]) is None:
            field_error("village_id", f"no village {values['village_id']}")
        _require_village(user, values["village_id"])
    if "phone" in values:
        other = await rq.helper_by_phone(session, values["phone"])
        if other is not None and other.id != helper_id:
            field_error("phone", f"{values['phone']} is already the phone of helper {other.id}")


@router.post("/helpers", response_model=HelperOut, status_code=status.HTTP_201_CREATED)
async def create_helper(
    body: HelperIn, user: CurrentUser, session: SessionDep, context: Ctx
) -> HelperOut:
    _require_writer(user)
    values = _changes(body, set(), partial=False)
    await _check_helper_values(values, user, session, None)
    helper = Helper(**values)
    session.add(helper)
    await session.flush()
    audit_entity(
        session,
        now=context.clock.now(),
        actor=user.username,
        entity="helper",
        entity_id=helper.id,
        action="create",
        before=None,
        after=columns_of(helper, _HELPER_FIELDS),
    )
    await session.commit()
    return HelperOut.of(helper)


async def _writable_helper(helper_id: int, user: Principal, session: SessionDep) -> Helper:
    _require_writer(user)
    helper = await session.get(Helper, helper_id)
    if helper is None or (
        user.role is Role.VILLAGE_OFFICER and helper.village_id != user.village_id
    ):
        _not_found(f"helper {helper_id}")
    return helper


@router.patch("/helpers/{helper_id}", response_model=HelperOut)
async def update_helper(
    helper_id: int, body: HelperPatch, user: CurrentUser, session: SessionDep, context: Ctx
) -> HelperOut:
    helper = await _writable_helper(helper_id, user, session)
    values = _changes(body, set())
    await _check_helper_values(values, user, session, helper.id)
    before = columns_of(helper, _HELPER_FIELDS)
    for key, value in values.items():
        setattr(helper, key, value)
    after = columns_of(helper, _HELPER_FIELDS)
    if after != before:
        audit_entity(
            session,
            now=context.clock.now(),
            actor=user.username,
            entity="helper",
            entity_id=helper.id,
            action="update",
            before=before,
            after=after,
        )
        await session.commit()
    return HelperOut.of(helper)


@router.delete("/helpers/{helper_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_helper(
    helper_id: int, user: CurrentUser, session: SessionDep, context: Ctx
) -> Response:
    helper = await _writable_helper(helper_id, user, session)
    if await rq.count_persons_of_helper(session, helper_id):
        raise HTTPException(
            status.HTTP_409_CONFLICT, "the helper still looks after persons; reassign them first"
        )
    audit_entity(
        session,
        now=context.clock.now(),
        actor=user.username,
        entity="helper",
        entity_id=helper.id,
        action="delete",
        before=columns_of(helper, _HELPER_FIELDS),
        after=None,
    )
    await session.delete(helper)
    await session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# --------------------------------------------------------------------------- persons


@router.get("/persons/{person_id}", response_model=PersonDetailOut)
async def get_person(
    person_id: int, user: CurrentUser, session: SessionDep, context: Ctx
) -> PersonDetailOut:
    person = await visible_person(person_id, user, session)
    masked = user.role is Role.HELPER
    # Reading the full record (ID number, phones, health) is itself audited (SPEC §10).
    audit.record(
        session,
        now=context.clock.now(),
        actor=user.username,
        action="read",
        entity="person",
        entity_id=person_id,
        detail={"masked": masked},
    )
    await session.commit()
    return PersonDetailOut.of(person, mask_id=masked)


async def _check_person_values(
    merged: dict[str, Any],
    changed: dict[str, Any],
    user: Principal,
    session: SessionDep,
    person_id: int | None,
) -> None:
    """Cross-field and database checks; ``merged`` is the person as it would be."""
    if "village_id" in changed:
        if await session.get(Village, merged["village_id"]) is None:
            field_error("village_id", f"no village {merged['village_id']}")
        _require_village(user, merged["village_id"])
    if (
        changed.get("helper_id") is not None
        and await session.get(Helper, merged["helper_id"]) is None
    ):
        field_error("helper_id", f"no helper {merged['helper_id']}")
    if "id_number" in changed or "gender" in changed:
        problem = describe_problem(merged["id_number"], merged["gender"])
        if problem is not None:
            field_error("id_number", problem)
        other = await rq.person_by_id_number(session, merged["id_number"])
        if other is not None and other != person_id:
            field_error("id_number", f"already in the register as person {other}")
    if merged.get("guardian_phone") and not merged.get("guardian_name"):
        field_error("guardian_phone", "needs guardian_name as well")


@router.post("/persons", response_model=PersonDetailOut, status_code=status.HTTP_201_CREATED)
async def create_person(
    body: PersonIn, user: CurrentUser, session: SessionDep, context: Ctx
) -> PersonDetailOut:
    _require_writer(user)
    values = _changes(body, _NULLABLE_PERSON_FIELDS, partial=False)
    await _check_person_values(values, values, user, session, None)
    now = context.clock.now()
    person = Person(rules_override={}, created_at=now, updated_at=now, **values)
    session.add(person)
    await session.flush()
    audit_person(
        session,
        now=now,
        actor=user.username,
        person_id=person.id,
        before=None,
        after=person_snapshot(person),
    )
    await session.commit()
    created = await rq.person_with_relations(session, person.id)
    assert created is not None
    return PersonDetailOut.of(created, mask_id=False)


@router.patch("/persons/{person_id}", response_model=PersonDetailOut)
async def update_person(
    person_id: int, body: PersonPatch, user: CurrentUser, session: SessionDep, context: Ctx
) -> PersonDetailOut:
    _require_writer(user)
    person = await visible_person(person_id, user, session)
    before = person_snapshot(person)
    changes = _changes(body, _NULLABLE_PERSON_FIELDS)
    await _check_person_values({**before, **changes}, changes, user, session, person.id)
    diff = {key: value for key, value in changes.items() if before.get(key) != value}
    if diff:
        now = context.clock.now()
        for key, value in diff.items():
            setattr(person, key, value)
        person.updated_at = now
        # Only what changed, as the 台账 import records it: the monthly replay needs no more.
        audit_person(
            session,
            now=now,
            actor=user.username,
            person_id=person.id,
            before={key: before[key] for key in diff},
            after=diff,
        )
        await session.commit()
    updated = await rq.person_with_relations(session, person.id)
    assert updated is not None
    return PersonDetailOut.of(updated, mask_id=False)


@router.post("/persons/{person_id}/remove", response_model=PersonDetailOut)
async def remove_person(
    person_id: int, body: RemovalIn, user: CurrentUser, session: SessionDep, context: Ctx
) -> PersonDetailOut:
    """The person leaves the register (每月动态调整): gone from this month's 台账, lists,
    compliance and digests, kept in earlier months and in the history. Their devices are
    taken off the register too (the hardware is collected), so nothing raises alerts for a
    home nobody watches any more."""
    _require_writer(user)
    person = await visible_person(person_id, user, session)
    if person.removed_at is not None:
        raise HTTPException(status.HTTP_409_CONFLICT, "the person has already left the register")
    now = context.clock.now()
    for device in person.devices:
        audit_entity(
            session,
            now=now,
            actor=user.username,
            entity="device",
            entity_id=device.uid,
            action="delete",
            before=columns_of(device, _DEVICE_FIELDS),
            after=None,
        )
        await session.delete(device)
    person.removed_at = now
    person.updated_at = now
    audit_entity(
        session,
        now=now,
        actor=user.username,
        entity="person",
        entity_id=person.id,
        action="remove",
        before={"removed_at": None},
        after={"removed_at": now.isoformat(), "reason": body.reason},
    )
    await session.commit()
    removed = await rq.person_with_relations(session, person.id)
    assert removed is not None
    return PersonDetailOut.of(removed, mask_id=False)


@router.post("/persons/{person_id}/restore", response_model=PersonDetailOut)
async def restore_person(
    person_id: int, user: CurrentUser, session: SessionDep, context: Ctx
) -> PersonDetailOut:
    """Back on the register (removed by mistake, or in difficulty again)."""
    _require_writer(user)
    person = await visible_person(person_id, user, session)
    if person.removed_at is None:
        raise HTTPException(status.HTTP_409_CONFLICT, "the person is on the register")
    now = context.clock.now()
    audit_entity(
        session,
        now=now,
        actor=user.username,
        entity="person",
        entity_id=person.id,
        action="restore",
        before={"removed_at": person.removed_at.isoformat()},
        after={"removed_at": None},
    )
    person.removed_at = None
    person.updated_at = now
    await session.commit()
    restored = await rq.person_with_relations(session, person.id)
    assert restored is not None
    return PersonDetailOut.of(restored, mask_id=False)


@router.delete("/persons/{person_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_person(
    person_id: int, user: CurrentUser, session: SessionDep, context: Ctx
) -> Response:
    """Undo a person entered by mistake. Someone with visits or alerts has a history the
    register must keep, so they cannot be deleted (409)."""
    _require_writer(user)
    person = await visible_person(person_id, user, session)
    if await rq.person_has_records(session, person_id):
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            "the person has visits or alerts on record and cannot be deleted",
        )
    now = context.clock.now()
    for device in person.devices:
        audit_entity(
            session,
            now=now,
            actor=user.username,
            entity="device",
            entity_id=device.uid,
            action="delete",
            before=columns_of(device, _DEVICE_FIELDS),
            after=None,
        )
        await session.delete(device)
    audit_entity(
        session,
        now=now,
        actor=user.username,
        entity="person",
        entity_id=person.id,
        action="delete",
        before={**person_snapshot(person), "id_number": person.id_number},
        after=None,
    )
    await session.delete(person)
    await session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/persons/{person_id}/history", response_model=list[AuditOut])
async def get_person_history(
    person_id: int, user: CurrentUser, session: SessionDep, context: Ctx
) -> list[AuditOut]:
    await visible_person(person_id, user, session)
    entries = await person_history(session, person_id)
    result = [AuditOut.of(e, mask_id=user.role is Role.HELPER) for e in entries]
    audit.record(
        session,
        now=context.clock.now(),
        actor=user.username,
        action="read_history",
        entity="person",
        entity_id=person_id,
    )
    await session.commit()
    return result


# --------------------------------------------------------------------------- devices


async def _check_device_values(
    values: dict[str, Any], user: Principal, session: SessionDep, device_id: int | None
) -> None:
    if "person_id" in values:
        person = await rq.person_with_relations(session, values["person_id"])
        if person is None or not user.can_see_person(person):
            field_error("person_id", f"no person {values['person_id']}")
    if values.get("topic"):
        other = await rq.device_by_topic(session, values["topic"])
        if other is not None and other.id != device_id:
            field_error("topic", f"MQTT topic {values['topic']!r} is already used by {other.uid!r}")


async def _device_out(session: SessionDep, uid: str) -> DeviceOut:
    device = await rq.device_with_person(session, uid)
    assert device is not None
    return DeviceOut.of(device)


@router.post("/devices", response_model=DeviceOut, status_code=status.HTTP_201_CREATED)
async def create_device(
    body: DeviceIn, user: CurrentUser, session: SessionDep, context: Ctx
) -> DeviceOut:
    _require_writer(user)
    values = _changes(body, {"topic", "model"}, partial=False)
    if values.get("topic") is None:
        values["topic"] = default_topic(values["uid"], body.protocol)
    if await rq.device_with_person(session, values["uid"]) is not None:
        field_error("uid", f"device uid {values['uid']!r} is already registered")
    await _check_device_values(values, user, session, None)
    device = Device(**values)
    session.add(device)
    await session.flush()
    session.add(DeviceState(device_id=device.id))
    audit_entity(
        session,
        now=context.clock.now(),
        actor=user.username,
        entity="device",
        entity_id=device.uid,
        action="create",
        before=None,
        after=columns_of(device, _DEVICE_FIELDS),
    )
    await session.commit()
    return await _device_out(session, device.uid)


async def _writable_device(uid: str, user: Principal, session: SessionDep) -> Device:
    _require_writer(user)
    device = await rq.device_with_person(session, uid)
    if device is None or not user.can_see_person(device.person):
        _not_found(f"device {uid!r}")
    return device


@router.patch("/devices/{uid}", response_model=DeviceOut)
async def update_device(
    uid: str, body: DevicePatch, user: CurrentUser, session: SessionDep, context: Ctx
) -> DeviceOut:
    device = await _writable_device(uid, user, session)
    values = _changes(body, {"model"})
    await _check_device_values(values, user, session, device.id)
    before = columns_of(device, _DEVICE_FIELDS)
    for key, value in values.items():
        setattr(device, key, value)
    after = columns_of(device, _DEVICE_FIELDS)
    if after != before:
        # Ingest reloads its topic map from the database on its own (every 15 s).
        audit_entity(
            session,
            now=context.clock.now(),
            actor=user.username,
            entity="device",
            entity_id=device.uid,
            action="update",
            before=before,
            after=after,
        )
        await session.commit()
    return await _device_out(session, uid)


@router.delete("/devices/{uid}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_device(uid: str, user: CurrentUser, session: SessionDep, context: Ctx) -> Response:
    device = await _writable_device(uid, user, session)
    audit_entity(
        session,
        now=context.clock.now(),
        actor=user.username,
        entity="device",
        entity_id=device.uid,
        action="delete",
        before=columns_of(device, _DEVICE_FIELDS),
        after=None,
    )
    await session.delete(device)
    await session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
