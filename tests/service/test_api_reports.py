"""台账 export/import, compliance and the annual summary over HTTP, on real databases."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import openpyxl
import pytest
from sqlalchemy import update

from gateway.register.ledger import read_workbook
from gateway.storage.db import Database
from gateway.storage.models import Alert, EmergencyMode, Person
from tests.service.api_support import Api, running_api

LI = "+8613700000001"


@pytest.fixture
async def api(db: Database, tmp_path: Path) -> AsyncIterator[Api]:
    async with running_api(db, tmp_path) as running:
        # Registered since January, so that they count in the months tested below.
        async with db.session() as session, session.begin():
            await session.execute(
                update(Person).values(created_at=datetime(2026, 1, 1, tzinfo=UTC))
            )
        yield running


async def _export(api: Api, headers: dict[str, str], **params: str) -> bytes:
    response = await api.client.get("/api/v1/register.xlsx", params=params, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/vnd.openxmlformats")
    return response.content


async def _import(
    api: Api, headers: dict[str, str], data: bytes, *, dry_run: bool
) -> tuple[int, dict[str, object]]:
    response = await api.client.post(
        "/api/v1/register.xlsx",
        params={"village": "坝芒村", "dry_run": str(dry_run).lower()},
        files={"file": ("台账.xlsx", data, "application/octet-stream")},
        headers=headers,
    )
    return response.status_code, response.json()


async def test_export_one_sheet_per_village_scoped_by_role(api: Api) -> None:
    admin = await api.login("admin")
    everything = read_workbook(await _export(api, admin))
    assert [(s.village, len(s.rows)) for s in everything] == [("坝芒村", 2), ("隘口村", 0)]
    assert everything[0].town == "隘口镇"
    officer = await api.login("bmofficer")
    own = read_workbook(await _export(api, officer, month="2099-12"))
    assert [(s.village, s.month) for s in own] == [("坝芒村", "2099-12")]
    assert (
        await api.client.get("/api/v1/register.xlsx", params={"village": "隘口村"}, headers=officer)
    ).status_code == 404
    helper = await api.login("lisi")
    assert (await api.client.get("/api/v1/register.xlsx", headers=helper)).status_code == 403
    before_anyone = read_workbook(await _export(api, admin, village="坝芒村", month="2025-12"))
    assert before_anyone[0].rows == ()


async def test_import_round_trips_an_export_then_applies_an_edit(api: Api) -> None:
    admin = await api.login("bmofficer")
    exported = await _export(api, admin, village="坝芒村")
    status, report = await _import(api, admin, exported, dry_run=True)
    assert status == 200, report
    assert (report["created"], report["updated"], report["unchanged"]) == ([], [], 2)

    workbook = openpyxl.load_workbook(io.BytesIO(exported))
    sheet = workbook["坝芒村"]
    header = next(r for r in range(1, 10) if sheet.cell(r, 1).value == "序号")
    sheet.cell(header + 1, 7).value = "每天电话问候，每周上门两次"  # 帮扶措施
    sheet.cell(header + 2, 8).value = "136 0000 0077"  # 联系电话
    buffer = io.BytesIO()
    workbook.save(buffer)
    edited = buffer.getvalue()

    status, report = await _import(api, admin, edited, dry_run=True)
    assert status == 200 and report["dry_run"] is True
    assert report["updated"] == ["update 老人0: measures", "update 老人1: phone"]
    unchanged = read_workbook(await _export(api, admin, village="坝芒村"))[0]
    assert unchanged.rows[0].measures == "每周上门一次"

    status, report = await _import(api, admin, edited, dry_run=False)
    assert status == 200 and report["dry_run"] is False
    applied = read_workbook(await _export(api, admin, village="坝芒村"))[0]
    assert applied.rows[0].measures == "每天电话问候，每周上门两次"
    assert applied.rows[1].phone == "+8613600000077"
    persons = (await api.client.get("/api/v1/persons", headers=admin)).json()
    history = (
        await api.client.get(f"/api/v1/persons/{persons[0]['id']}/history", headers=admin)
    ).json()
    assert history[-1]["actor"] == "bmofficer" and history[-1]["after"] == {
        "measures": "每天电话问候，每周上门两次"
    }
    status, report = await _import(api, admin, edited, dry_run=True)
    assert report["updated"] == [] and report["unchanged"] == 2


async def test_import_refuses_the_whole_file_with_row_precise_problems(api: Api) -> None:
    admin = await api.login("admin")
    workbook = openpyxl.load_workbook(io.BytesIO(await _export(api, admin, village="坝芒村")))
    sheet = workbook["坝芒村"]
    header = next(r for r in range(1, 10) if sheet.cell(r, 1).value == "序号")
    sheet.cell(header + 1, 4).value = "500241194001010012"  # wrong check digit (1 is right)
    sheet.cell(header + 2, 6).value = "无名氏（村医）"  # no such helper in 坝芒村
    sheet.cell(header + 2, 7).value = "改了也不该生效"
    buffer = io.BytesIO()
    workbook.save(buffer)

    status, report = await _import(api, admin, buffer.getvalue(), dry_run=False)
    assert status == 422 and report["refused"] is True
    problems = report["problems"]
    assert isinstance(problems, list)
    assert [(p["row"], p["column"]) for p in problems] == [(header + 1, "身份证号码")]
    # The cell is fixed, the unknown helper remains: still refused, naming 序号 2.
    sheet.cell(header + 1, 4).value = read_workbook(await _export(api, admin))[0].rows[0].id_number
    buffer = io.BytesIO()
    workbook.save(buffer)
    status, report = await _import(api, admin, buffer.getvalue(), dry_run=False)
    assert status == 422
    problems = report["problems"]
    assert isinstance(problems, list)
    assert [(p["number"], p["column"]) for p in problems] == [(2, "帮扶责任人")]
    after = read_workbook(await _export(api, admin, village="坝芒村"))[0]
    assert after.rows[1].measures == "每周上门一次"
    not_xlsx = await api.client.post(
        "/api/v1/register.xlsx",
        params={"village": "坝芒村"},
        files={"file": ("台账.xls", b"not a workbook", "application/vnd.ms-excel")},
        headers=admin,
    )
    assert not_xlsx.status_code == 422 and "xlsx" in not_xlsx.text


async def _log(api: Api, headers: dict[str, str], person_id: int, at: str) -> None:
    response = await api.client.post(
        "/api/v1/visits",
        json={"person_id": person_id, "visited_at": at, "helper_phone": LI, "services": ["health"]},
        headers=headers,
    )
    assert response.status_code == 201, response.text


async def test_compliance_for_special_and_general_across_month_boundaries(api: Api) -> None:
    admin = await api.login("admin")
    helper = await api.login("lisi")
    special, general = (
        p["id"] for p in (await api.client.get("/api/v1/persons", headers=admin)).json()
    )
    patched = await api.client.patch(
        f"/api/v1/persons/{general}", json={"care_level": "general"}, headers=admin
    )
    assert patched.status_code == 200
    # March 2026 touches six ISO weeks (23 Feb .. 5 Apr). The special person is visited in
    # five of them, two of those on the far side of the month's edges.
    for at in (
        "2026-02-26T10:00:00+08:00",
        "2026-03-03T10:00:00+08:00",
        "2026-03-10T10:00:00+08:00",
        "2026-03-12T10:00:00+08:00",  # a second visit in the same week adds nothing
        "2026-03-24T10:00:00+08:00",
        "2026-04-02T10:00:00+08:00",
    ):
        await _log(api, helper, special, at)
    # The general person: once on the last evening of March, once just after midnight
    # (local), which is still 31 March in UTC but an April visit in the town.
    await _log(api, helper, general, "2026-03-31T23:30:00+08:00")
    await _log(api, helper, general, "2026-04-01T00:30:00+08:00")

    march = (
        await api.client.get("/api/v1/compliance", params={"month": "2026-03"}, headers=admin)
    ).json()
    rows = {r["person_id"]: r for r in march}
    assert (rows[special]["required"], rows[special]["done"], rows[special]["status"]) == (
        6,
        5,
        "overdue",
    )
    assert (rows[general]["required"], rows[general]["done"], rows[general]["status"]) == (
        2,
        1,
        "overdue",
    )
    assert rows[general]["village"] == "坝芒村" and rows[general]["care_level"] == "general"
    april = (
        await api.client.get("/api/v1/compliance", params={"month": "2026-04"}, headers=admin)
    ).json()
    assert {r["person_id"]: r["done"] for r in april} == {special: 1, general: 1}

    # An emergency during March doubles what is asked.
    async with api.db.session() as session, session.begin():
        session.add(
            EmergencyMode(
                reason="洪灾",
                inactivity_factor=0.5,
                visit_factor=2.0,
                started_at=datetime(2026, 3, 20, tzinfo=UTC),
                started_by="admin",
                ended_at=datetime(2026, 3, 25, tzinfo=UTC),
                ended_by="admin",
            )
        )
    march = (
        await api.client.get("/api/v1/compliance", params={"month": "2026-03"}, headers=admin)
    ).json()
    rows = {r["person_id"]: r for r in march}
    assert (rows[special]["required"], rows[special]["done"]) == (12, 6)
    assert rows[general]["required"] == 4

    summary = (
        await api.client.get(
            "/api/v1/compliance/summary", params={"month": "2026-03"}, headers=helper
        )
    ).json()
    assert summary["villages"] == [
        {"key": "坝芒村", "persons": 2, "ok": 0, "due": 0, "overdue": 2, "required": 16, "done": 7}
    ]
    assert [h["key"] for h in summary["helpers"]] == ["李四"]
    officer = await api.login("akofficer")
    assert (
        await api.client.get("/api/v1/compliance", params={"month": "2026-03"}, headers=officer)
    ).json() == []
    bad = await api.client.get("/api/v1/compliance", params={"month": "2026-3"}, headers=admin)
    assert bad.status_code == 422
    # Nobody was on the register yet in December 2025: nobody owed visits then.
    december = await api.client.get(
        "/api/v1/compliance", params={"month": "2025-12"}, headers=admin
    )
    assert december.status_code == 200 and december.json() == []
    elsewhere = await api.client.get(
        "/api/v1/compliance", params={"month": "2026-03", "village": "坝芒村"}, headers=officer
    )
    assert elsewhere.status_code == 404


async def test_annual_summary_counts_visits_and_alert_acknowledgement_times(api: Api) -> None:
    admin = await api.login("admin")
    helper = await api.login("lisi")
    person = (await api.client.get("/api/v1/persons", headers=admin)).json()[0]["id"]
    await _log(api, helper, person, "2025-12-31T23:30:00+08:00")  # 2025 in the town
    await _log(api, helper, person, "2026-01-01T00:30:00+08:00")  # 2026, though 2025 in UTC
    async with api.db.session() as session, session.begin():
        for code, minutes in (("AAAA", 2), ("BBBB", 4), ("CCCC", 12)):
            raised = datetime(2025, 5, 1, 2, 0, tzinfo=UTC)
            session.add(
                Alert(
                    code=code,
                    type="sos",
                    group="emergency",
                    status="resolved",
                    person_id=person,
                    raised_at=raised,
                    last_trigger_at=raised,
                    acknowledged_at=raised.replace(minute=minutes),
                    detail={},
                )
            )
    response = await api.client.get(
        "/api/v1/reports/annual.xlsx", params={"year": 2025}, headers=admin
    )
    assert response.status_code == 200
    workbook = openpyxl.load_workbook(io.BytesIO(response.content))
    visits = workbook["走访统计"]
    assert (visits["B4"].value, visits["C4"].value) == ("坝芒村", 1)
    alerts = workbook["告警统计"]
    sos = next(
        row for row in alerts.iter_rows(min_row=4, values_only=True) if row[1] and "SOS" in row[1]
    )
    assert sos[2:4] == (3, 3) and sos[5] == 4.0 and sos[6] == pytest.approx(10.4)
    assert (
        await api.client.get("/api/v1/reports/annual.xlsx", params={"year": 2025}, headers=helper)
    ).status_code == 403
