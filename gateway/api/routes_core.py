"""Auth, devices, events, unknown devices, persons; health and metrics."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from fastapi.responses import JSONResponse
from fastapi.security import OAuth2PasswordRequestForm

from gateway.api.deps import AdminUser, Ctx, CurrentUser, SessionDep
from gateway.api.schemas import DeviceOut, EventOut, EventPage, PersonOut, Token, UnknownDeviceOut
from gateway.auth import LoginThrottled, check_credentials
from gateway.register.vocabulary import Role
from gateway.security import issue_token
from gateway.storage import queries

__all__ = ["api", "public"]

api = APIRouter(prefix="/api/v1")
public = APIRouter()


@api.post("/auth/token", response_model=Token, tags=["auth"])
async def login(
    context: Ctx,
    session: SessionDep,
    request: Request,
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
) -> Token:
    client = request.client.host if request.client else "unknown"
    try:
        user = await check_credentials(
            session, form.username, form.password, client=client, now=context.clock.now()
        )
    except LoginThrottled as throttled:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            str(throttled),
            headers={"Retry-After": str(throttled.retry_after)},
        ) from throttled
    if user is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "wrong username or password",
            headers={"WWW-Authenticate": "Bearer"},
        )
    # Wall-clock time, not the injected clock: PyJWT checks iat/exp against the real time,
    # and under the demo's ScaledClock simulated time runs ahead, so a token stamped with it
    # would be "not yet valid" seconds later. A login's lifetime is real time anyway.
    issued_at = datetime.now(UTC)
    return Token(
        access_token=issue_token(
            context.secret_key, user.username, issued_at, version=user.token_version
        )
    )


@api.get("/persons", response_model=list[PersonOut], tags=["register"])
async def persons(
    user: CurrentUser, session: SessionDep, include_removed: bool = False
) -> list[PersonOut]:
    """The register; persons who left it only with ``include_removed``."""
    rows = await queries.list_persons(session, include_removed=include_removed, **user.scope())
    return [PersonOut.of(p, mask_id=user.role is Role.HELPER) for p in rows]


@api.get("/devices", response_model=list[DeviceOut], tags=["devices"])
async def devices(user: CurrentUser, session: SessionDep) -> list[DeviceOut]:
    return [DeviceOut.of(d) for d in await queries.list_devices(session, **user.scope())]


@api.get("/devices/{uid}", response_model=DeviceOut, tags=["devices"])
async def device(uid: str, user: CurrentUser, session: SessionDep) -> DeviceOut:
    found = await queries.device_by_uid(session, uid)
    if found is None or not user.can_see_person(found.person):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no device {uid!r}")
    return DeviceOut.of(found)


@api.get("/events", response_model=EventPage, tags=["devices"])
async def events(
    user: CurrentUser,
    session: SessionDep,
    device: str | None = None,
    since: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> EventPage:
    if since is not None and since.tzinfo is None:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "since must carry a UTC offset")
    total, rows = await queries.list_events(
        session, device=device, since=since, limit=limit, offset=offset, **user.scope()
    )
    return EventPage(total=total, items=[EventOut.of(e) for e in rows])


@api.get("/unknown-devices", response_model=list[UnknownDeviceOut], tags=["devices"])
async def unknown_devices(_user: AdminUser, session: SessionDep) -> list[UnknownDeviceOut]:
    return [UnknownDeviceOut.of(u) for u in await queries.list_unknown_devices(session)]


@api.get("/rejected-messages", tags=["devices"])
async def rejected_messages(
    _user: AdminUser, session: SessionDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> list[dict[str, object]]:
    rows = await queries.list_rejected(session, limit)
    return [
        {
            "id": r.id,
            "topic": r.topic,
            "device": r.device_uid,
            "reason": r.reason,
            "detail": r.detail,
            "payload": r.payload.decode("utf-8", errors="replace"),
            "payload_size": r.payload_size,
            "received_at": r.received_at.isoformat(),
        }
        for r in rows
    ]


@public.get("/healthz", tags=["ops"])
async def healthz(context: Ctx) -> JSONResponse:
    mqtt_state: str = context.health()
    database = "ok" if await context.db.ping() else "unreachable"
    healthy = mqtt_state == "connected" and database == "ok"
    return JSONResponse(
        {
            "status": "ok" if healthy else "degraded",
            "mqtt": mqtt_state,
            "database": database,
            # Which channel reaches people: "console" only prints (demo, development).
            "notifier": context.alerts.notifier.name,
        },
        status_code=200 if healthy else 503,
    )


@public.get("/metrics", tags=["ops"])
async def metrics(context: Ctx) -> Response:
    return Response(context.metrics.render(), media_type="text/plain; version=0.0.4")
