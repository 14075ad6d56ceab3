"""The audit trail (SPEC §10): reads of full records, exports, changes, alert handling with
its channel, emergency mode and user changes; readable by town admins only; append-only."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from alerts.types import AlertTrigger, AlertType
from gateway.cli import main
from gateway.storage.db import Database
from gateway.storage.models import Person
from tests.service.api_support import Api, running_api

TEAM = "+8613900000002"


async def _trail(api: Api, headers: dict[str, str], **params: str) -> list[dict[str, Any]]:
    response = await api.client.get("/api/v1/audit", headers=headers, params=params)
    assert response.status_code == 200, response.text
    entries: list[dict[str, Any]] = response.json()
    return entries


async def test_the_trail_records_who_read_exported_took_and_changed(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_api(db, tmp_path) as api:
        admin = await api.login("admin")
        helper = await api.login("lisi")
        officer = await api.login("akofficer")
        async with db.session() as session:
            person_id = (await session.execute(select(Person.id).limit(1))).scalar_one()

        assert (await api.client.get(f"/api/v1/persons/{person_id}", headers=helper)).is_success
        assert (await api.client.get("/api/v1/register.xlsx", headers=admin)).is_success
        assert (
            await api.client.get(
                "/api/v1/reports/annual.xlsx", headers=admin, params={"year": 2026}
            )
        ).is_success
        assert (
            await api.client.patch(
                f"/api/v1/persons/{person_id}", headers=admin, json={"notes": "独居"}
            )
        ).is_success
        assert (
            await api.client.post("/api/v1/emergency-mode", headers=admin, json={"reason": "洪水"})
        ).is_success

        first, _ = await api_alert(api, person_id, AlertType.SOS)
        await api.client.post(f"/api/v1/alerts/{first}/ack", headers=officer)
        assert (await api.client.post(f"/api/v1/alerts/{first}/ack", headers=admin)).is_success
        await api.client.post(f"/api/v1/alerts/{first}/resolve", headers=admin, json={})
        second, code = await api_alert(api, person_id, AlertType.FALL)
        await context_alerts(api).tick()
        api.clock.advance(180)
        await context_alerts(api).tick()
        assert await context_alerts(api).acknowledge_by_sms(TEAM, code) is not None

        for who in (helper, officer):
            forbidden = await api.client.get("/api/v1/audit", headers=who)
            assert forbidden.status_code == 403
        monkeypatch.setenv("HOMEWATCH_DATABASE_URL", db.url)
        assert await asyncio.to_thread(main, ["user", "disable", "akofficer"]) == 0

        entries = await _trail(api, admin)
        seen = {(e["actor"], e["action"], e["entity"]) for e in entries}
        assert ("lisi", "read", "person") in seen
        assert ("admin", "export", "register") in seen
        assert ("admin", "export", "annual_summary") in seen
        assert ("admin", "update", "person") in seen
        assert ("admin", "start", "emergency_mode") in seen
        assert ("admin", "resolve", "alert") in seen
        assert ("cli", "disable", "user") in seen
        acks = {e["entity_id"]: e["after"] for e in entries if e["action"] == "acknowledge"}
        assert acks[str(first)]["channel"] == "api"
        assert acks[str(second)] == {"code": code, "channel": "sms"}
        assert [e["id"] for e in entries] == sorted((e["id"] for e in entries), reverse=True)

        # Filters: by actor, by kind of entity or one record, since a time.
        by_lisi = await _trail(api, admin, actor="lisi")
        assert {e["actor"] for e in by_lisi} == {"lisi"}
        one = await _trail(api, admin, entity=f"alert:{second}")
        assert [e["action"] for e in one] == ["acknowledge"]
        later = await _trail(api, admin, since="2100-01-01T00:00:00+08:00")
        assert later == []
        page = await _trail(api, admin, limit="2", before_id=str(entries[0]["id"]))
        assert [e["id"] for e in page] == [entries[1]["id"], entries[2]["id"]]
        naive = await api.client.get(
            "/api/v1/audit", headers=admin, params={"since": "2026-01-01T00:00:00"}
        )
        assert naive.status_code == 422 and "since" in naive.text


async def test_the_trail_is_append_only_in_the_database(db: Database, tmp_path: Path) -> None:
    async with running_api(db, tmp_path):
        pass
    for statement in (
        "DELETE FROM audit_log",
        "UPDATE audit_log SET actor = 'someone else'",
        "UPDATE audit_log SET at = CURRENT_TIMESTAMP",
    ):
        async with db.session() as session:
            with pytest.raises(DBAPIError, match="append-only"):
                await session.execute(text(statement))
    async with db.session() as session:
        assert (await session.execute(text("SELECT count(*) FROM audit_log"))).scalar_one() > 0


def context_alerts(api: Api) -> Any:
    return api.client._transport.app.state.context.alerts  # type: ignore[attr-defined]


async def api_alert(api: Api, person_id: int, kind: AlertType) -> tuple[int, str]:
    alert, _ = await context_alerts(api).raise_alert(AlertTrigger(kind, person_id, api.clock.now()))
    return alert.id, alert.code
