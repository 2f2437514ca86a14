"""GraphQL over HTTP and WebSocket: the routes, JSON in and out, and the threads
operations run on."""

from __future__ import annotations

import asyncio
import contextvars
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import orjson
import strawberry
from cross_web import HTTPException as StrawberryHTTPException
from fastapi import HTTPException, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route
from strawberry.exceptions import ConnectionRejectionError
from strawberry.fastapi import GraphQLRouter
from strawberry.types import ExecutionResult
from strawberry.types.unset import UNSET, UnsetType

from services.api.auth import bearer_token
from services.api.graphiql import local_assets
from services.api.graphql.context import Context, get_context
from services.api.graphql.limits.text import NUL_REFUSED, may_hold_nul, nul_path

# Enough threads to overlap a few requests' database waits; more only trade the GIL
# back and forth (measured: 30 threads cost about 15% more CPU per booking than 8).
_OPERATION_THREADS = ThreadPoolExecutor(max_workers=8, thread_name_prefix="graphql")


class ThreadedSchema(strawberry.Schema):
    """Runs each HTTP operation in a worker thread.

    Resolvers are synchronous and talk to the database; run inline they would block
    the event loop, so one API process would serve one request at a time. In a
    thread, requests overlap their database waits. Subscriptions stay on the loop.
    A plain executor hands work over for less than anyio's thread helper.
    """

    async def execute(self, *args: Any, **kwargs: Any) -> ExecutionResult:
        run = partial(contextvars.copy_context().run, self.execute_sync, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(_OPERATION_THREADS, run)


class LastmileGraphQLRouter(GraphQLRouter[Context, None]):
    async def handle_post(self, request: Request) -> Response:
        """POST /graphql, as strawberry's own handler does it, minus FastAPI's dependency
        injection, which costs more than the rest of the HTTP layer (measured in
        benchmarks/api). Nearly every operation arrives this way; `graphql_routes`
        puts it ahead of the router's POST route."""
        context = await get_context(request)
        response = Response()  # what a resolver may add to (headers), as FastAPI makes it
        del response.headers["content-length"]
        response.status_code = None  # type: ignore[assignment]
        context.request, context.response = request, response
        self.temporal_response = response
        try:
            return await self.run(request=request, context=context, root_value=None)
        except StrawberryHTTPException as error:
            return PlainTextResponse(error.reason, status_code=error.status_code)

    def decode_json(self, data: str | bytes) -> object:
        """Request JSON (a POST body, GET variables); one holding a NUL is a 400.

        orjson, three times the standard library's speed on a bulk booking's body, and
        stricter: NaN, Infinity and unpaired surrogates are not JSON, so they are a 400.
        """
        value = orjson.loads(data)
        if may_hold_nul(data):
            where = nul_path(value, "$")
            if where is not None:
                raise StrawberryHTTPException(400, f"{NUL_REFUSED}: {where}.")
        return value

    def encode_json(self, data: object) -> str:
        """Response JSON, by orjson as requests are read. Text, because WebSocket
        messages must be text frames."""
        return orjson.dumps(data).decode()

    async def render_graphql_ide(self, request: Request) -> HTMLResponse:
        return HTMLResponse(local_assets(self.graphql_ide_html))

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        """Authenticate a WebSocket from connection_init params (or the upgrade's header)."""
        params = context.connection_params or {}
        authorization = params.get("Authorization") or params.get("authorization")
        if not isinstance(authorization, str) and context.request is not None:
            authorization = context.request.headers.get("authorization", "")
        try:
            context.token = bearer_token(authorization if isinstance(authorization, str) else "")
        except HTTPException as refused:
            raise ConnectionRejectionError({"message": refused.detail}) from refused
        return UNSET


def graphql_routes(schema: strawberry.Schema, path: str) -> tuple[Route, LastmileGraphQLRouter]:
    """The fast POST route, to mount first, and the router for everything else at `path`
    (GraphiQL, queries by GET, WebSocket subscriptions)."""
    router = LastmileGraphQLRouter(schema, context_getter=get_context, graphql_ide="graphiql")
    return Route(path, router.handle_post, methods=["POST"]), router
