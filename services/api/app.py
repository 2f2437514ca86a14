"""The API application: OAuth authorization server, GraphQL, tracking pages, CSV exports, health."""

from __future__ import annotations

import gc
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import JSONResponse, PlainTextResponse
from sqlalchemy import text

from services.api.billing_export import router as billing_export_router
from services.api.bodylimit import BodySizeLimit
from services.api.graphiql import mount_assets
from services.api.graphql.router import graphql_routes
from services.api.graphql.schema import schema
from services.api.oauth.endpoints import router as oauth_router
from services.api.observability import RequestObservability, metrics_endpoint
from services.api.tracking import router as tracking_router
from services.core import health, logs, tracing
from services.core.db import connect_serving_engines, get_engine
from services.core.settings import get_settings


@asynccontextmanager
async def _lifespan(_app: FastAPI) -> AsyncIterator[None]:
    """Refuse to start as a database role that could see past row-level security."""
    connect_serving_engines()
    yield


def create_app() -> FastAPI:
    app = FastAPI(title="Lastmile", version="0.1.0", lifespan=_lifespan)
    app.include_router(oauth_router)
    app.include_router(tracking_router)
    app.include_router(billing_export_router)
    post_route, graphql_router = graphql_routes(schema, "/graphql")
    app.router.routes.insert(0, post_route)
    app.include_router(graphql_router, prefix="/graphql")
    mount_assets(app)
    app.add_middleware(BodySizeLimit, max_bytes=get_settings().max_request_bytes)
    app.add_route("/metrics", metrics_endpoint, include_in_schema=False)
    app.add_middleware(RequestObservability)
    tracing.instrument_app(app)

    @app.get("/graphql/schema.graphql", response_class=PlainTextResponse)
    def sdl() -> str:
        return schema.as_str()

    @app.get("/healthz")
    def healthz() -> JSONResponse:
        try:
            with get_engine().connect() as connection:
                connection.execute(text("SELECT 1"))
        except Exception as error:  # any failure to reach the database is "unhealthy"
            return JSONResponse({"status": "unavailable", "error": str(error)}, status_code=503)
        return JSONResponse({"status": "ok"})

    @app.get("/livez")
    def livez() -> JSONResponse:
        """The process serves requests; depends on nothing else (liveness probes)."""
        return JSONResponse({"status": "ok"})

    @app.get("/readyz")
    def readyz() -> JSONResponse:
        """Ready for traffic: the database, the broker and Redis (if configured) answer."""
        checks = health.readiness()
        ok = health.ready(checks)
        body = {"status": "ok" if ok else "unavailable", "checks": checks}
        return JSONResponse(body, status_code=200 if ok else 503)

    return app


def create_server_app() -> FastAPI:
    """The app as an API server process runs it (`lastmile serve`, benchmarks/api).

    What start-up builds lives as long as the process, so it is frozen out of the
    garbage collector's sight: otherwise every full collection walks those 200,000-odd
    objects again, and a booking makes enough garbage to trigger them often (measured:
    a fifth of a booking's CPU). Tests build many apps, so they use `create_app`, whose
    objects the collector may still free.
    """
    if os.environ.get("LASTMILE_PROCESS") == "api":  # `lastmile serve` and its processes
        logs.configure("api")
        tracing.configure("api")
    app = create_app()
    gc.collect()
    gc.freeze()
    return app
