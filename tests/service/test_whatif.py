"""What-if (SPEC §12 in the console and API): the stored events replayed under the thresholds
an officer picks, per home next to the alerts actually raised; and the alert page's
explanation of a learned routine's alert. Real app, real databases."""

from __future__ import annotations

import asyncio
import os
import sys
from collections import Counter
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.exc import DBAPIError

from alerts.types import AlertTrigger, AlertType
from gateway.config import load_settings
from gateway.replay import load_register, replay_events, stored_events
from gateway.storage.db import Database
from gateway.storage.models import Event, Person
from gateway.whatif import (
    RUNNER,
    WhatIfChoice,
    WhatIfFailedError,
    WhatIfRunner,
    read_only_database,
    run_what_if,
)
from tests.conftest import wait_until
from tests.helpers import GATEWAY_START
from tests.service.api_support import Api, running_api
from tests.service.test_console import _context, login


@pytest.fixture
async def api(db: Database, tmp_path: Path) -> AsyncIterator[Api]:
    async with running_api(db, tmp_path) as running:
        yield running


async def _store_motion(api: Api, moments: list[datetime]) -> None:
    """The first resident's PIR reports, as the ingest stores them; both residents were
    registered a month ago."""
    async with api.db.session() as session, session.begin():
        await session.execute(
            update(Person).values(created_at=api.clock.now() - timedelta(days=30))
        )
        for n, moment in enumerate(moments):
            # Occupancy, and its clearing a minute and a half later (a PIR that never
            # clears is a stuck sensor, whose reports stop counting).
            for state, at in ((True, moment), (False, moment + timedelta(seconds=90))):
                session.add(
                    Event(
                        device_uid="api-p0-pir",
                        kind="motion",
                        state=state,
                        occurred_at=at,
                        received_at=at,
                        event_id=f"m{n}{state}",
                        dedup_key=f"api-p0-pir:m{n}{state}",
                    )
                )


async def _one_quiet_day(api: Api) -> None:
    """Two days back: a movement, then nothing for 22.5 hours, then every half hour."""
    now = api.clock.now()
    quiet_from = now - timedelta(days=2) + timedelta(minutes=30)
    busy_from = quiet_from + timedelta(hours=22, minutes=30)
    busy = [
        busy_from + timedelta(minutes=30 * n)
        for n in range(int((now - busy_from) / timedelta(minutes=30)))
    ]
    await _store_motion(api, [quiet_from, *busy])


async def test_the_api_compares_what_a_threshold_would_have_raised_with_what_was(
    api: Api,
) -> None:
    await _one_quiet_day(api)
    await _context(api).alerts.raise_alert(
        AlertTrigger(type=AlertType.INACTIVITY, person_id=1, at=api.clock.now())
    )
    api.clock.advance(timedelta(minutes=1))
    headers = await api.login("admin")

    usual = await api.client.get("/api/v1/whatif", params={"days": 2}, headers=headers)
    assert usual.status_code == 200, usual.text
    body = usual.json()
    assert body["day_quiet_minutes"] == 240 and not body["learned"]
    first, second = body["homes"]
    # Four hours by day: the 22.5 h silence raises an alert at 14:30, and again four hours
    # after each (nobody answers a replayed alert: it counts as resolved after an hour).
    assert first["would"]["inactivity"] == 3
    assert first["actual"] == {"inactivity": 1}
    # The second resident's sensors never reported: no silence to judge; silent devices.
    assert "inactivity" not in second["would"] and second["actual"] == {}
    assert second["would"] == {"device_offline": 1}

    lenient = await api.client.get(
        "/api/v1/whatif",
        params={"days": 2, "day_hours": 24, "night_hours": 24},
        headers=headers,
    )
    assert lenient.status_code == 200, lenient.text
    assert "inactivity" not in lenient.json()["homes"][0]["would"]


async def test_a_bad_choice_is_refused_naming_the_field(api: Api) -> None:
    headers = await api.login("admin")
    refused = await api.client.get("/api/v1/whatif", params={"days": 400}, headers=headers)
    assert refused.status_code == 422
    assert "days" in refused.text


async def test_the_console_page_shows_would_and_actual_per_home_for_admins_only(
    api: Api,
) -> None:
    await _one_quiet_day(api)
    await login(api.client, "admin")
    form = await api.client.get("/whatif")
    assert form.status_code == 200
    assert 'data-testid="whatif-form"' in form.text and "whatif-result" not in form.text
    page = await api.client.get(
        "/whatif", params={"run": "true", "days": 2, "mode": "fixed", "day_hours": 4}
    )
    assert page.status_code == 200
    assert 'data-testid="whatif-result"' in page.text
    assert 'data-total-would="inactivity">3<' in page.text
    learned = await api.client.get("/whatif", params={"run": "true", "days": 2, "mode": "learned"})
    assert learned.status_code == 200 and 'value="learned" selected' in learned.text

    await api.client.post("/logout")
    api.client.cookies.clear()
    await login(api.client, "lisi")
    assert (await api.client.get("/whatif")).status_code == 403


async def test_the_alert_page_says_why_a_learned_routine_raised_it(api: Api) -> None:
    alert, _ = await _context(api).alerts.raise_alert(
        AlertTrigger(
            type=AlertType.INACTIVITY,
            person_id=1,
            at=api.clock.now(),
            detail={
                "since": "06:10",
                "usual_by": "07:40",
                "now": "09:10",
                "explanation": "通常 07:40 前有活动，现在 09:10 仍无活动",
            },
        )
    )
    await login(api.client, "admin")
    page = await api.client.get(f"/alerts/{alert.id}")
    assert '<dd data-testid="why">通常 07:40 前有活动，现在 09:10 仍无活动</dd>' in page.text


# -- in a child process, one at a time ------------------------------------------------------


_ANSWER = (
    '{"homes": [{"person_id": 1, "name": "老人0", "village": "坝芒村", '
    '"would": {"inactivity": 2}, "actual": {}}]}'
)


def _stand_in(tmp_path: Path, answer: str = _ANSWER) -> list[str]:
    """A child that notes its pid in ``started``, then answers once ``go`` exists."""
    script = (
        "import os, sys, time\n"
        "sys.stdin.readline()\n"
        "started, go, answer = sys.argv[1:]\n"
        "with open(started, 'a') as f: f.write(f'{os.getpid()}\\n')\n"
        "while not os.path.exists(go): time.sleep(0.01)\n"
        "sys.stdout.write(answer)\n"
    )
    return [sys.executable, "-c", script, str(tmp_path / "started"), str(tmp_path / "go"), answer]


def _started(tmp_path: Path) -> list[int]:
    """The pids of the stand-ins started so far."""
    path = tmp_path / "started"
    return [int(pid) for pid in path.read_text().split()] if path.exists() else []


async def test_the_replay_runs_in_a_child_and_answers_what_the_gateway_would_replay(
    api: Api,
) -> None:
    """The child's per-home counts are those of the replay in the gateway's own process
    (what the what-if ran before it moved out), and the gateway ran none of it."""
    await _one_quiet_day(api)
    now = api.clock.now()
    choice = WhatIfChoice(days=2)
    rules = choice.rules(api.settings.rules)
    register = await load_register(api.db)
    start = now - timedelta(days=2)
    events = await stored_events(api.db, register, start)
    in_process = Counter(
        (alert.person_id, alert.type.value)
        for alert in replay_events(register, events, rules, api.settings.tz, start=start, end=now)
    )
    runner = WhatIfRunner()
    result = await run_what_if(
        api.db, api.settings.rules, api.settings.tz, choice, now, runner=runner
    )
    from_child = Counter(
        {(home.person_id, kind): n for home in result.homes for kind, n in home.would.items()}
    )
    assert from_child == in_process and from_child[(1, "inactivity")] == 3
    assert runner.pid is None and runner.running is None


async def test_a_second_choice_is_refused_while_one_runs_and_the_same_one_waits_for_it(
    api: Api, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(RUNNER, "command", _stand_in(tmp_path))
    headers = await api.login("admin")
    await login(api.client, "admin")
    first = asyncio.create_task(
        api.client.get("/api/v1/whatif", params={"days": 2}, headers=headers)
    )
    await wait_until(lambda: len(_started(tmp_path)) == 1)
    # The same choice again (a reload, a second click): waits for the run under way.
    again = asyncio.create_task(
        api.client.get("/whatif", params={"run": "true", "days": 2, "mode": "fixed"})
    )
    other = await api.client.get("/api/v1/whatif", params={"days": 3}, headers=headers)
    assert other.status_code == 409
    assert "another what-if is running" in other.json()["detail"]
    assert other.headers["retry-after"] == "60"
    page = await api.client.get("/whatif", params={"run": "true", "days": 7, "mode": "learned"})
    assert page.status_code == 409
    assert 'data-kind="busy"' in page.text and "另一份推演（最近 2 天）正在进行" in page.text
    assert 'value="learned" selected' in page.text  # the officer's choice is kept
    await wait_until(lambda: RUNNER.waiting == 2)  # both on the one run
    assert not first.done() and not again.done()

    (tmp_path / "go").touch()
    answered, shown = await asyncio.wait_for(asyncio.gather(first, again), 10)
    assert answered.status_code == 200
    assert [home["would"] for home in answered.json()["homes"]] == [{"inactivity": 2}]
    assert shown.status_code == 200 and 'data-total-would="inactivity">2<' in shown.text
    assert len(_started(tmp_path)) == 1  # one child for both
    # Done: the next choice runs.
    later = await api.client.get("/api/v1/whatif", params={"days": 3}, headers=headers)
    assert later.status_code == 200 and len(_started(tmp_path)) == 2


@pytest.fixture
async def impatient_api(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Api]:
    """The app with a what-if timeout of half a second, set as an operator would."""
    monkeypatch.setenv("HOMEWATCH_WHATIF_TIMEOUT", "500ms")
    async with running_api(db, tmp_path) as running:
        yield running


async def test_a_runaway_child_is_stopped_at_the_timeout_with_a_clear_error(
    impatient_api: Api, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = impatient_api
    assert api.settings.whatif_timeout == timedelta(milliseconds=500)
    monkeypatch.setattr(RUNNER, "command", _stand_in(tmp_path))  # never told to go
    headers = await api.login("admin")
    refused = await api.client.get("/api/v1/whatif", params={"days": 2}, headers=headers)
    assert refused.status_code == 503
    assert "stopped after 0.5 s" in refused.json()["detail"]
    # Killed and reaped, not left running beside the gateway.
    (pid,) = _started(tmp_path)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert RUNNER.running is None

    await login(api.client, "admin")
    page = await api.client.get("/whatif", params={"run": "true", "days": 2})
    assert page.status_code == 503
    assert 'data-kind="timeout"' in page.text and "推演超过 1 分钟仍未完成，已停止" in page.text


async def test_a_failing_child_is_an_error_naming_what_it_said(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    script = "import sys; sys.stdin.readline(); sys.exit('replay: no such table events')"
    runner = WhatIfRunner([sys.executable, "-c", script])
    with pytest.raises(WhatIfFailedError, match="no such table events"):
        await run_what_if(
            db,
            load_settings().rules,
            ZoneInfo("Asia/Shanghai"),
            WhatIfChoice(days=1),
            GATEWAY_START,
            runner=runner,
        )
    # Whole, for the operator the page sends the officer to.
    assert "what-if child failed" in caplog.text and "no such table events" in caplog.text


async def test_the_child_cannot_write_to_the_database(db: Database) -> None:
    reader = read_only_database(db.url)
    try:
        async with reader.session() as session:
            assert (await session.execute(select(func.count(Person.id)))).scalar_one() >= 0
        with pytest.raises(DBAPIError, match=r"(?i)read.only|readonly"):
            async with reader.session() as session, session.begin():
                await session.execute(update(Person).values(name="改"))
    finally:
        await reader.dispose()


async def test_the_real_child_reports_what_went_wrong_in_one_line(tmp_path: Path) -> None:
    gone = Database(f"sqlite+aiosqlite:///{tmp_path}/no/such/folder/homewatch.db")
    try:
        with pytest.raises(WhatIfFailedError, match=r"^OperationalError: .*unable to open"):
            await run_what_if(
                gone,
                load_settings().rules,
                ZoneInfo("Asia/Shanghai"),
                WhatIfChoice(days=1),
                GATEWAY_START,
                runner=WhatIfRunner(),
            )
    finally:
        await gone.dispose()
