"""Visits (走访) logged by helpers, with an optional photo kept on disk.

A helper logs visits to their own persons only, in their own name; officers and the town
log visits for the persons they can see, naming any registered helper. A visit time must
carry its UTC offset (a phone knows its zone; a guess could move a visit across midnight and
so across a week or a month) and may not lie in the future.
"""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Annotated, NoReturn

from fastapi import APIRouter, File, HTTPException, Query, Response, UploadFile, status
from fastapi.responses import FileResponse
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.api.deps import Ctx, CurrentUser, Principal, SessionDep
from gateway.api.errors import field_error
from gateway.api.schemas_register import VisitIn, VisitOut
from gateway.register.compliance import month_bounds
from gateway.register.history import audit_entity
from gateway.register.phones import normalize_phone
from gateway.register.vocabulary import Role
from gateway.storage import register_queries as rq
from gateway.storage.models import Helper, Visit

__all__ = ["MAX_PHOTO_BYTES", "check_photo", "router", "store_photo", "store_visit"]

router = APIRouter(prefix="/api/v1/visits", tags=["visits"])

#: A phone photo, resized or not, is well under this; anything bigger is not a snapshot.
MAX_PHOTO_BYTES = 8 * 1024 * 1024
#: Allowed photo formats by their leading bytes: the declared content type is not trusted.
_SIGNATURES: tuple[tuple[bytes, int, str, str], ...] = (
    (b"\xff\xd8\xff", 0, "jpg", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", 0, "png", "image/png"),
    (b"WEBP", 8, "webp", "image/webp"),
)
_MEDIA_TYPES = {ext: media for _sig, _at, ext, media in _SIGNATURES}
#: A phone clock running a little fast must not make a visit "in the future".
_CLOCK_SLACK = timedelta(minutes=5)


def _photo_kind(data: bytes) -> str | None:
    for signature, offset, ext, _media in _SIGNATURES:
        if data[offset : offset + len(signature)] == signature:
            if ext == "webp" and not data.startswith(b"RIFF"):
                continue
            return ext
    return None


def _not_found(visit_id: int) -> NoReturn:
    raise HTTPException(status.HTTP_404_NOT_FOUND, f"no visit {visit_id}")


@router.post("", response_model=VisitOut, status_code=status.HTTP_201_CREATED)
async def log_visit(
    body: VisitIn, user: CurrentUser, session: SessionDep, context: Ctx
) -> VisitOut:
    return VisitOut.of(await store_visit(body, user, session, context.clock.now()))


async def store_visit(
    body: VisitIn, user: Principal, session: AsyncSession, now: datetime
) -> Visit:
    """Check and store a visit (the API's and the console's one way in); a refusal is a
    422 naming the field."""
    if body.visited_at.tzinfo is None:
        field_error("visited_at", "must carry a UTC offset, e.g. 2026-03-10T09:30:00+08:00")
    if body.visited_at > now + _CLOCK_SLACK:
        field_error("visited_at", "is in the future")
    person = await rq.person_with_relations(session, body.person_id)
    if person is None or not user.can_see_person(person):
        field_error("person_id", f"no person {body.person_id}")
    helper = await rq.helper_by_phone(session, body.helper_phone)
    if helper is None:
        field_error("helper_phone", f"{body.helper_phone} is not a registered helper's phone")
    if user.role is Role.HELPER and helper.id != user.helper_id:
        field_error("helper_phone", "a helper logs visits in their own name")
    visit = Visit(
        person_id=person.id,
        helper_phone=helper.phone,
        visited_at=body.visited_at.astimezone(UTC),
        services=[s.value for s in body.services],
        notes=body.notes,
        photo_path=None,
        created_at=now,
        created_by=user.username,
    )
    session.add(visit)
    await session.commit()
    return visit


@router.get("", response_model=list[VisitOut])
async def list_visits(
    user: CurrentUser,
    session: SessionDep,
    context: Ctx,
    person_id: int | None = None,
    month: Annotated[str | None, Query(pattern=r"^\d{4}-\d{2}$")] = None,
    helper_phone: str | None = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> list[VisitOut]:
    """Newest first; ``month`` is a calendar month in the town's time zone."""
    since = until = None
    if month is not None:
        try:
            since, until = month_bounds(month, context.settings.tz)
        except ValueError as error:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(error)) from error
    phone = None
    if helper_phone is not None:
        try:
            phone = normalize_phone(helper_phone)
        except ValueError as error:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(error)) from error
    rows = await rq.list_visits(
        session,
        person_id=person_id,
        since=since,
        until=until,
        helper_phone=phone,
        limit=limit,
        **user.scope(),
    )
    return [VisitOut.of(v) for v in rows]


async def _visible_visit(visit_id: int, user: Principal, session: SessionDep) -> Visit:
    visit = await session.get(Visit, visit_id)
    if visit is None:
        _not_found(visit_id)
    person = await rq.person_with_relations(session, visit.person_id)
    if person is None or not user.can_see_person(person):
        _not_found(visit_id)
    return visit


@router.get("/{visit_id}", response_model=VisitOut)
async def get_visit(visit_id: int, user: CurrentUser, session: SessionDep) -> VisitOut:
    return VisitOut.of(await _visible_visit(visit_id, user, session))


@router.delete("/{visit_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_visit(
    visit_id: int, user: CurrentUser, session: SessionDep, context: Ctx
) -> Response:
    """Take back a visit logged by mistake: its author, or an officer who sees the person.
    Compliance counts visits, so the deletion is kept in the audit log."""
    visit = await _visible_visit(visit_id, user, session)
    if user.role is Role.HELPER and visit.created_by != user.username:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "a helper deletes only their own visits")
    audit_entity(
        session,
        now=context.clock.now(),
        actor=user.username,
        entity="visit",
        entity_id=visit.id,
        action="delete",
        before={
            "person_id": visit.person_id,
            "helper_phone": visit.helper_phone,
            "visited_at": visit.visited_at.isoformat(),
            "services": list(visit.services),
            "notes": visit.notes,
            "photo_path": visit.photo_path,
            "created_by": visit.created_by,
        },
        after=None,
    )
    photo = visit.photo_path
    await session.delete(visit)
    await session.commit()
    if photo:
        await asyncio.to_thread((Path(context.settings.data_dir) / photo).unlink, missing_ok=True)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{visit_id}/photo", response_model=VisitOut)
async def upload_photo(
    visit_id: int,
    user: CurrentUser,
    session: SessionDep,
    context: Ctx,
    photo: Annotated[UploadFile, File(description="JPEG, PNG or WebP, at most 8 MB")],
) -> VisitOut:
    visit = await _visible_visit(visit_id, user, session)
    if user.role is Role.HELPER:
        helper = await session.get(Helper, user.helper_id) if user.helper_id else None
        if helper is None or helper.phone != visit.helper_phone:
            raise HTTPException(status.HTTP_403_FORBIDDEN, "only the visiting helper adds a photo")
    data = await photo.read(MAX_PHOTO_BYTES + 1)
    await store_photo(visit, data, session, context.settings.data_dir, context.settings.tz)
    return VisitOut.of(visit)


def check_photo(data: bytes) -> str:
    """The photo's file extension; a 413 when over 8 MB, a 415 unless JPEG, PNG or WebP."""
    if len(data) > MAX_PHOTO_BYTES:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE, f"photo is larger than {MAX_PHOTO_BYTES} bytes"
        )
    kind = _photo_kind(data)
    if kind is None:
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, "photo must be a JPEG, PNG or WebP image"
        )
    return kind


async def store_photo(
    visit: Visit, data: bytes, session: AsyncSession, data_dir: Path, tz: tzinfo
) -> None:
    """Keep a visit's photo under ``data_dir`` (refused as :func:`check_photo` says)."""
    kind = check_photo(data)
    root = Path(data_dir)
    local_day = visit.visited_at.astimezone(tz)
    # Unguessable names: the directory may end up served or backed up somewhere shared.
    relative = Path("visits") / f"{local_day:%Y-%m}" / f"{visit.id}-{secrets.token_hex(8)}.{kind}"
    await asyncio.to_thread(_write_file, root / relative, data)
    previous = visit.photo_path
    visit.photo_path = relative.as_posix()
    await session.commit()
    if previous and previous != visit.photo_path:
        # The replaced photo goes only after the new one is recorded: a crash in between
        # leaves a stray file, never a visit pointing at nothing.
        await asyncio.to_thread((root / previous).unlink, missing_ok=True)


def _write_file(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


@router.get("/{visit_id}/photo", response_class=FileResponse)
async def get_photo(
    visit_id: int, user: CurrentUser, session: SessionDep, context: Ctx
) -> FileResponse:
    visit = await _visible_visit(visit_id, user, session)
    if visit.photo_path is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"visit {visit_id} has no photo")
    path = Path(context.settings.data_dir) / visit.photo_path
    if not path.is_file():
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"the photo of visit {visit_id} is missing")
    return FileResponse(path, media_type=_MEDIA_TYPES.get(path.suffix.lstrip("."), "image/jpeg"))
