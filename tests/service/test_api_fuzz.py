"""Generated requests against the OpenAPI schema (SPEC §10): whatever the path, query and
body, the API answers with a status it chose — never a 500.

Hypothesis draws one operation of the schema and fills its path, query and JSON body with
values of the declared names but arbitrary types and contents (empty, huge, negative,
non-ASCII, nested). The app runs in Starlette's TestClient (its own event loop), so the
Hypothesis loop stays synchronous.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.storage.db import Database, migrate
from tests.service.api_support import PASSWORD, running_api

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63),
    st.floats(allow_nan=False),
    st.text(max_size=40),
    st.sampled_from(["", "2026-03", "2026-13", "1", "-1", "+8613700000001", "坝芒村", "x" * 300]),
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=8,
)
QUERY_VALUES = st.one_of(
    st.text(max_size=30),
    st.integers(min_value=-(10**12), max_value=10**12).map(str),
    st.sampled_from(["", "2026-03", "2026-13", "2026-03-01T00:00:00+08:00", "true", "0"]),
)


def _operations(app: FastAPI) -> list[tuple[str, str, dict[str, Any], list[str]]]:
    schema = app.openapi()
    components = schema.get("components", {}).get("schemas", {})
    found = []
    for path, operations in schema["paths"].items():
        if path.startswith("/twilio/"):
            continue  # signature-checked before anything else: 403 for any generated call
        for method, operation in operations.items():
            fields: list[str] = []
            content = operation.get("requestBody", {}).get("content", {})
            ref = content.get("application/json", {}).get("schema", {}).get("$ref", "")
            if ref:
                fields = list(components[ref.rsplit("/", 1)[1]].get("properties", {}))
            found.append((method.upper(), path, operation, fields))
    return found


def _setup(tmp_path: Path) -> tuple[FastAPI, Database]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'fuzz.db'}"

    async def build() -> tuple[FastAPI, Database]:
        await migrate(url)
        db = Database(url)
        async with running_api(db, tmp_path) as api:
            app: FastAPI = api.client._transport.app  # type: ignore[attr-defined]
        # The TestClient runs the app in a loop of its own: no connection may cross over.
        await db.dispose()
        return app, db

    return asyncio.run(build())


def test_generated_requests_never_get_a_500(tmp_path: Path) -> None:
    app, db = _setup(tmp_path)
    operations = _operations(app)
    with TestClient(app, raise_server_exceptions=False) as client:
        tokens = {}
        for username in ("admin", "lisi"):
            login = client.post(
                "/api/v1/auth/token", data={"username": username, "password": PASSWORD}
            )
            tokens[username] = {"Authorization": f"Bearer {login.json()['access_token']}"}

        @settings(
            max_examples=400,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
            database=None,
        )
        @given(data=st.data())
        def one_request(data: st.DataObject) -> None:
            method, template, operation, fields = data.draw(st.sampled_from(operations))
            path = template
            query: dict[str, str] = {}
            for parameter in operation.get("parameters", []):
                value = data.draw(QUERY_VALUES)
                if parameter["in"] == "path":
                    path = path.replace("{" + parameter["name"] + "}", quote(value, safe="") or "0")
                elif parameter.get("required") or data.draw(st.booleans()):
                    query[parameter["name"]] = value
            body: Any = None
            if method in ("POST", "PATCH", "PUT"):
                keys = st.sampled_from(fields) if fields else st.text(max_size=10)
                body = data.draw(
                    st.one_of(st.dictionaries(keys, JSON_VALUES, max_size=6), JSON_VALUES)
                )
            headers = tokens[data.draw(st.sampled_from(sorted(tokens)))]
            response = client.request(
                method,
                path,
                params=query,
                headers={**headers, "Content-Type": "application/json"},
                content=None if body is None else json.dumps(body),
            )
            assert response.status_code < 500, (
                f"{method} {path} {query} {body!r} -> {response.status_code} {response.text}"
            )

        one_request()
    asyncio.run(db.dispose())
