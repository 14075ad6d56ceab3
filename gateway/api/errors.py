"""Errors shaped like FastAPI's own, so clients read one format."""

from __future__ import annotations

import math
from typing import Any, NoReturn

from fastapi import FastAPI, HTTPException, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from gateway.register.service import OutOfScopeError, RecordRefusedError, RegisterConflictError

__all__ = ["field_error", "install_error_handlers", "validation_error"]


def _finite(value: Any) -> Any:
    """JSON has no Infinity or NaN; Python's parser accepts them, its encoder refuses them."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


async def validation_error(_request: Request, error: Exception) -> JSONResponse:
    """FastAPI's 422, but one that can always be encoded: it echoes the input, and a body
    sending ``Infinity`` used to turn the 422 into a 500 (found by tests/service/test_api_fuzz)."""
    assert isinstance(error, RequestValidationError)
    return JSONResponse(
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        content={"detail": _finite(jsonable_encoder(error.errors()))},
    )


def field_error(field: str, message: str) -> NoReturn:
    """A 422 shaped like FastAPI's validation errors, naming the body field at fault."""
    raise HTTPException(
        status.HTTP_422_UNPROCESSABLE_CONTENT,
        detail=[{"loc": ["body", field], "msg": message, "type": "value_error"}],
    )


async def _register_refused(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RecordRefusedError)
    return JSONResponse(
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        content={
            "detail": [{"loc": ["body", error.field], "msg": error.message, "type": "value_error"}]
        },
    )


async def _register_conflict(_request: Request, error: Exception) -> JSONResponse:
    return JSONResponse(status_code=status.HTTP_409_CONFLICT, content={"detail": str(error)})


async def _register_forbidden(_request: Request, error: Exception) -> JSONResponse:
    return JSONResponse(status_code=status.HTTP_403_FORBIDDEN, content={"detail": str(error)})


def install_error_handlers(app: FastAPI) -> None:
    """Every route answers bad input alike: FastAPI's 422 shape, and the register service's
    refusals as the same 422 naming the field, 409 for a conflict, 403 out of scope."""
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(RecordRefusedError, _register_refused)
    app.add_exception_handler(RegisterConflictError, _register_conflict)
    app.add_exception_handler(OutOfScopeError, _register_forbidden)
