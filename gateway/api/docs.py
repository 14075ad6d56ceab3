"""``/docs`` without internet: Swagger UI served from assets shipped in the package.

FastAPI's default ``/docs`` page loads Swagger UI from a CDN, so on a town office's
offline network (or behind the Great Firewall's slow paths) it is a blank page. The
swagger-ui-dist files live in ``gateway/api/static/swagger-ui`` (Apache-2.0, licence and
version beside them) and are served under :data:`ASSETS_PATH`.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

__all__ = ["ASSETS_PATH", "install_offline_docs"]

ASSETS_PATH = "/docs-assets"
_ASSETS = Path(__file__).parent / "static" / "swagger-ui"


def install_offline_docs(app: FastAPI) -> None:
    """Serve ``/docs`` (and its OAuth2 redirect) with the packaged Swagger UI; ``app`` must
    be created with ``docs_url=None`` so FastAPI does not add its CDN version."""
    openapi_url = app.openapi_url or "/openapi.json"
    redirect_url = app.swagger_ui_oauth2_redirect_url or "/docs/oauth2-redirect"
    app.mount(ASSETS_PATH, StaticFiles(directory=_ASSETS), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} — API",
            swagger_js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_PATH}/favicon-32x32.png",
            oauth2_redirect_url=redirect_url,
        )

    @app.get(redirect_url, include_in_schema=False)
    async def oauth2_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()
