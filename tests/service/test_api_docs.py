"""``/docs`` works offline: Swagger UI comes from the package, never from a CDN (issue #10)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.storage.db import Database
from tests.service.api_support import Api, running_api


@pytest.fixture
async def api(db: Database, tmp_path: Path) -> AsyncIterator[Api]:
    async with running_api(db, tmp_path) as running:
        yield running


async def test_docs_page_and_every_asset_it_loads_are_served_by_the_gateway(api: Api) -> None:
    page = await api.client.get("/docs")
    assert page.status_code == 200
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page.text)
    assets += re.findall(r"""url: ['"]([^'"]+)['"]""", page.text)  # the OpenAPI document
    assert len(assets) >= 3, page.text
    for asset in assets:
        assert asset.startswith("/"), f"{asset} would be fetched from elsewhere"
        response = await api.client.get(asset)
        assert response.status_code == 200, asset
        assert response.content, asset
    bundle = await api.client.get("/docs-assets/swagger-ui-bundle.js")
    assert "javascript" in bundle.headers["content-type"]
    assert "SwaggerUIBundle" in bundle.text
    redirect = await api.client.get("/docs/oauth2-redirect")
    assert redirect.status_code == 200 and "oauth2" in redirect.text.lower()
