"""Login throttling and ending sessions (SPEC §10), through the real API on both databases."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from gateway.auth import LoginThrottled, check_credentials
from gateway.cli import main
from gateway.security import hash_password
from gateway.storage.db import Database
from gateway.storage.models import LoginFailure, User
from tests.service.api_support import PASSWORD, Api, running_api


async def _login(api: Api, username: str, password: str) -> httpx.Response:
    return await api.client.post(
        "/api/v1/auth/token", data={"username": username, "password": password}
    )


async def test_five_failures_for_a_username_lock_it_for_fifteen_minutes(
    db: Database, tmp_path: Path
) -> None:
    async with running_api(db, tmp_path) as api:
        for _ in range(5):
            assert (await _login(api, "admin", "wrong-password")).status_code == 401
        locked = await _login(api, "admin", PASSWORD)
        assert locked.status_code == 429, "even the right password waits out the lock"
        assert int(locked.headers["Retry-After"]) == 15 * 60
        # Another user from the same client is locked too (5 failures from this address).
        assert (await _login(api, "lisi", PASSWORD)).status_code == 429

        api.clock.advance(timedelta(minutes=10))
        retry = await _login(api, "admin", PASSWORD)
        assert retry.status_code == 429 and int(retry.headers["Retry-After"]) == 5 * 60
        api.clock.advance(timedelta(minutes=5, seconds=1))
        assert (await _login(api, "admin", PASSWORD)).status_code == 200


async def test_failures_count_per_client_address_across_usernames(
    db: Database, tmp_path: Path
) -> None:
    async with running_api(db, tmp_path) as api:
        for name in ("a1", "a2", "a3", "a4", "a5"):
            assert (await _login(api, name, "whatever-pass")).status_code == 401
        assert (await _login(api, "admin", PASSWORD)).status_code == 429
    # The count lives in the database: another gateway (here: a direct call, as the console
    # makes it) sees the same lock for that address, and none for another address.
    async with db.session() as session:
        with pytest.raises(LoginThrottled):
            await check_credentials(
                session, "admin", PASSWORD, client="127.0.0.1", now=api.clock.now()
            )
    async with db.session() as session:
        user = await check_credentials(
            session, "admin", PASSWORD, client="10.0.0.7", now=api.clock.now()
        )
        assert user is not None and user.username == "admin"


async def test_a_success_clears_the_username_and_old_failures_are_pruned(
    db: Database, tmp_path: Path
) -> None:
    async with running_api(db, tmp_path) as api:
        for _ in range(4):
            await _login(api, "admin", "wrong-password")
        assert (await _login(api, "admin", PASSWORD)).status_code == 200
        api.clock.advance(timedelta(minutes=16))
        await _login(api, "nobody", "wrong-password")
    async with db.session() as session:
        kept = (await session.execute(select(LoginFailure.username))).scalars().all()
    assert kept == ["nobody"]


async def test_disabling_or_a_new_password_ends_the_tokens_issued_before(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_api(db, tmp_path) as api:
        admin = await api.login("admin")
        helper = await api.login("lisi")
        assert (await api.client.get("/api/v1/persons", headers=helper)).status_code == 200

        monkeypatch.setenv("HOMEWATCH_DATABASE_URL", db.url)
        assert await asyncio.to_thread(main, ["user", "disable", "lisi"]) == 0
        assert (await api.client.get("/api/v1/persons", headers=helper)).status_code == 401
        assert (await _login(api, "lisi", PASSWORD)).status_code == 401
        assert await asyncio.to_thread(main, ["user", "enable", "lisi"]) == 0
        assert (await api.client.get("/api/v1/persons", headers=helper)).status_code == 401, (
            "re-enabling must not revive the old token"
        )
        assert (await _login(api, "lisi", PASSWORD)).status_code == 200

        async with db.session() as session, session.begin():
            user = (
                await session.execute(select(User).where(User.username == "admin"))
            ).scalar_one()
            user.password_hash = hash_password("another-password-1")
        assert (await api.client.get("/api/v1/persons", headers=admin)).status_code == 401
        assert (await _login(api, "admin", "another-password-1")).status_code == 200
        assert await asyncio.to_thread(main, ["user", "disable", "nobody"]) == 2
