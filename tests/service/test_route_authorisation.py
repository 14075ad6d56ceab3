"""Every route of the OpenAPI schema × every role (SPEC §7, §10), generated from the app: a
route nobody declared here fails, a route that answers without a token fails, and a role
that reaches a route it must not fails."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.storage.db import Database
from tests.service.api_support import Api, running_api

ADMIN = frozenset({"town_admin"})
STAFF = frozenset({"town_admin", "village_officer"})
ANY = frozenset({"town_admin", "village_officer", "helper"})
#: No token needed: login, probes, Twilio (which checks its own signature) and Aliyun's
#: receipt pushes (which carry a secret token in the path instead).
PUBLIC = "public"

#: Who may use each route. A new route must be added here, deliberately.
POLICY: dict[str, frozenset[str] | str] = {
    "POST /api/v1/auth/token": PUBLIC,
    "GET /healthz": PUBLIC,
    "GET /metrics": PUBLIC,
    "POST /twilio/sms": PUBLIC,
    "POST /twilio/voice/{token}": PUBLIC,
    "POST /twilio/voice/{token}/gather": PUBLIC,
    "POST /twilio/status": PUBLIC,
    "POST /receipts/aliyun/{token}/sms-report": PUBLIC,
    "POST /receipts/aliyun/{token}/voice-report": PUBLIC,
    "POST /receipts/aliyun/{token}/sms-up": PUBLIC,
    "GET /api/v1/persons": ANY,
    "POST /api/v1/persons": STAFF,
    "GET /api/v1/devices": ANY,
    "POST /api/v1/devices": STAFF,
    "GET /api/v1/devices/{uid}": ANY,
    "PATCH /api/v1/devices/{uid}": STAFF,
    "DELETE /api/v1/devices/{uid}": STAFF,
    "GET /api/v1/events": ANY,
    "GET /api/v1/unknown-devices": ADMIN,
    "GET /api/v1/rejected-messages": ADMIN,
    "GET /api/v1/alerts": ANY,
    "GET /api/v1/alerts/{alert_id}": ANY,
    "POST /api/v1/alerts/{alert_id}/ack": ANY,
    "POST /api/v1/alerts/{alert_id}/resolve": ANY,
    "POST /api/v1/alerts/{alert_id}/reopen": ANY,
    "POST /api/v1/alerts/{alert_id}/handover": ANY,
    "GET /api/v1/villages": ANY,
    "POST /api/v1/villages": ADMIN,
    "PATCH /api/v1/villages/{village_id}": ADMIN,
    "DELETE /api/v1/villages/{village_id}": ADMIN,
    "POST /api/v1/villages/{village_id}/team": STAFF,
    "PATCH /api/v1/team-members/{member_id}": STAFF,
    "DELETE /api/v1/team-members/{member_id}": STAFF,
    "GET /api/v1/helpers": ANY,
    "POST /api/v1/helpers": STAFF,
    "PATCH /api/v1/helpers/{helper_id}": STAFF,
    "DELETE /api/v1/helpers/{helper_id}": STAFF,
    "GET /api/v1/persons/{person_id}": ANY,
    "PATCH /api/v1/persons/{person_id}": STAFF,
    "DELETE /api/v1/persons/{person_id}": STAFF,
    "POST /api/v1/persons/{person_id}/remove": STAFF,
    "POST /api/v1/persons/{person_id}/restore": STAFF,
    "GET /api/v1/persons/{person_id}/history": ANY,
    "POST /api/v1/visits": ANY,
    "GET /api/v1/visits": ANY,
    "GET /api/v1/visits/{visit_id}": ANY,
    "DELETE /api/v1/visits/{visit_id}": ANY,
    "POST /api/v1/visits/{visit_id}/photo": ANY,
    "GET /api/v1/visits/{visit_id}/photo": ANY,
    "GET /api/v1/register.xlsx": STAFF,
    "POST /api/v1/register.xlsx": STAFF,
    "GET /api/v1/compliance": ANY,
    "GET /api/v1/compliance/summary": ANY,
    "GET /api/v1/reports/annual.xlsx": STAFF,
    "GET /api/v1/persons/{person_id}/away": ANY,
    "POST /api/v1/persons/{person_id}/away": ANY,
    "DELETE /api/v1/persons/{person_id}/away/{away_id}": ANY,
    "GET /api/v1/whatif": ADMIN,
    "GET /api/v1/emergency-mode": ANY,
    "POST /api/v1/emergency-mode": ADMIN,
    "DELETE /api/v1/emergency-mode": ADMIN,
    "GET /api/v1/audit": ADMIN,
}
USERS = {"town_admin": "admin", "village_officer": "akofficer", "helper": "lisi"}


def _operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
    ]


def _request(path: str, operation: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The path with ids that exist nowhere, and the required query parameters, so that an
    allowed role gets 404 or 422 and never reaches anybody's data."""
    params: dict[str, Any] = {}
    for parameter in operation.get("parameters", []):
        name = parameter["name"]
        if parameter["in"] == "path":
            path = path.replace("{" + name + "}", "999999")
        elif parameter.get("required"):
            params[name] = "2026" if name == "year" else "坝芒村"
    return path, params


async def _call(api: Api, method: str, path: str, params: dict[str, Any], headers: Any) -> int:
    response = await api.client.request(
        method,
        path,
        params=params,
        headers=headers,
        json={} if method in ("POST", "PATCH") else None,
    )
    return response.status_code


async def test_every_route_is_declared_and_guarded_for_every_role(
    db: Database, tmp_path: Path
) -> None:
    async with running_api(db, tmp_path) as api:
        schema = api.client._transport.app.openapi()  # type: ignore[attr-defined]
        operations = _operations(schema)
        declared = {f"{m} {p}" for m, p, _ in operations}
        assert declared - POLICY.keys() == set(), "routes without a declared policy"
        assert POLICY.keys() - declared == set(), "declared routes that no longer exist"
        tokens = {role: await api.login(username) for role, username in USERS.items()}

        failures: list[str] = []
        for method, template, operation in operations:
            policy = POLICY[f"{method} {template}"]
            if policy == PUBLIC:
                continue
            assert isinstance(policy, frozenset)
            path, params = _request(template, operation)
            anonymous = await _call(api, method, path, params, None)
            if anonymous != 401:
                failures.append(f"{method} {template}: {anonymous} without a token")
            forged = await _call(api, method, path, params, {"Authorization": "Bearer x.y.z"})
            if forged != 401:
                failures.append(f"{method} {template}: {forged} with a forged token")
            for role, headers in tokens.items():
                status = await _call(api, method, path, params, headers)
                if role in policy and status in (401, 403):
                    failures.append(f"{method} {template}: {role} refused ({status})")
                if role not in policy and status not in (403, 404, 422):
                    failures.append(f"{method} {template}: {role} let through ({status})")
                if status >= 500:
                    failures.append(f"{method} {template}: {role} got {status}")
        assert failures == []


@pytest.mark.parametrize("username", ["lisi", "akofficer"])
async def test_the_admin_only_routes_refuse_others_with_403(
    db: Database, tmp_path: Path, username: str
) -> None:
    async with running_api(db, tmp_path) as api:
        headers = await api.login(username)
        for path in ("/api/v1/audit", "/api/v1/unknown-devices", "/api/v1/rejected-messages"):
            assert (await api.client.get(path, headers=headers)).status_code == 403
