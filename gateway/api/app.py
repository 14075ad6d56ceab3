"""``create_app``: the FastAPI application, without any connection of its own."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse

from gateway.api import (
    routes_alerts,
    routes_audit,
    routes_core,
    routes_register,
    routes_reports,
    routes_twilio,
    routes_visits,
    routes_watch,
)
from gateway.api.deps import ApiContext
from gateway.api.errors import validation_error
from gateway.api.status_page import render_status_page

__all__ = ["create_app"]


def create_app(context: ApiContext) -> FastAPI:
    app = FastAPI(
        title="Homewatch 智慧看家",
        version="0.1.0",
        description="Smart home-watch gateway: register, sensor events, alerts and escalation.",
    )
    app.state.context = context
    app.add_exception_handler(RequestValidationError, validation_error)
    app.include_router(routes_core.api)
    app.include_router(routes_core.public)
    app.include_router(routes_alerts.router)
    app.include_router(routes_register.router)
    app.include_router(routes_visits.router)
    app.include_router(routes_reports.router)
    app.include_router(routes_twilio.router)
    app.include_router(routes_watch.router)
    app.include_router(routes_audit.router)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> str:
        return await render_status_page(context)

    return app
