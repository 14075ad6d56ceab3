"""Errors shaped like FastAPI's own, so clients read one format."""

from __future__ import annotations

from typing import NoReturn

from fastapi import HTTPException, status

__all__ = ["field_error"]


def field_error(field: str, message: str) -> NoReturn:
    """A 422 shaped like FastAPI's validation errors, naming the body field at fault."""
    raise HTTPException(
        status.HTTP_422_UNPROCESSABLE_CONTENT,
        detail=[{"loc": ["body", field], "msg": message, "type": "value_error"}],
    )
