"""The console's pages in-process (real app, real databases): login and CSRF, scoping,
the wall screen without names. The live behaviour is in tests/browser/."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from alerts.types import AlertTrigger, AlertType
from gateway.api.deps import ApiContext
from gateway.console.text import catalogue
from gateway.storage import queries
from gateway.storage.db import Database
from gateway.storage.models import User
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


def _context(api: Api) -> ApiContext:
    """The running app's parts (its AlertService above all)."""
    context: ApiContext = api.client._transport.app.state.context  # type: ignore[attr-defined]
    return context


async def _raise(api: Api, person_id: int, alert_type: AlertType = AlertType.SOS) -> int:
    alert, _ = await _context(api).alerts.raise_alert(
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


async def test_the_console_login_shares_the_api_throttle(api: Api) -> None:
    """Five wrong passwords on the console lock the username for the API as well."""
    for _ in range(5):
        form = await api.client.get("/login")
        wrong = await api.client.post(
            "/login",
            data={"username": "admin", "password": "nope", "csrf_token": _csrf(form.text)},
        )
        assert wrong.status_code == 401
    form = await api.client.get("/login")
    locked = await api.client.post(
        "/login", data={"username": "admin", "password": PASSWORD, "csrf_token": _csrf(form.text)}
    )
    assert locked.status_code == 429 and int(locked.headers["retry-after"]) > 0
    assert "登录失败次数过多" in locked.text
    assert "homewatch_session" not in locked.headers.get("set-cookie", "")
    token = await api.client.post(
        "/api/v1/auth/token", data={"username": "admin", "password": PASSWORD}
    )
    assert token.status_code == 429


async def test_disabling_a_user_ends_her_console_session(api: Api) -> None:
    await login(api.client, "lisi")
    assert (await api.client.get("/")).status_code == 200
    async with api.db.session() as session, session.begin():
        user = (await session.execute(select(User).where(User.username == "lisi"))).scalar_one()
        user.disabled_at = api.clock.now()
    ended = await api.client.get("/")
    assert ended.status_code == 303 and ended.headers["location"].startswith("/login")


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


async def test_an_alert_taken_while_the_board_is_read_is_one_row(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The board reads the open alerts, then the acknowledged ones: an alert taken by
    someone else in between is in both reads and must still be drawn once (the browser
    test caught two identical rows under a loaded machine)."""
    alert_id = await _raise(api, 1)
    read = queries.list_alerts

    async def taken_after_the_open_read(session: Any, *, status: str | None, **scope: Any) -> Any:
        found = await read(session, status=status, **scope)
        if status == "open":
            await _context(api).alerts.acknowledge(alert_id, "bmofficer")
        return found

    monkeypatch.setattr(queries, "list_alerts", taken_after_the_open_read)
    await login(api.client, "admin")
    board = await api.client.get("/")
    assert board.status_code == 200
    assert board.text.count(f'data-alert-id="{alert_id}"') == 1


async def test_a_helper_sees_only_his_persons_alerts(api: Api) -> None:
    own = await _raise(api, 1)
    api.clock.advance(timedelta(seconds=1))
    await login(api.client, "akofficer")
    board = await api.client.get("/")
    assert "data-alert-code" not in board.text
    assert (await api.client.get(f"/alerts/{own}")).status_code == 404


async def test_the_wall_screen_needs_no_login_and_shows_no_names(api: Api) -> None:
    await _raise(api, 1)
    wall = await api.client.get("/wall")
    assert wall.status_code == 200
    assert 'data-count="open">1<' in wall.text
    for private in ("老人0", "老人1", "坝芒村3组", "+86"):
        assert private not in wall.text


async def test_homes_person_and_visit_pages_follow_the_api_scoping(api: Api) -> None:
    await login(api.client, "lisi")
    homes = await api.client.get("/homes")
    assert homes.status_code == 200 and "老人0" in homes.text
    person = await api.client.get("/persons/1")
    assert person.status_code == 200
    # A helper sees ID numbers masked, as in the API.
    assert re.search(r'data-field="id_number">\d{4}\*{10}\d{3}[\dX]<', person.text)
    form = await api.client.get("/visits/new")
    saved = await api.client.post(
        "/visits/new",
        data={
            "csrf_token": _csrf(form.text),
            "person_id": "1",
            "visited_at": api.clock.now().astimezone(api.settings.tz).strftime("%Y-%m-%dT%H:%M"),
            "helper_phone": "+8613700000001",
            "services": ["daily_care", "health"],
            "notes": "精神不错",
        },
    )
    assert saved.status_code == 303, saved.text
    visits = await api.client.get("/persons/1")
    assert "生活照料、健康保健" in visits.text and "精神不错" in visits.text


async def test_a_visit_without_a_person_is_refused_naming_the_field(api: Api) -> None:
    await login(api.client, "admin")
    form = await api.client.get("/visits/new")
    refused = await api.client.post(
        "/visits/new",
        data={"csrf_token": _csrf(form.text), "services": ["daily_care"], "notes": "x"},
    )
    assert refused.status_code == 422
    assert 'data-problem-field="person_id"' in refused.text


async def test_an_unanswered_alert_turns_amber_after_60_s_and_red_after_180_s(api: Api) -> None:
    await login(api.client, "admin")
    await _raise(api, 1)

    async def ageing() -> str:
        board = await api.client.get("/")
        found = re.search(r'class="alert-row sev-emergency ([a-z-]*)\s*"', board.text)
        assert found, board.text
        return found.group(1)

    assert await ageing() == ""
    api.clock.advance(61)
    assert await ageing() == "age-amber"
    api.clock.advance(120)
    assert await ageing() == "age-red"


async def test_reports_give_the_time_to_acknowledge_and_the_false_alarm_share(api: Api) -> None:
    await login(api.client, "admin")
    first = await _raise(api, 1)
    second = await _raise(api, 2, AlertType.FALL)
    context = _context(api)
    api.clock.advance(30)
    await context.alerts.acknowledge(first, "admin")
    api.clock.advance(90)
    await context.alerts.acknowledge(second, "admin")
    board = await api.client.get("/")
    await api.client.post(
        f"/alerts/{first}/resolve", data={"csrf_token": _csrf(board.text), "cause": "false_alarm"}
    )
    await api.client.post(
        f"/alerts/{second}/resolve", data={"csrf_token": _csrf(board.text), "cause": "real"}
    )
    year = api.clock.now().astimezone(api.settings.tz).year
    reports = await api.client.get(f"/reports?year={year}")
    assert reports.status_code == 200
    # Medians of 30 s and 120 s: 75 s; one of the two within 60 s; one false alarm of two.
    assert "1 分 15 秒" in reports.text
    assert "50.0%" in re.sub(r"\s+", "", reports.text).replace("✕", "")
    share = re.search(r'data-testid="false-share"><b>([\d.]+)%', reports.text)
    assert share and share.group(1) == "50.0"


async def test_helpers_get_no_register_or_reports(api: Api) -> None:
    await login(api.client, "lisi")
    for path in ("/register", "/reports", "/register/export.xlsx"):
        response = await api.client.get(path)
        assert response.status_code == 403, path


async def test_the_console_speaks_english_on_request(api: Api) -> None:
    await login(api.client, "admin")
    await _raise(api, 1)
    switched = await api.client.get("/language/en?next=/homes")
    assert switched.status_code == 303 and switched.headers["location"] == "/homes"
    for path in (
        "/",
        "/homes",
        "/persons/1",
        "/visits/new",
        "/compliance",
        "/register",
        "/reports",
        "/wall",
    ):
        page = await api.client.get(path)
        assert page.status_code == 200, path
        assert '<html lang="en">' in page.text, path
    board = await api.client.get("/")
    assert "Alert board" in board.text and "Unanswered" in board.text
    await api.client.get("/language/zh-CN")
    assert "告警台" in (await api.client.get("/")).text


def test_every_language_has_every_word() -> None:
    def keys(tree: dict[str, object], prefix: str = "") -> set[str]:
        found = set()
        for key, value in tree.items():
            found.add(prefix + key)
            if isinstance(value, dict):
                found |= keys(value, f"{prefix}{key}.")
        return found

    assert keys(catalogue("en")) == keys(catalogue("zh-CN"))
