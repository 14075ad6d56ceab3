"""The console's pages in-process (real app, real databases): login and CSRF, scoping,
the wall screen without names. The live behaviour is in tests/browser/."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from alerts.types import AlertTrigger, AlertType
from gateway.storage.db import Database
from tests.service.api_support import PASSWORD, Api, running_api


@pytest.fixture
async def api(db: Database, tmp_path: Path) -> AsyncIterator[Api]:
    async with running_api(db, tmp_path) as running:
        yield running


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([0-9a-f]+)"', html)
    assert found, "page has no CSRF field"
    return found.group(1)


async def login(client: httpx.AsyncClient, username: str) -> None:
    form = await client.get("/login")
    response = await client.post(
        "/login",
        data={"username": username, "password": PASSWORD, "csrf_token": _csrf(form.text)},
    )
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/"


async def _raise(api: Api, person_id: int, alert_type: AlertType = AlertType.SOS) -> int:
    from alerts.service import AlertService  # noqa: F401 - type only

    context = api.client._transport.app.state.context  # type: ignore[attr-defined]
    alert, _ = await context.alerts.raise_alert(
        AlertTrigger(type=alert_type, person_id=person_id, at=api.clock.now())
    )
    return int(alert.id)


async def test_every_page_needs_a_session(api: Api) -> None:
    for path in ("/", "/alerts/1", "/live/board"):
        response = await api.client.get(path)
        assert response.status_code in (303, 401), path
    response = await api.client.get("/")
    assert response.headers["location"] == "/login?next=/"


async def test_login_sets_an_httponly_lax_cookie_and_shows_the_board(api: Api) -> None:
    form = await api.client.get("/login")
    response = await api.client.post(
        "/login",
        data={"username": "admin", "password": PASSWORD, "csrf_token": _csrf(form.text)},
    )
    cookie = response.headers["set-cookie"]
    assert "homewatch_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    board = await api.client.get("/")
    assert board.status_code == 200 and "告警台" in board.text


async def test_a_wrong_password_or_a_missing_token_logs_nobody_in(api: Api) -> None:
    form = await api.client.get("/login")
    wrong = await api.client.post(
        "/login", data={"username": "admin", "password": "nope", "csrf_token": _csrf(form.text)}
    )
    assert wrong.status_code == 401 and "用户名或密码错误" in wrong.text
    forged = await api.client.post(
        "/login", data={"username": "admin", "password": PASSWORD, "csrf_token": "0" * 64}
    )
    assert forged.status_code == 401 and "homewatch_session" not in forged.headers.get(
        "set-cookie", ""
    )


async def test_ack_without_the_csrf_token_is_refused_and_changes_nothing(api: Api) -> None:
    await login(api.client, "admin")
    alert_id = await _raise(api, 1)
    refused = await api.client.post(f"/alerts/{alert_id}/ack", data={})
    assert refused.status_code == 403
    board = await api.client.get("/")
    assert 'data-status="open"' in board.text
    taken = await api.client.post(f"/alerts/{alert_id}/ack", data={"csrf_token": _csrf(board.text)})
    assert taken.status_code == 303
    board = await api.client.get("/")
    assert 'data-status="acknowledged"' in board.text


async def test_resolve_keeps_the_cause(api: Api) -> None:
    await login(api.client, "admin")
    alert_id = await _raise(api, 1)
    board = await api.client.get("/")
    closed = await api.client.post(
        f"/alerts/{alert_id}/resolve",
        data={"csrf_token": _csrf(board.text), "cause": "false_alarm", "note": "按错了"},
    )
    assert closed.status_code == 303
    detail = await api.client.get(f"/alerts/{alert_id}")
    assert "误报" in detail.text and "按错了" in detail.text


async def test_a_helper_sees_only_his_persons_alerts(api: Api) -> None:
    own = await _raise(api, 1)
    api.clock.advance(timedelta(seconds=1))
    await login(api.client, "akofficer")
    board = await api.client.get("/")
    assert "data-alert-code" not in board.text
    assert (await api.client.get(f"/alerts/{own}")).status_code == 404
