"""What every console page shares: the session cookie, CSRF tokens and rendering.

The session cookie holds the same signed token the API hands out (so expiry and user
look-up are the API's), HttpOnly and SameSite=Lax. Every form carries a CSRF token derived
from that cookie with the secret key; the login form, having no session yet, one derived
from a random pre-login cookie (double submit).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FunctionLoader, StrictUndefined, select_autoescape

from gateway.api.deps import Ctx, Principal, principal_of
from gateway.console.text import DEFAULT_LANGUAGE, LANGUAGES, catalogue, duration_text
from gateway.security import TokenError, decode_token_version

__all__ = [
    "CSRF_FIELD",
    "LANGUAGE_COOKIE",
    "LOGIN_NONCE_COOKIE",
    "SESSION_COOKIE",
    "ConsoleUser",
    "CsrfRefusedError",
    "LoginRequiredError",
    "Page",
    "csrf_for",
    "page",
    "require_csrf",
]

SESSION_COOKIE = "homewatch_session"
LANGUAGE_COOKIE = "homewatch_lang"
LOGIN_NONCE_COOKIE = "homewatch_login"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"


class LoginRequiredError(Exception):
    """No valid session: the handler answers with a redirect to /login."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


class CsrfRefusedError(Exception):
    """A form POST without the token of this session: answered 403, nothing changed."""


def csrf_for(secret: str, anchor: str) -> str:
    return hmac.new(secret.encode(), b"csrf:" + anchor.encode(), hashlib.sha256).hexdigest()


def _load_template(name: str) -> str:
    return resources.files("gateway.console").joinpath(f"templates/{name}").read_text("utf-8")


@cache
def _environment(language: str) -> Environment:
    env = Environment(
        loader=FunctionLoader(_load_template),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["duration"] = lambda seconds: duration_text(seconds, language)
    return env


async def current_user(request: Request, context: Ctx) -> Principal:
    """The session's user, or a redirect to /login. Opens its own short session so that a
    long live stream holds no database connection."""
    token = request.cookies.get(SESSION_COOKIE)
    next_path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if not token:
        raise LoginRequiredError(next_path)
    try:
        username, version = decode_token_version(context.secret_key, token)
    except TokenError as error:
        raise LoginRequiredError(next_path) from error
    async with context.db.session() as session:
        principal = await principal_of(session, username, version)
    if principal is None:
        raise LoginRequiredError(next_path)
    return principal


ConsoleUser = Annotated[Principal, Depends(current_user)]


async def require_csrf(request: Request, context: Ctx) -> None:
    """Every state-changing console request proves it came from one of our pages."""
    anchor = request.cookies.get(SESSION_COOKIE) or ""
    sent = request.headers.get(CSRF_HEADER)
    if sent is None:
        form = await request.form()
        value = form.get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    if (
        not anchor
        or not sent
        or not hmac.compare_digest(sent, csrf_for(context.secret_key, anchor))
    ):
        raise CsrfRefusedError


CsrfChecked = Depends(require_csrf)


class Page:
    """Renders templates with what every page needs (text, user, CSRF token, times)."""

    def __init__(self, request: Request, context: Ctx) -> None:
        self.request = request
        self.context = context
        self.tz = context.settings.tz
        self.now = context.clock.now()
        chosen = request.cookies.get(LANGUAGE_COOKIE, DEFAULT_LANGUAGE)
        self.language = chosen if chosen in LANGUAGES else DEFAULT_LANGUAGE
        self.words = catalogue(self.language)

    def local(self, moment: datetime | None, fmt: str = "%m-%d %H:%M") -> str:
        if moment is None:
            return ""
        return moment.astimezone(self.tz).strftime(fmt)

    def age_seconds(self, moment: datetime | None) -> float:
        if moment is None:
            return 0.0
        return (self.now - moment).total_seconds()

    def text(self, template: str, user: Principal | None = None, **values: Any) -> str:
        anchor = self.request.cookies.get(SESSION_COOKIE, "")
        return (
            _environment(self.language)
            .get_template(template)
            .render(
                t=self.words,
                lang=self.language,
                languages=LANGUAGES,
                user=user,
                csrf=csrf_for(self.context.secret_key, anchor) if anchor else "",
                path=self.request.url.path,
                now=self.now,
                now_ms=int(self.now.timestamp() * 1000),
                local=self.local,
                age=self.age_seconds,
                quote=quote,
                **values,
            )
        )

    def render(
        self, template: str, user: Principal | None = None, *, status_code: int = 200, **values: Any
    ) -> HTMLResponse:
        return HTMLResponse(self.text(template, user, **values), status_code=status_code)


def page(request: Request, context: Ctx) -> Page:
    return Page(request, context)


PageDep = Annotated[Page, Depends(page)]


def new_login_nonce() -> str:
    return secrets.token_urlsafe(24)


def wall_clock() -> datetime:
    """Session tokens are stamped with real time (see the API's login for why)."""
    return datetime.now(UTC)
