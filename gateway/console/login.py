"""``/login`` and ``/logout``: the session cookie of the console."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Form, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from gateway.api.deps import Ctx, SessionDep
from gateway.auth import LoginThrottled, check_credentials
from gateway.console.text import LANGUAGES
from gateway.console.web import (
    LANGUAGE_COOKIE,
    LOGIN_NONCE_COOKIE,
    SESSION_COOKIE,
    CsrfChecked,
    PageDep,
    csrf_for,
    new_login_nonce,
    wall_clock,
)
from gateway.security import TOKEN_LIFETIME, issue_token

__all__ = ["router"]

router = APIRouter(include_in_schema=False)


def _safe_next(target: str) -> str:
    """Only a path of ours: never an open redirect to another site."""
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


def _login_form(
    request: Request, page: PageDep, *, next_path: str, error: str = "", username: str = ""
) -> HTMLResponse:
    nonce = request.cookies.get(LOGIN_NONCE_COOKIE) or new_login_nonce()
    response = page.render(
        "login.html",
        None,
        status_code=status.HTTP_401_UNAUTHORIZED if error else status.HTTP_200_OK,
        login_csrf=csrf_for(page.context.secret_key, nonce),
        next=next_path,
        error=error,
        username=username,
    )
    response.set_cookie(
        LOGIN_NONCE_COOKIE, nonce, httponly=True, samesite="lax", path="/login", max_age=3600
    )
    return response


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request, page: PageDep, next: str = "/") -> HTMLResponse:
    return _login_form(request, page, next_path=_safe_next(next))


@router.post("/login")
async def login(
    request: Request,
    context: Ctx,
    session: SessionDep,
    page: PageDep,
    username: Annotated[str, Form(max_length=100)],
    password: Annotated[str, Form(max_length=200)],
    csrf_token: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
) -> Response:
    nonce = request.cookies.get(LOGIN_NONCE_COOKIE, "")
    if not nonce or not hmac.compare_digest(csrf_token, csrf_for(context.secret_key, nonce)):
        return _login_form(
            request, page, next_path=_safe_next(next), error=page.words["csrf"]["refused"]
        )
    # The same throttle as the API's token route (SPEC §10): five failures per username or
    # client address within 15 minutes.
    client = request.client.host if request.client else "unknown"
    try:
        user = await check_credentials(
            session, username, password, client=client, now=context.clock.now()
        )
    except LoginThrottled as throttled:
        refused = _login_form(
            request,
            page,
            next_path=_safe_next(next),
            error=page.words["login"]["throttled"].format(minutes=-(-throttled.retry_after // 60)),
            username=username,
        )
        refused.status_code = status.HTTP_429_TOO_MANY_REQUESTS
        refused.headers["Retry-After"] = str(throttled.retry_after)
        return refused
    if user is None:
        return _login_form(
            request,
            page,
            next_path=_safe_next(next),
            error=page.words["login"]["failed"],
            username=username,
        )
    token = issue_token(context.secret_key, user.username, wall_clock(), version=user.token_version)
    response = RedirectResponse(_safe_next(next), status_code=status.HTTP_303_SEE_OTHER)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        httponly=True,
        samesite="lax",
        secure=context.settings.public_url.startswith("https://"),
        max_age=int(TOKEN_LIFETIME.total_seconds()),
        path="/",
    )
    response.delete_cookie(LOGIN_NONCE_COOKIE, path="/login")
    return response


@router.post("/logout", dependencies=[CsrfChecked])
async def logout() -> Response:
    response = RedirectResponse("/login", status_code=status.HTTP_303_SEE_OTHER)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/language/{language}")
async def choose_language(language: str, next: str = "/") -> Response:
    """The console's language for this browser (a preference, not a session)."""
    response = RedirectResponse(_safe_next(next), status_code=status.HTTP_303_SEE_OTHER)
    if language in LANGUAGES:
        response.set_cookie(
            LANGUAGE_COOKIE, language, samesite="lax", max_age=365 * 86400, path="/"
        )
    return response
