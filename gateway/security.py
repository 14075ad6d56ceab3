"""Passwords (scrypt, stdlib) and bearer tokens (JWT, HS256)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import datetime, timedelta
from typing import Any

import jwt

__all__ = [
    "TokenError",
    "decode_token",
    "decode_token_version",
    "hash_password",
    "issue_token",
    "verify_password",
]

_N, _R, _P = 2**14, 8, 1
TOKEN_LIFETIME = timedelta(hours=12)


class TokenError(ValueError):
    """A bearer token that is missing, forged or expired."""


def hash_password(password: str) -> str:
    if len(password) < 8:
        raise ValueError("password must have at least 8 characters")
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P)
    return "scrypt$" + base64.b64encode(salt).decode() + "$" + base64.b64encode(digest).decode()


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, salt_b64, digest_b64 = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    salt = base64.b64decode(salt_b64)
    expected = base64.b64decode(digest_b64)
    actual = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P)
    return hmac.compare_digest(actual, expected)


def issue_token(secret: str, username: str, now: datetime, *, version: int = 0) -> str:
    """``version`` is the user's token version: disabling the user or changing her password
    bumps it, which ends every token issued before (SPEC §10)."""
    payload = {
        "sub": username,
        "ver": version,
        "iat": int(now.timestamp()),
        "exp": int((now + TOKEN_LIFETIME).timestamp()),
    }
    return jwt.encode(payload, secret, algorithm="HS256")


def decode_token_version(secret: str, token: str) -> tuple[str, int]:
    """(subject, token version) of a valid token; tokens from before versions count as 0."""
    subject = decode_token(secret, token)
    payload: dict[str, Any] = jwt.decode(token, secret, algorithms=["HS256"])
    version = payload.get("ver", 0)
    if not isinstance(version, int):
        raise TokenError("token has a malformed version")
    return subject, version


def decode_token(secret: str, token: str) -> str:
    try:
        payload: dict[str, Any] = jwt.decode(token, secret, algorithms=["HS256"])
    except jwt.PyJWTError as error:
        raise TokenError(str(error)) from error
    subject = payload.get("sub")
    if not isinstance(subject, str):
        raise TokenError("token has no subject")
    return subject
