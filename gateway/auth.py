"""Logging in, for the API and the console alike (SPEC §10).

* :func:`check_credentials` — username and password, throttled: 5 failures for one
  username, or from one client address, within 15 minutes refuse further attempts
  (:class:`LoginThrottled`, carrying the ``Retry-After`` seconds) until the oldest of them
  leaves the window. Failures are counted in the database, so gateways behind one address
  or one load balancer count together.
* :func:`active_user` — the user a token or session names, if she is still allowed in:
  not disabled, and her token version (bumped by a password change or disabling) unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.security import verify_password
from gateway.storage.models import LoginFailure, User

__all__ = [
    "FAILURE_LIMIT",
    "FAILURE_WINDOW",
    "LoginThrottled",
    "active_user",
    "check_credentials",
]

FAILURE_LIMIT = 5
FAILURE_WINDOW = timedelta(minutes=15)


@dataclass
class LoginThrottled(Exception):  # noqa: N818 - an outcome the caller answers with 429
    """Too many failures: answer 429 with ``Retry-After: retry_after``."""

    retry_after: int

    def __str__(self) -> str:
        return f"too many failed logins; retry after {self.retry_after} s"


async def _lifted_at(
    session: AsyncSession, where: ColumnElement[bool], since: datetime
) -> datetime | None:
    """When the throttle on this username or client lifts, or None if it is not on."""
    recent = (
        (
            await session.execute(
                select(LoginFailure.at)
                .where(where, LoginFailure.at > since)
                .order_by(LoginFailure.at.desc())
                .limit(FAILURE_LIMIT)
            )
        )
        .scalars()
        .all()
    )
    if len(recent) < FAILURE_LIMIT:
        return None
    return recent[-1] + FAILURE_WINDOW


async def check_credentials(
    session: AsyncSession, username: str, password: str, *, client: str, now: datetime
) -> User | None:
    """The user, when the password is right and she is enabled; None otherwise (a failure,
    counted). Raises :class:`LoginThrottled` without checking anything while throttled.

    Commits the session (the failure must be kept even though the caller answers 401).
    """
    client = client[:64]
    since = now - FAILURE_WINDOW
    lifts = [
        at
        for at in (
            await _lifted_at(session, LoginFailure.username == username, since),
            await _lifted_at(session, LoginFailure.client == client, since),
        )
        if at is not None
    ]
    if lifts:
        await session.rollback()
        raise LoginThrottled(max(1, math.ceil((max(lifts) - now).total_seconds())))
    user = (
        await session.execute(select(User).where(User.username == username))
    ).scalar_one_or_none()
    if (
        user is not None
        and user.disabled_at is None
        and verify_password(password, user.password_hash)
    ):
        await session.execute(delete(LoginFailure).where(LoginFailure.username == username))
        await session.commit()
        return user
    # Old failures are of no use to the throttle; drop them as new ones arrive.
    await session.execute(delete(LoginFailure).where(LoginFailure.at <= since))
    session.add(LoginFailure(at=now, username=username[:100], client=client))
    await session.commit()
    return None


async def active_user(session: AsyncSession, username: str, token_version: int) -> User | None:
    """The user a token (or console session) of ``token_version`` stands for, or None when
    she is gone, disabled, or changed her password since it was issued."""
    user = (
        await session.execute(select(User).where(User.username == username))
    ).scalar_one_or_none()
    if user is None or user.disabled_at is not None or user.token_version != token_version:
        return None
    return user
