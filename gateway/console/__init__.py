"""The operator console: server-rendered pages in Chinese, served by the gateway itself."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import FastAPI, Request, status
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from gateway.console import alert_detail, board, homes, login, paperwork, visits, wall, whatif_page
from gateway.console.web import CsrfRefusedError, LoginRequiredError, Page

__all__ = ["install_console"]


def install_console(app: FastAPI) -> None:
    """Add the console's pages, its static files and its two error answers to ``app``."""
    app.include_router(login.router)
    app.include_router(board.router)
    app.include_router(alert_detail.router)
    app.include_router(homes.router)
    app.include_router(visits.router)
    app.include_router(wall.router)
    app.include_router(paperwork.router)
    app.include_router(whatif_page.router)
    app.mount(
        "/console-static",
        StaticFiles(packages=[("gateway.console", "static")]),
        name="console-static",
    )

    @app.exception_handler(LoginRequiredError)
    async def to_login(request: Request, error: LoginRequiredError) -> Response:
        if request.url.path.startswith("/live/"):
            # An EventSource cannot follow a redirect to a form; 401 ends its retries.
            return Response(status_code=status.HTTP_401_UNAUTHORIZED)
        return RedirectResponse(
            f"/login?next={quote(error.next_path)}", status_code=status.HTTP_303_SEE_OTHER
        )

    @app.exception_handler(CsrfRefusedError)
    async def refuse(request: Request, error: CsrfRefusedError) -> Response:
        page = Page(request, request.app.state.context)
        return page.render("refused.html", None, status_code=status.HTTP_403_FORBIDDEN)
