"""The GraphQL schema and its HTTP router, assembled from one module per feature."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from functools import lru_cache, partial
from typing import Any

import orjson
import strawberry
from cross_web import HTTPException as StrawberryHTTPException
from fastapi import HTTPException, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from graphql import DocumentNode, GraphQLError, parse
from starlette.routing import Route
from strawberry.exceptions import ConnectionRejectionError
from strawberry.extensions import AddValidationRules, SchemaExtension, ValidationCache
from strawberry.fastapi import GraphQLRouter
from strawberry.tools import merge_types
from strawberry.types import ExecutionResult
from strawberry.types.base import get_object_definition
from strawberry.types.graphql import OperationType
from strawberry.types.unset import UNSET, UnsetType

from services.api.auth import bearer_token
from services.api.graphiql import local_assets
from services.api.graphql.billing import BillingQueries
from services.api.graphql.context import Context, get_context
from services.api.graphql.cost import QueryLimits
from services.api.graphql.deliveries import DeliveryMutations, DeliveryQueries
from services.api.graphql.lifecycle import LifecycleMutations
from services.api.graphql.planning import PlanningMutations, PlanningQueries
from services.api.graphql.quotes import QuoteMutations
from services.api.graphql.subscriptions import DeliverySubscriptions
from services.api.graphql.text import NUL_REFUSED, NoNulInStrings, may_hold_nul, nul_path
from services.api.graphql.throttle import QueryCost
from services.api.graphql.webhooks import WebhookMutations, WebhookQueries
from services.core.ids import new_id
from services.core.meters import Usage
from services.core.usage import defer_usage, forget_deferred_usage, record_deferred_usage


class RequestTransaction(SchemaExtension):
    """The request owns the transaction: commit if the operation succeeded, else roll back.

    Committing here, before the response is serialised, means nothing is acknowledged
    to a client that is not durably stored. A merchant's operation that commits is
    metered as one `api_requests` usage event in that same transaction (it rides along
    with the operation's own usage, if any); a mutation refused outright is not, as
    bad input changes nothing. The session is closed when the operation
    ends, whatever happened.
    """

    def on_operation(self) -> Iterator[None]:
        try:
            yield
        finally:
            self.execution_context.context.close_session()

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context.context
        billable = context.token.tenant_id is not None and not context.token.sandbox
        if billable:  # one api_requests event per operation, kept only if it commits
            defer_usage(
                context.session,
                [
                    Usage(
                        id=new_id("req"),
                        tenant_id=context.tenant_id,
                        meter="api_requests",
                        quantity=Decimal(1),
                        at=context.now,
                    )
                ],
            )
        yield
        result = self.execution_context.result
        if result is None or result.errors:
            context.session.rollback()
            return
        if billable and _refused(self.execution_context.operation_type, result.data):
            forget_deferred_usage(context.session)
        record_deferred_usage(context.session)
        context.session.commit()


@lru_cache(maxsize=512)
def _parse(query: str, max_tokens: int | None) -> DocumentNode:
    return parse(query, max_tokens=max_tokens)


class ParseOnce(SchemaExtension):
    """Parses each distinct document once per process: integrations repeat a few.

    A document that does not parse is left to strawberry, which reports the error
    the usual way (and QueryLimits gives an oversized one its code).
    """

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        if context.query is not None:
            with contextlib.suppress(GraphQLError):
                context.graphql_document = _parse(
                    context.query, context.parse_options.get("max_tokens")
                )
        yield


def _refused(operation_type: OperationType, data: dict[str, Any] | None) -> bool:
    """A mutation whose every payload carries userErrors: refused, so nothing changed."""
    if operation_type is not OperationType.MUTATION or not data:
        return False
    return all(isinstance(p, dict) and p.get("userErrors") for p in data.values())


def _root(name: str, description: str, parts: tuple[type, ...]) -> type:
    """One root type from each feature's fields (`merge_types`), with a description."""
    merged = merge_types(name, parts)
    get_object_definition(merged, strict=True).description = description
    return merged


Query = _root(
    "Query",
    "Reads. Merchants see only their own data (deliveries:read, billing:read); plan runs "
    "need the operator scope.",
    (DeliveryQueries, BillingQueries, WebhookQueries, PlanningQueries),
)
Mutation = _root(
    "Mutation",
    "Changes. A rejected input comes back as `userErrors` in the payload, not as GraphQL "
    "errors, and writes nothing.",
    (DeliveryMutations, LifecycleMutations, WebhookMutations, PlanningMutations, QuoteMutations),
)


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


schema = ThreadedSchema(
    query=Query,
    mutation=Mutation,
    subscription=DeliverySubscriptions,
    # Integrations send the same few documents over and over: parse and validate each once.
    extensions=[
        QueryLimits,
        lambda: AddValidationRules([NoNulInStrings]),
        ParseOnce,
        lambda: ValidationCache(maxsize=512),
        RequestTransaction,
        QueryCost,
    ],
)


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


def graphql_routes(path: str) -> tuple[Route, LastmileGraphQLRouter]:
    """The fast POST route, to mount first, and the router for everything else at `path`
    (GraphiQL, queries by GET, WebSocket subscriptions)."""
    router = LastmileGraphQLRouter(schema, context_getter=get_context, graphql_ide="graphiql")
    return Route(path, router.handle_post, methods=["POST"]), router
