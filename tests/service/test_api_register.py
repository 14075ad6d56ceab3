"""Register CRUD over HTTP: provisioning's validation, role scoping, and the change history."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway.storage.db import Database
from tests.helpers import id_number
from tests.service.api_support import Api, running_api

NEW_ID = id_number("19500307", 31, male=True)


@pytest.fixture
async def api(db: Database, tmp_path: Path) -> AsyncIterator[Api]:
    async with running_api(db, tmp_path) as running:
        yield running


async def _village_id(api: Api, headers: dict[str, str], name: str) -> int:
    villages = (await api.client.get("/api/v1/villages", headers=headers)).json()
    return int(next(v["id"] for v in villages if v["name"] == name))


async def _helper_id(api: Api, headers: dict[str, str], phone: str) -> int:
    helpers = (await api.client.get("/api/v1/helpers", headers=headers)).json()
    return int(next(h["id"] for h in helpers if h["phone"] == phone))


def _person(village: int, helper: int, **extra: Any) -> dict[str, Any]:
    return {
        "name": "王大爷",
        "gender": "男",
        "id_number": NEW_ID,
        "village_id": village,
        "categories": ["left_behind", "minimum_living_allowance"],
        "care_level": "general",
        "helper_id": helper,
        "measures": "每月两次上门",
        "phone": "136 0000 0099",
        "address": "隘口村1组",
        "guardian_name": "王小明",
        "guardian_phone": "13800000001",
        "health_status": "高血压",
        "lifestyle": "独居",
        "medical_checkup": "2026年3月体检正常",
        **extra,
    }


def _fields(response: Any) -> list[str]:
    assert response.status_code == 422, response.text
    return [error["loc"][1] for error in response.json()["detail"]]


async def test_create_person_with_every_field_and_read_it_back(api: Api) -> None:
    admin = await api.login("admin")
    village = await _village_id(api, admin, "隘口村")
    helper = await _helper_id(api, admin, "+8613700000003")
    created = await api.client.post("/api/v1/persons", json=_person(village, helper), headers=admin)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["phone"] == "+8613600000099" and body["guardian_phone"] == "+8613800000001"
    assert body["categories"] == ["left_behind", "minimum_living_allowance"]
    assert (body["health_status"], body["lifestyle"]) == ("高血压", "独居")
    assert body["village"] == "隘口村" and body["helper_name"] == "周强"
    fetched = await api.client.get(f"/api/v1/persons/{body['id']}", headers=admin)
    assert fetched.json()["medical_checkup"] == "2026年3月体检正常"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"id_number": NEW_ID[:-1] + ("0" if NEW_ID[-1] != "0" else "1")}, "id_number"),
        ({"gender": "女"}, "id_number"),  # the 17th digit says 男
        ({"phone": "1370000001"}, "phone"),  # a digit short
        ({"guardian_phone": "12345"}, "guardian_phone"),
        ({"categories": ["orphan"]}, "categories"),
        ({"categories": []}, "categories"),
        ({"care_level": "weekly"}, "care_level"),
        ({"village_id": 999}, "village_id"),
        ({"helper_id": 999}, "helper_id"),
        ({"name": "  "}, "name"),
        ({"shoe_size": 42}, "shoe_size"),
    ],
)
async def test_invalid_person_is_refused_naming_the_field(
    api: Api, change: dict[str, Any], field: str
) -> None:
    admin = await api.login("admin")
    village = await _village_id(api, admin, "隘口村")
    helper = await _helper_id(api, admin, "+8613700000003")
    response = await api.client.post(
        "/api/v1/persons", json=_person(village, helper, **change), headers=admin
    )
    assert field in _fields(response)


async def test_duplicate_id_number_is_refused(api: Api) -> None:
    admin = await api.login("admin")
    persons = (await api.client.get("/api/v1/persons", headers=admin)).json()
    village = await _village_id(api, admin, "坝芒村")
    helper = await _helper_id(api, admin, "+8613700000001")
    response = await api.client.post(
        "/api/v1/persons",
        json=_person(
            village, helper, id_number=persons[0]["id_number"], gender=persons[0]["gender"]
        ),
        headers=admin,
    )
    assert _fields(response) == ["id_number"]
    assert "already in the register" in response.json()["detail"][0]["msg"]


async def test_village_officer_writes_only_in_own_village_and_helpers_read_only(api: Api) -> None:
    admin = await api.login("admin")
    officer = await api.login("akofficer")
    helper_user = await api.login("lisi")
    aikou = await _village_id(api, admin, "隘口村")
    bamang = await _village_id(api, admin, "坝芒村")
    zhou = await _helper_id(api, admin, "+8613700000003")
    li = await _helper_id(api, admin, "+8613700000001")

    elsewhere = await api.client.post("/api/v1/persons", json=_person(bamang, li), headers=officer)
    assert elsewhere.status_code == 403
    own = await api.client.post("/api/v1/persons", json=_person(aikou, zhou), headers=officer)
    assert own.status_code == 201
    person_id = own.json()["id"]
    moved = await api.client.patch(
        f"/api/v1/persons/{person_id}", json={"village_id": bamang}, headers=officer
    )
    assert moved.status_code == 403
    # 坝芒村's persons are invisible to 隘口村's officer: not found rather than forbidden.
    bamang_person = (await api.client.get("/api/v1/persons", headers=admin)).json()[0]["id"]
    other = await api.client.patch(
        f"/api/v1/persons/{bamang_person}", json={"notes": "x"}, headers=officer
    )
    assert other.status_code == 404

    assert (await api.client.get(f"/api/v1/persons/{bamang_person}", headers=helper_user)).json()[
        "id_number"
    ].count("*") == 10
    refused = await api.client.patch(
        f"/api/v1/persons/{bamang_person}", json={"notes": "x"}, headers=helper_user
    )
    assert refused.status_code == 403
    for path, body in [
        ("/api/v1/helpers", {"name": "甲", "phone": "13700000009", "village_id": bamang}),
        (f"/api/v1/villages/{bamang}/team", {"name": "乙", "phone": "13900000009"}),
    ]:
        assert (await api.client.post(path, json=body, headers=helper_user)).status_code == 403
    assert (
        await api.client.post("/api/v1/villages", json={"name": "新村"}, headers=officer)
    ).status_code == 403


async def test_every_change_is_in_the_history_with_who_and_before_after(api: Api) -> None:
    admin = await api.login("admin")
    officer = await api.login("akofficer")
    aikou = await _village_id(api, admin, "隘口村")
    zhou = await _helper_id(api, admin, "+8613700000003")
    person_id = (
        await api.client.post("/api/v1/persons", json=_person(aikou, zhou), headers=admin)
    ).json()["id"]
    api.clock.advance(timedelta(days=3))
    new_helper = await api.client.post(
        "/api/v1/helpers",
        json={"name": "孙丽", "phone": "+86 137 0000 0004", "title": "网格员", "village_id": aikou},
        headers=officer,
    )
    assert new_helper.status_code == 201 and new_helper.json()["phone"] == "+8613700000004"
    patched = await api.client.patch(
        f"/api/v1/persons/{person_id}",
        json={"helper_id": new_helper.json()["id"], "care_level": "special", "phone": None},
        headers=officer,
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["helper_name"] == "孙丽" and patched.json()["phone"] is None
    device = await api.client.post(
        "/api/v1/devices",
        json={"uid": "ak-wdy-sos", "person_id": person_id, "kind": "sos", "protocol": "native"},
        headers=officer,
    )
    assert device.status_code == 201 and device.json()["topic"] == "homewatch/ak-wdy-sos"

    history = (await api.client.get(f"/api/v1/persons/{person_id}/history", headers=admin)).json()
    assert [(h["entity"], h["action"], h["actor"]) for h in history] == [
        ("person", "create", "admin"),
        ("person", "update", "akofficer"),
        ("device", "create", "akofficer"),
    ]
    update = history[1]
    assert update["before"] == {
        "helper_id": zhou,
        "care_level": "general",
        "phone": "+8613600000099",
    }
    assert update["after"]["care_level"] == "special" and update["after"]["phone"] is None
    assert update["at"] > history[0]["at"]


async def test_villages_teams_helpers_and_devices_crud(api: Api) -> None:
    admin = await api.login("admin")
    village = await api.client.post("/api/v1/villages", json={"name": "清溪村"}, headers=admin)
    assert village.status_code == 201
    village_id = village.json()["id"]
    again = await api.client.post("/api/v1/villages", json={"name": "清溪村"}, headers=admin)
    assert _fields(again) == ["name"]
    member = await api.client.post(
        f"/api/v1/villages/{village_id}/team",
        json={"name": "刘一", "phone": "023-76000001", "role": "队长"},
        headers=admin,
    )
    assert member.status_code == 201 and member.json()["phone"] == "+862376000001"
    bad = await api.client.post(
        f"/api/v1/villages/{village_id}/team", json={"name": "刘二", "phone": "7600"}, headers=admin
    )
    assert _fields(bad) == ["phone"]
    renamed = await api.client.patch(
        f"/api/v1/team-members/{member.json()['id']}", json={"role": "副队长"}, headers=admin
    )
    assert renamed.json()["role"] == "副队长"
    listed = (await api.client.get("/api/v1/villages", headers=admin)).json()
    assert [
        m["name"] for m in next(v for v in listed if v["id"] == village_id)["emergency_team"]
    ] == ["刘一"]

    helper = await api.client.post(
        "/api/v1/helpers",
        json={"name": "甲", "phone": "13700000001", "village_id": village_id},
        headers=admin,
    )
    assert _fields(helper) == ["phone"]  # 李四 has it
    li = await _helper_id(api, admin, "+8613700000001")
    assert (await api.client.delete(f"/api/v1/helpers/{li}", headers=admin)).status_code == 409
    assert (
        await api.client.delete(f"/api/v1/team-members/{member.json()['id']}", headers=admin)
    ).status_code == 204
    assert (
        await api.client.delete(f"/api/v1/villages/{village_id}", headers=admin)
    ).status_code == 204

    person_id = (await api.client.get("/api/v1/persons", headers=admin)).json()[0]["id"]
    taken = await api.client.post(
        "/api/v1/devices",
        json={"uid": "x/1", "person_id": person_id, "kind": "door", "protocol": "native"},
        headers=admin,
    )
    assert _fields(taken) == ["uid"]
    kind = await api.client.post(
        "/api/v1/devices",
        json={"uid": "x1", "person_id": person_id, "kind": "smoke", "protocol": "native"},
        headers=admin,
    )
    assert _fields(kind) == ["kind"]
    moved = await api.client.patch(
        "/api/v1/devices/api-p0-sos", json={"model": "SOS-2"}, headers=admin
    )
    assert moved.status_code == 200 and moved.json()["model"] == "SOS-2"
    assert (await api.client.delete("/api/v1/devices/api-p0-sos", headers=admin)).status_code == 204
    assert (await api.client.get("/api/v1/devices/api-p0-sos", headers=admin)).status_code == 404


async def test_a_person_entered_by_mistake_can_be_deleted_one_with_visits_cannot(
    api: Api,
) -> None:
    admin = await api.login("admin")
    officer = await api.login("akofficer")
    aikou = await _village_id(api, admin, "隘口村")
    zhou = await _helper_id(api, admin, "+8613700000003")
    mistake = (
        await api.client.post("/api/v1/persons", json=_person(aikou, zhou), headers=officer)
    ).json()["id"]
    await api.client.post(
        "/api/v1/devices",
        json={"uid": "ak-mistake", "person_id": mistake, "kind": "door", "protocol": "native"},
        headers=officer,
    )
    visited = (await api.client.get("/api/v1/persons", headers=admin)).json()[0]["id"]
    logged = await api.client.post(
        "/api/v1/visits",
        json={
            "person_id": visited,
            "visited_at": "2026-03-03T10:00:00+08:00",
            "helper_phone": "+8613700000001",
            "services": ["daily_care"],
        },
        headers=admin,
    )
    assert logged.status_code == 201
    assert (await api.client.delete(f"/api/v1/persons/{visited}", headers=admin)).status_code == 409
    assert (
        await api.client.delete(f"/api/v1/persons/{visited}", headers=officer)
    ).status_code == 404
    assert (
        await api.client.delete(f"/api/v1/persons/{mistake}", headers=officer)
    ).status_code == 204
    assert (await api.client.get(f"/api/v1/persons/{mistake}", headers=admin)).status_code == 404
    assert (await api.client.get("/api/v1/devices/ak-mistake", headers=admin)).status_code == 404
    # The ID number is free again for the correct entry.
    again = await api.client.post("/api/v1/persons", json=_person(aikou, zhou), headers=officer)
    assert again.status_code == 201


async def test_leaving_the_register_keeps_the_past_months(api: Api) -> None:
    from gateway.register.ledger import read_workbook

    admin = await api.login("admin")
    helper = await api.login("lisi")
    first, second = (
        p["id"] for p in (await api.client.get("/api/v1/persons", headers=admin)).json()
    )
    tz = api.settings.tz
    this_month = api.clock.now().astimezone(tz).strftime("%Y-%m")
    api.clock.advance(timedelta(days=62))  # tokens above stay valid: they check the wall clock
    later_month = api.clock.now().astimezone(tz).strftime("%Y-%m")

    assert (
        await api.client.post(f"/api/v1/persons/{first}/remove", json={"reason": ""}, headers=admin)
    ).status_code == 422
    assert (
        await api.client.post(
            f"/api/v1/persons/{first}/remove", json={"reason": "随女儿迁居外省"}, headers=helper
        )
    ).status_code == 403
    removed = await api.client.post(
        f"/api/v1/persons/{first}/remove", json={"reason": "随女儿迁居外省"}, headers=admin
    )
    assert removed.status_code == 200 and removed.json()["removed_at"] is not None
    assert removed.json()["devices"] == []  # the hardware is collected
    again = await api.client.post(
        f"/api/v1/persons/{first}/remove", json={"reason": "x"}, headers=admin
    )
    assert again.status_code == 409

    listed = (await api.client.get("/api/v1/persons", headers=admin)).json()
    assert [p["id"] for p in listed] == [second]
    everyone = await api.client.get(
        "/api/v1/persons", params={"include_removed": "true"}, headers=admin
    )
    assert [p["id"] for p in everyone.json()] == [first, second]
    history = (await api.client.get(f"/api/v1/persons/{first}/history", headers=admin)).json()
    assert history[-1]["action"] == "remove" and history[-1]["after"]["reason"] == "随女儿迁居外省"

    async def register_names(month: str | None) -> list[str]:
        params = {"village": "坝芒村", **({"month": month} if month else {})}
        response = await api.client.get("/api/v1/register.xlsx", params=params, headers=admin)
        return [row.name for row in read_workbook(response.content)[0].rows]

    assert await register_names(None) == ["老人1"]
    assert await register_names(this_month) == ["老人0", "老人1"]
    assert await register_names(later_month) == ["老人1"]

    async def compliance_ids(month: str) -> list[int]:
        response = await api.client.get(
            "/api/v1/compliance", params={"month": month}, headers=admin
        )
        return [row["person_id"] for row in response.json()]

    assert await compliance_ids(this_month) == [first, second]
    assert await compliance_ids(later_month) == [second]

    restored = await api.client.post(f"/api/v1/persons/{first}/restore", headers=admin)
    assert restored.status_code == 200 and restored.json()["removed_at"] is None
    assert await register_names(None) == ["老人0", "老人1"]
    assert await register_names(this_month) == ["老人0", "老人1"]
