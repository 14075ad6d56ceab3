"""``create_app``: the FastAPI application, without any connection of its own."""

from __future__ import annotations

from fastapi import FastAPI

from gateway.api import (
    routes_alerts,
    routes_aliyun,
    routes_audit,
    routes_core,
    routes_register,
    routes_reports,
    routes_twilio,
    routes_visits,
    routes_watch,
    routes_whatif,
)
from gateway.api.deps import ApiContext
from gateway.api.docs import install_offline_docs
from gateway.api.errors import install_error_handlers
from gateway.console import install_console

__all__ = ["create_app"]


def create_app(context: ApiContext) -> FastAPI:
    app = FastAPI(
        title="Homewatch 智慧看家",
        version="0.1.0",
        description="Smart home-watch gateway: register, sensor events, alerts and escalation.",
        docs_url=None,  # served by install_offline_docs, without a CDN
        redoc_url=None,
    )
    install_offline_docs(app)
    app.state.context = context
    install_error_handlers(app)
    app.include_router(routes_core.api)
    app.include_router(routes_core.public)
    app.include_router(routes_alerts.router)
    app.include_router(routes_register.router)
    app.include_router(routes_visits.router)
    app.include_router(routes_reports.router)
    app.include_router(routes_twilio.router)
    app.include_router(routes_aliyun.router)
    app.include_router(routes_watch.router)
    app.include_router(routes_audit.router)
    app.include_router(routes_whatif.router)
    # The operator console (SPEC §9): `/`, `/login`, `/wall` and the other pages.
    install_console(app)
    return app
