"""Shapes of the register, visit and compliance API, validated as the provisioning file is.

Phones go through :func:`normalize_phone` (stored E.164), ID numbers through GB 11643's
:func:`describe_problem`, categories, care levels, genders, services, device kinds and
protocols through the notice's vocabularies; a bad value is a 422 whose ``loc`` names the
field.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from gateway.api.schemas import PersonOut
from gateway.register.compliance import ComplianceRow, ComplianceSummary
from gateway.register.idnumber import describe_problem, mask
from gateway.register.phones import normalize_phone
from gateway.register.vocabulary import (
    CareLevel,
    Category,
    DeviceKind,
    Gender,
    Protocol,
    Service,
)
from gateway.storage.models import AuditEntry, Person, Visit

__all__ = [
    "AuditOut",
    "ComplianceRowOut",
    "ComplianceSummaryOut",
    "DeviceIn",
    "DevicePatch",
    "HelperIn",
    "HelperOut",
    "HelperPatch",
    "PersonDetailOut",
    "PersonIn",
    "PersonPatch",
    "RemovalIn",
    "TeamMemberIn",
    "TeamMemberOut",
    "TeamMemberPatch",
    "VillageIn",
    "VillageOut",
    "VisitIn",
    "VisitOut",
]


def _phone(value: str) -> str:
    return normalize_phone(value)


def _id_number(value: str) -> str:
    # Pasted numbers carry spaces; one spelling (upper-case X) for the unique index.
    number = re.sub(r"\s+", "", value).upper()
    problem = describe_problem(number)
    if problem is not None:
        raise ValueError(problem)
    return number


def _distinct(values: list[Any]) -> list[Any]:
    if len(set(values)) != len(values):
        raise ValueError("lists an entry twice")
    return values


def _uid(value: str) -> str:
    if re.search(r"[\s/+#]", value):
        raise ValueError("must not contain whitespace, '/', '+' or '#' (it becomes a topic)")
    return value


def _topic(value: str) -> str:
    if "+" in value or "#" in value:
        raise ValueError("must not contain the MQTT wildcards '+' or '#'")
    if value.startswith(("/", "$")) or value.endswith("/"):
        raise ValueError("must not start with '/' or '$' or end with '/'")
    return value


Phone = Annotated[str, AfterValidator(_phone)]
IdNumber = Annotated[str, AfterValidator(_id_number)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
ShortText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)]
LongText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)]
Categories = Annotated[list[Category], Field(min_length=1), AfterValidator(_distinct)]
Services = Annotated[list[Service], Field(min_length=1), AfterValidator(_distinct)]
Uid = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=100),
    AfterValidator(_uid),
]
Topic = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=255),
    AfterValidator(_topic),
]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --------------------------------------------------------------------------- villages


class VillageIn(_In):
    name: Name


class TeamMemberIn(_In):
    name: Name
    phone: Phone
    role: ShortText = ""


class TeamMemberPatch(_In):
    name: Name | None = None
    phone: Phone | None = None
    role: ShortText | None = None


class _Out(BaseModel):
    """A public shape read straight off its table row: ``Out.model_validate(row)``."""

    model_config = ConfigDict(from_attributes=True)


class TeamMemberOut(_Out):
    id: int
    village_id: int
    name: str
    phone: str
    role: str


class VillageOut(_Out):
    model_config = ConfigDict(from_attributes=True, populate_by_name=True)

    id: int
    name: str
    #: The village row calls its team ``team``.
    emergency_team: list[TeamMemberOut] = Field(validation_alias="team")


# --------------------------------------------------------------------------- helpers


class HelperIn(_In):
    name: Name
    phone: Phone
    title: ShortText = ""
    village_id: int


class HelperPatch(_In):
    name: Name | None = None
    phone: Phone | None = None
    title: ShortText | None = None
    village_id: int | None = None


class HelperOut(_Out):
    id: int
    name: str
    phone: str
    title: str
    village_id: int


# --------------------------------------------------------------------------- persons


class PersonIn(_In):
    """A new 关爱对象: the provisioning file's person, with village and helper by id."""

    name: Name
    gender: Gender
    id_number: IdNumber
    village_id: int
    categories: Categories
    care_level: CareLevel
    helper_id: int | None = None
    measures: LongText = ""
    phone: Phone | None = None
    notes: LongText = ""
    address: Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)] = ""
    guardian_name: Name | None = None
    guardian_phone: Phone | None = None
    health_status: LongText = ""
    lifestyle: LongText = ""
    medical_checkup: LongText = ""


class PersonPatch(_In):
    """Only the fields given change; ``null`` clears the optional ones."""

    name: Name | None = None
    gender: Gender | None = None
    id_number: IdNumber | None = None
    village_id: int | None = None
    categories: Categories | None = None
    care_level: CareLevel | None = None
    helper_id: int | None = None
    measures: LongText | None = None
    phone: Phone | None = None
    notes: LongText | None = None
    address: Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)] | None = None
    guardian_name: Name | None = None
    guardian_phone: Phone | None = None
    health_status: LongText | None = None
    lifestyle: LongText | None = None
    medical_checkup: LongText | None = None


class PersonDetailOut(PersonOut):
    """The list's :class:`PersonOut` plus what the register edits: ids, guardian, the
    health record and timestamps."""

    village_id: int
    helper_id: int | None
    guardian_name: str | None
    guardian_phone: str | None
    health_status: str
    lifestyle: str
    medical_checkup: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, person: Person, *, mask_id: bool) -> PersonDetailOut:
        return cls(
            **PersonOut.of(person, mask_id=mask_id).model_dump(),
            village_id=person.village_id,
            helper_id=person.helper_id,
            guardian_name=person.guardian_name,
            guardian_phone=person.guardian_phone,
            health_status=person.health_status,
            lifestyle=person.lifestyle,
            medical_checkup=person.medical_checkup,
            created_at=person.created_at,
            updated_at=person.updated_at,
        )


class RemovalIn(_In):
    """Why the person leaves the register (moved away, died, no longer in difficulty)."""

    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class AuditOut(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    entity: str
    entity_id: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None

    @classmethod
    def of(cls, entry: AuditEntry, *, mask_id: bool) -> AuditOut:
        return cls(
            id=entry.id,
            at=entry.at,
            actor=entry.actor,
            action=entry.action,
            entity=entry.entity,
            entity_id=entry.entity_id,
            before=_masked(entry.before, mask_id),
            after=_masked(entry.after, mask_id),
        )


def _masked(values: dict[str, Any] | None, mask_id: bool) -> dict[str, Any] | None:
    if values is None or not mask_id or "id_number" not in values:
        return values
    return {**values, "id_number": mask(str(values["id_number"]))}


# --------------------------------------------------------------------------- devices


class DeviceIn(_In):
    uid: Uid
    person_id: int
    kind: DeviceKind
    protocol: Protocol
    #: None: the protocol's default topic for this uid.
    topic: Topic | None = None
    model: ShortText | None = None


class DevicePatch(_In):
    person_id: int | None = None
    kind: DeviceKind | None = None
    protocol: Protocol | None = None
    topic: Topic | None = None
    model: ShortText | None = None


# --------------------------------------------------------------------------- visits


class VisitIn(_In):
    person_id: int
    visited_at: datetime
    helper_phone: Phone
    services: Services
    notes: LongText = ""


class VisitOut(BaseModel):
    id: int
    person_id: int
    visited_at: datetime
    helper_phone: str
    services: list[str]
    notes: str
    has_photo: bool
    created_at: datetime
    created_by: str

    @classmethod
    def of(cls, visit: Visit) -> VisitOut:
        return cls(
            id=visit.id,
            person_id=visit.person_id,
            visited_at=visit.visited_at,
            helper_phone=visit.helper_phone,
            services=list(visit.services),
            notes=visit.notes,
            has_photo=visit.photo_path is not None,
            created_at=visit.created_at,
            created_by=visit.created_by,
        )


# --------------------------------------------------------------------------- compliance


class ComplianceRowOut(BaseModel):
    person_id: int
    name: str
    village: str
    care_level: str
    required: int
    done: int
    status: str
    helper_id: int | None
    helper_name: str

    @classmethod
    def of(cls, row: ComplianceRow) -> ComplianceRowOut:
        return cls(
            person_id=row.person_id,
            name=row.name,
            village=row.village,
            care_level=row.care_level.value,
            required=row.required,
            done=row.done,
            status=row.status.value,
            helper_id=row.helper_id,
            helper_name=row.helper_name,
        )


class ComplianceSummaryOut(BaseModel):
    key: str
    persons: int
    ok: int
    due: int
    overdue: int
    required: int
    done: int

    @classmethod
    def of(cls, row: ComplianceSummary) -> ComplianceSummaryOut:
        return cls(
            key=row.key,
            persons=row.persons,
            ok=row.ok,
            due=row.due,
            overdue=row.overdue,
            required=row.required,
            done=row.done,
        )
