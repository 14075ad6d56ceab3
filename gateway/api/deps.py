"""What every route may depend on, as ``Annotated`` aliases."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.ext.asyncio import AsyncSession

from alerts.service import AlertService
from gateway.auth import active_user
from gateway.clock import Clock
from gateway.config import Settings
from gateway.metrics import Metrics
from gateway.register.vocabulary import Role
from gateway.security import TokenError, decode_token_version
from gateway.storage import register_queries as rq
from gateway.storage.db import Database
from gateway.storage.models import Person

__all__ = [
    "ApiContext",
    "Ctx",
    "CurrentUser",
    "Principal",
    "SessionDep",
    "principal_of",
    "visible_person",
]

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token")


@dataclass
class ApiContext:
    """The parts the API talks to; built by the composition root."""

    settings: Settings
    db: Database
    clock: Clock
    metrics: Metrics
    alerts: AlertService
    secret_key: str
    health: Any  # callable returning (mqtt_state: str) – the ingest's view of the broker


@dataclass(frozen=True)
class Principal:
    """The logged-in user and what they may see."""

    username: str
    role: Role
    village_id: int | None
    helper_id: int | None

    @property
    def is_admin(self) -> bool:
        return self.role is Role.TOWN_ADMIN

    def scope(self) -> dict[str, int]:
        """Query filters for what this user may see (-1 matches nothing)."""
        if self.role is Role.VILLAGE_OFFICER:
            return {"village_id": self.village_id if self.village_id is not None else -1}
        if self.role is Role.HELPER:
            return {"helper_id": self.helper_id if self.helper_id is not None else -1}
        return {}

    def can_see_person(self, person: Person) -> bool:
        if self.role is Role.TOWN_ADMIN:
            return True
        if self.role is Role.VILLAGE_OFFICER:
            return person.village_id == self.village_id
        return person.helper_id is not None and person.helper_id == self.helper_id


def get_context(request: Request) -> ApiContext:
    context: ApiContext = request.app.state.context
    return context


Ctx = Annotated[ApiContext, Depends(get_context)]


async def get_session(context: Ctx) -> AsyncIterator[AsyncSession]:
    async with context.db.session() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


async def get_current_user(
    context: Ctx, session: SessionDep, token: Annotated[str, Depends(oauth2_scheme)]
) -> Principal:
    unauthorized = HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail="invalid or expired token",
        headers={"WWW-Authenticate": "Bearer"},
    )
    try:
        username, version = decode_token_version(context.secret_key, token)
    except TokenError as error:
        raise unauthorized from error
    principal = await principal_of(session, username, version)
    # End the read's transaction: a long request (a what-if runs for minutes) must not sit
    # "idle in transaction" on a pooled connection; the session opens a new one if used.
    await session.commit()
    if principal is None:
        raise unauthorized
    return principal


async def principal_of(session: AsyncSession, username: str, version: int) -> Principal | None:
    """The user a token or session cookie of ``version`` stands for, or None when she is
    gone, disabled, or changed her password since it was issued."""
    user = await active_user(session, username, version)
    if user is None:
        return None
    return Principal(user.username, Role(user.role), user.village_id, user.helper_id)


CurrentUser = Annotated[Principal, Depends(get_current_user)]


def require_admin(user: CurrentUser) -> Principal:
    if not user.is_admin:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "town_admin only")
    return user


AdminUser = Annotated[Principal, Depends(require_admin)]


async def visible_person(person_id: int, user: Principal, session: AsyncSession) -> Person:
    """The person with village and helper loaded, or 404 when absent or not the user's to see
    (the same answer either way: a helper cannot probe for other villages' ids)."""
    person = await rq.person_with_relations(session, person_id)
    if person is None or not user.can_see_person(person):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no person {person_id}")
    return person
