"""Visits over HTTP: logging, validation, scoping, photos on disk, month filters."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway.api.routes_visits import MAX_PHOTO_BYTES
from gateway.storage.db import Database
from tests.service.api_support import Api, running_api

LI = "+8613700000001"  # 坝芒村's helper, user lisi
ZHOU = "+8613700000003"  # 隘口村's helper
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 200


@pytest.fixture
async def api(db: Database, tmp_path: Path) -> AsyncIterator[Api]:
    async with running_api(db, tmp_path) as running:
        yield running


def _visit(person: int, **extra: Any) -> dict[str, Any]:
    return {
        "person_id": person,
        "visited_at": "2026-03-31T23:30:00+08:00",
        "helper_phone": LI,
        "services": ["daily_care", "health"],
        "notes": "量血压，代购米油",
        **extra,
    }


async def _first_person(api: Api) -> int:
    admin = await api.login("admin")
    persons = (await api.client.get("/api/v1/persons", headers=admin)).json()
    return int(persons[0]["id"])


async def test_helper_logs_a_visit_and_lists_it_by_local_month(api: Api) -> None:
    helper = await api.login("lisi")
    person_id = await _first_person(api)
    logged = await api.client.post("/api/v1/visits", json=_visit(person_id), headers=helper)
    assert logged.status_code == 201, logged.text
    body = logged.json()
    assert body["services"] == ["daily_care", "health"] and body["created_by"] == "lisi"
    assert body["visited_at"].startswith("2026-03-31T15:30:00")  # stored in UTC
    after_midnight = await api.client.post(
        "/api/v1/visits",
        json=_visit(person_id, visited_at="2026-04-01T00:30:00+08:00", services=["companionship"]),
        headers=helper,
    )
    assert after_midnight.status_code == 201

    march = await api.client.get(
        "/api/v1/visits", params={"person_id": person_id, "month": "2026-03"}, headers=helper
    )
    april = await api.client.get(
        "/api/v1/visits", params={"person_id": person_id, "month": "2026-04"}, headers=helper
    )
    assert [v["id"] for v in march.json()] == [body["id"]]
    assert [v["services"] for v in april.json()] == [["companionship"]]
    officer = await api.login("akofficer")  # another village: sees none of them
    assert (await api.client.get("/api/v1/visits", headers=officer)).json() == []
    assert (
        await api.client.get(f"/api/v1/visits/{body['id']}", headers=officer)
    ).status_code == 404


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"services": ["cooking"]}, "services"),
        ({"services": []}, "services"),
        ({"services": ["health", "health"]}, "services"),
        ({"visited_at": "2026-03-31T23:30:00"}, "visited_at"),  # no offset
        ({"visited_at": "yesterday"}, "visited_at"),
        ({"helper_phone": "12345"}, "helper_phone"),
        ({"helper_phone": "+8613700000099"}, "helper_phone"),  # nobody's
        ({"helper_phone": ZHOU}, "helper_phone"),  # lisi cannot log in 周强's name
        ({"person_id": 9999}, "person_id"),
    ],
)
async def test_bad_visit_is_refused_naming_the_field(
    api: Api, change: dict[str, Any], field: str
) -> None:
    helper = await api.login("lisi")
    response = await api.client.post(
        "/api/v1/visits", json=_visit(await _first_person(api), **change), headers=helper
    )
    assert response.status_code == 422, response.text
    assert field in [error["loc"][1] for error in response.json()["detail"]]


async def test_future_visit_is_refused(api: Api) -> None:
    helper = await api.login("lisi")
    tomorrow = (api.clock.now() + timedelta(days=1)).isoformat()
    response = await api.client.post(
        "/api/v1/visits", json=_visit(await _first_person(api), visited_at=tomorrow), headers=helper
    )
    assert response.status_code == 422 and "future" in response.text


async def test_photo_is_stored_on_disk_checked_and_served_back(api: Api) -> None:
    helper = await api.login("lisi")
    visit = (
        await api.client.post(
            "/api/v1/visits", json=_visit(await _first_person(api)), headers=helper
        )
    ).json()
    url = f"/api/v1/visits/{visit['id']}/photo"
    not_image = await api.client.post(
        url, files={"photo": ("x.jpg", b"%PDF-1.4 not a photo", "image/jpeg")}, headers=helper
    )
    assert not_image.status_code == 415
    too_big = await api.client.post(
        url,
        files={"photo": ("x.jpg", JPEG + b"\x00" * MAX_PHOTO_BYTES, "image/jpeg")},
        headers=helper,
    )
    assert too_big.status_code == 413
    stored = await api.client.post(
        url, files={"photo": ("门口.jpg", JPEG, "image/jpeg")}, headers=helper
    )
    assert stored.status_code == 200 and stored.json()["has_photo"] is True
    files = await asyncio.to_thread(lambda: list(Path(api.settings.data_dir).rglob("*.jpg")))
    assert len(files) == 1 and files[0].read_bytes() == JPEG
    assert files[0].parent.name == "2026-03"  # the visit's local month
    served = await api.client.get(url, headers=helper)
    assert served.status_code == 200 and served.content == JPEG
    assert served.headers["content-type"] == "image/jpeg"

    other = await api.login("akofficer")
    assert (await api.client.get(url, headers=other)).status_code == 404


async def test_a_mistaken_visit_is_deleted_by_its_author_and_audited(api: Api) -> None:
    from sqlalchemy import select

    from gateway.storage.models import AuditEntry

    helper = await api.login("lisi")
    officer = await api.login("bmofficer")
    person = await _first_person(api)
    by_helper = (
        await api.client.post("/api/v1/visits", json=_visit(person), headers=helper)
    ).json()
    by_officer = (
        await api.client.post("/api/v1/visits", json=_visit(person), headers=officer)
    ).json()
    await api.client.post(
        f"/api/v1/visits/{by_helper['id']}/photo",
        files={"photo": ("p.jpg", JPEG, "image/jpeg")},
        headers=helper,
    )
    assert (
        await api.client.delete(f"/api/v1/visits/{by_officer['id']}", headers=helper)
    ).status_code == 403
    assert (
        await api.client.delete(f"/api/v1/visits/{by_helper['id']}", headers=helper)
    ).status_code == 204
    assert (
        await api.client.delete(f"/api/v1/visits/{by_officer['id']}", headers=officer)
    ).status_code == 204
    assert (await api.client.get("/api/v1/visits", headers=officer)).json() == []
    photos = await asyncio.to_thread(lambda: list(Path(api.settings.data_dir).rglob("*.jpg")))
    assert photos == []
    async with api.db.session() as session:
        entries = (
            await session.execute(select(AuditEntry).where(AuditEntry.entity == "visit"))
        ).scalars()
        deleted = sorted((e.actor, e.entity_id) for e in entries)
    assert deleted == sorted([("lisi", str(by_helper["id"])), ("bmofficer", str(by_officer["id"]))])
