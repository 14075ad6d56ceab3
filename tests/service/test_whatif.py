"""What-if (SPEC §12 in the console and API): the stored events replayed under the thresholds
an officer picks, per home next to the alerts actually raised; and the alert page's
explanation of a learned routine's alert. Real app, real databases."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from alerts.types import AlertTrigger, AlertType
from gateway.storage.db import Database
from gateway.storage.models import Event, Person
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
