"""The register over HTTP: villages and their emergency teams, helpers, persons, devices.

Every route is parse → authorise → command → public shape. The commands are the register
service's (gateway.register.service), shared with provisioning, the 台账 import and the
command line: it checks what the database must tell and keeps every change in the audit
log with who made it and before/after; ``GET /persons/{id}/history`` shows a person's.

Writes follow the read scoping of :class:`Principal`: a town_admin changes anything, a
village_officer only their own village (and cannot move anyone out of it), a helper reads
their own persons and changes nothing.
"""

from __future__ import annotations

from typing import Annotated, Any, NoReturn, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Response, status
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from gateway import audit
from gateway.api.deps import (
    AdminUser,
    ApiContext,
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
from gateway.register.history import person_history
from gateway.register.service import RegisterService
from gateway.register.vocabulary import Role
from gateway.storage import register_queries as rq
from gateway.storage.models import Device, Helper, Person, TeamMember, Village

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["register"])

#: Person fields that may be cleared with null; the others must keep a value.
_NULLABLE_PERSON_FIELDS = {"helper_id", "phone", "guardian_name", "guardian_phone"}
_NO_CONTENT = status.HTTP_204_NO_CONTENT
_Scoped = TypeVar("_Scoped", Helper, TeamMember)
_Public = TypeVar("_Public", bound=BaseModel)


def _register(user: CurrentUser, session: SessionDep, context: Ctx) -> RegisterService:
    return RegisterService(
        session,
        actor=user.username,
        now=context.clock.now(),
        village=user.village_id,
        all_villages=user.role is Role.TOWN_ADMIN,
    )


Register = Annotated[RegisterService, Depends(_register)]


def _not_found(what: str) -> NoReturn:
    raise HTTPException(status.HTTP_404_NOT_FOUND, f"no {what}")


def _require_writer(user: Principal) -> None:
    if user.role is Role.HELPER:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, "helpers can read the register, not change it"
        )


def _writable(row: _Scoped | None, user: Principal, what: str) -> _Scoped:
    """``row`` when the user may change it: 403 for a helper, 404 when absent or another
    village's (the same answer either way: an officer cannot probe for other ids)."""
    _require_writer(user)
    if row is None or (user.role is Role.VILLAGE_OFFICER and row.village_id != user.village_id):
        _not_found(what)
    return row


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


async def _person_out(register: RegisterService, person_id: int) -> PersonDetailOut:
    """The person as stored after the command, relations reloaded."""
    await register.commit()
    person = await rq.person_with_relations(register.session, person_id)
    assert person is not None
    return PersonDetailOut.of(person, mask_id=False)


async def _device_out(register: RegisterService, uid: str) -> DeviceOut:
    await register.commit()
    device = await rq.device_with_person(register.session, uid)
    assert device is not None
    return DeviceOut.of(device)


async def _read_audited(
    session: AsyncSession,
    context: ApiContext,
    user: Principal,
    action: str,
    person_id: int,
    detail: dict[str, Any] | None,
) -> None:
    """A read of a person's record, kept in the trail (SPEC §10)."""
    audit.record(
        session,
        now=context.clock.now(),
        actor=user.username,
        action=action,
        entity="person",
        entity_id=person_id,
        detail=detail,
    )
    await session.commit()


async def _saved(register: RegisterService, shape: type[_Public], row: object) -> _Public:
    """Commit the command and answer with the row's public shape."""
    await register.commit()
    return shape.model_validate(row)


async def _gone(register: RegisterService) -> Response:
    await register.commit()
    return Response(status_code=_NO_CONTENT)


# --------------------------------------------------------------------------- villages


@router.get("/villages", response_model=list[VillageOut])
async def list_villages(user: CurrentUser, session: SessionDep) -> list[VillageOut]:
    village_id: int | None = None
    if user.role is Role.VILLAGE_OFFICER:
        village_id = user.village_id if user.village_id is not None else -1
    elif user.role is Role.HELPER:
        helper = await session.get(Helper, user.helper_id) if user.helper_id else None
        village_id = helper.village_id if helper else -1
    return [VillageOut.model_validate(v) for v in await rq.list_villages(session, village_id)]


@router.post("/villages", response_model=VillageOut, status_code=status.HTTP_201_CREATED)
async def create_village(body: VillageIn, _user: AdminUser, register: Register) -> VillageOut:
    village = await register.create_village(body.name)
    await register.commit()
    found = await rq.village_with_team(register.session, village.id)
    return VillageOut.model_validate(found)


@router.patch("/villages/{village_id}", response_model=VillageOut)
async def rename_village(
    village_id: int, body: VillageIn, _user: AdminUser, register: Register
) -> VillageOut:
    village = await rq.village_with_team(register.session, village_id)
    if village is None:
        _not_found(f"village {village_id}")
    if await register.update_village(village, {"name": body.name}):
        await register.commit()
    return VillageOut.model_validate(village)


@router.delete("/villages/{village_id}", status_code=_NO_CONTENT)
async def delete_village(village_id: int, _user: AdminUser, register: Register) -> Response:
    village = await register.session.get(Village, village_id)
    if village is None:
        _not_found(f"village {village_id}")
    await register.remove_village(village)
    return await _gone(register)


# --------------------------------------------------------------------------- emergency teams


@router.post(
    "/villages/{village_id}/team",
    response_model=TeamMemberOut,
    status_code=status.HTTP_201_CREATED,
)
async def add_team_member(
    village_id: int, body: TeamMemberIn, user: CurrentUser, register: Register
) -> TeamMemberOut:
    _require_writer(user)
    if await register.session.get(Village, village_id) is None:
        _not_found(f"village {village_id}")
    member = await register.add_team_member(village_id, _changes(body, set(), partial=False))
    return await _saved(register, TeamMemberOut, member)


@router.patch("/team-members/{member_id}", response_model=TeamMemberOut)
async def update_team_member(
    member_id: int, body: TeamMemberPatch, user: CurrentUser, register: Register
) -> TeamMemberOut:
    member = _writable(
        await rq.team_member(register.session, member_id), user, f"team member {member_id}"
    )
    register.update_team_member(member, _changes(body, set()))
    return await _saved(register, TeamMemberOut, member)


@router.delete("/team-members/{member_id}", status_code=_NO_CONTENT)
async def delete_team_member(member_id: int, user: CurrentUser, register: Register) -> Response:
    member = _writable(
        await rq.team_member(register.session, member_id), user, f"team member {member_id}"
    )
    await register.remove_team_member(member)
    return await _gone(register)


# --------------------------------------------------------------------------- helpers


@router.get("/helpers", response_model=list[HelperOut])
async def list_helpers(user: CurrentUser, session: SessionDep) -> list[HelperOut]:
    if user.role is Role.VILLAGE_OFFICER:
        rows = await rq.list_helpers(session, village_id=user.village_id or -1)
    elif user.role is Role.HELPER:
        rows = await rq.list_helpers(session, helper_id=user.helper_id or -1)
    else:
        rows = await rq.list_helpers(session)
    return [HelperOut.model_validate(h) for h in rows]


@router.post("/helpers", response_model=HelperOut, status_code=status.HTTP_201_CREATED)
async def create_helper(body: HelperIn, user: CurrentUser, register: Register) -> HelperOut:
    _require_writer(user)
    helper = await register.create_helper(_changes(body, set(), partial=False))
    return await _saved(register, HelperOut, helper)


@router.patch("/helpers/{helper_id}", response_model=HelperOut)
async def update_helper(
    helper_id: int, body: HelperPatch, user: CurrentUser, register: Register
) -> HelperOut:
    helper = _writable(await register.session.get(Helper, helper_id), user, f"helper {helper_id}")
    await register.update_helper(helper, _changes(body, set()))
    return await _saved(register, HelperOut, helper)


@router.delete("/helpers/{helper_id}", status_code=_NO_CONTENT)
async def delete_helper(helper_id: int, user: CurrentUser, register: Register) -> Response:
    await register.remove_helper(
        _writable(await register.session.get(Helper, helper_id), user, f"helper {helper_id}")
    )
    return await _gone(register)


# --------------------------------------------------------------------------- persons


@router.get("/persons/{person_id}", response_model=PersonDetailOut)
async def get_person(
    person_id: int, user: CurrentUser, session: SessionDep, context: Ctx
) -> PersonDetailOut:
    person = await visible_person(person_id, user, session)
    masked = user.role is Role.HELPER
    # Reading the full record (ID number, phones, health) is itself audited (SPEC §10).
    await _read_audited(session, context, user, "read", person_id, {"masked": masked})
    return PersonDetailOut.of(person, mask_id=masked)


@router.post("/persons", response_model=PersonDetailOut, status_code=status.HTTP_201_CREATED)
async def create_person(body: PersonIn, user: CurrentUser, register: Register) -> PersonDetailOut:
    _require_writer(user)
    person = await register.create_person(_changes(body, _NULLABLE_PERSON_FIELDS, partial=False))
    return await _person_out(register, person.id)


async def _writable_person(person_id: int, user: Principal, register: RegisterService) -> Person:
    _require_writer(user)
    return await visible_person(person_id, user, register.session)


@router.patch("/persons/{person_id}", response_model=PersonDetailOut)
async def update_person(
    person_id: int, body: PersonPatch, user: CurrentUser, register: Register
) -> PersonDetailOut:
    person = await _writable_person(person_id, user, register)
    await register.update_person(person, _changes(body, _NULLABLE_PERSON_FIELDS))
    return await _person_out(register, person_id)


@router.post("/persons/{person_id}/remove", response_model=PersonDetailOut)
async def remove_person(
    person_id: int, body: RemovalIn, user: CurrentUser, register: Register
) -> PersonDetailOut:
    """The person leaves the register (每月动态调整): gone from this month's 台账, lists,
    compliance and digests, kept in earlier months and in the history. Their devices are
    taken off the register too (the hardware is collected), so nothing raises alerts for a
    home nobody watches any more."""
    await register.leave(await _writable_person(person_id, user, register), body.reason)
    return await _person_out(register, person_id)


@router.post("/persons/{person_id}/restore", response_model=PersonDetailOut)
async def restore_person(person_id: int, user: CurrentUser, register: Register) -> PersonDetailOut:
    """Back on the register (removed by mistake, or in difficulty again)."""
    register.restore(await _writable_person(person_id, user, register))
    return await _person_out(register, person_id)


@router.delete("/persons/{person_id}", status_code=_NO_CONTENT)
async def delete_person(person_id: int, user: CurrentUser, register: Register) -> Response:
    """Undo a person entered by mistake. Someone with visits or alerts has a history the
    register must keep, so they cannot be deleted (409)."""
    await register.delete_person(await _writable_person(person_id, user, register))
    return await _gone(register)


@router.get("/persons/{person_id}/history", response_model=list[AuditOut])
async def get_person_history(
    person_id: int, user: CurrentUser, session: SessionDep, context: Ctx
) -> list[AuditOut]:
    await visible_person(person_id, user, session)
    entries = await person_history(session, person_id)
    result = [AuditOut.of(e, mask_id=user.role is Role.HELPER) for e in entries]
    await _read_audited(session, context, user, "read_history", person_id, None)
    return result


# --------------------------------------------------------------------------- devices


@router.post("/devices", response_model=DeviceOut, status_code=status.HTTP_201_CREATED)
async def create_device(body: DeviceIn, user: CurrentUser, register: Register) -> DeviceOut:
    _require_writer(user)
    device = await register.create_device(_changes(body, {"topic", "model"}, partial=False))
    return await _device_out(register, device.uid)


async def _writable_device(uid: str, user: Principal, register: RegisterService) -> Device:
    _require_writer(user)
    device = await rq.device_with_person(register.session, uid)
    if device is None or not user.can_see_person(device.person):
        _not_found(f"device {uid!r}")
    return device


@router.patch("/devices/{uid}", response_model=DeviceOut)
async def update_device(
    uid: str, body: DevicePatch, user: CurrentUser, register: Register
) -> DeviceOut:
    device = await _writable_device(uid, user, register)
    await register.update_device(device, _changes(body, {"model"}))
    return await _device_out(register, uid)


@router.delete("/devices/{uid}", status_code=_NO_CONTENT)
async def delete_device(uid: str, user: CurrentUser, register: Register) -> Response:
    await register.remove_device(await _writable_device(uid, user, register))
    return await _gone(register)
