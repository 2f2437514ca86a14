"""The application under benchmark: the real API plus two bare baselines on the same engine.

- POST /bare/insert: a plain FastAPI endpoint doing one INSERT (the physical limit).
- POST /bare/graphql: a bare strawberry mutation doing that same INSERT.
"""

from __future__ import annotations

import os

import strawberry
from fastapi import FastAPI, Request
from sqlalchemy import text
from strawberry.fastapi import GraphQLRouter

from services.api.app import create_server_app
from services.core.db import get_engine

INSERT = text("INSERT INTO bench_row (id, payload) VALUES (:id, :payload)")


def _insert(payload: str) -> None:
    with get_engine().begin() as connection:
        connection.execute(INSERT, {"id": os.urandom(12).hex(), "payload": payload})


@strawberry.type
class BareQuery:
    ok: bool = True


@strawberry.type
class BareMutation:
    @strawberry.mutation
    def insert(self, payload: str) -> bool:
        _insert(payload)
        return True


def create() -> FastAPI:
    app = create_server_app()

    @app.post("/bare/insert")
    async def bare_insert(request: Request) -> dict[str, bool]:
        body = await request.json()
        _insert(body["payload"])
        return {"ok": True}

    bare_schema = strawberry.Schema(query=BareQuery, mutation=BareMutation)
    app.include_router(GraphQLRouter(bare_schema, graphql_ide=None), prefix="/bare/graphql")
    return app
