"""The API's side of observability: each request's id, log line and metrics; `/metrics`.

`RequestObservability` wraps every HTTP request (a pure ASGI middleware: nothing is
buffered): it binds the request id (the caller's `X-Request-Id` if sane, else a new
one; answered in the same header), counts the request and its latency by route
template and status, counts 429s as throttled and 5xx as errors, and logs one line.
`OperationMetrics` does the same per GraphQL operation, named by its root field.
`/metrics` serves every API process's samples (multi-process mode) and what is read at
scrape time: messages waiting per Celery queue, outbox backlog and lag.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from graphql import FieldNode, OperationDefinitionNode
from prometheus_client.core import GaugeMetricFamily
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from strawberry.extensions import SchemaExtension

from services.core import health, logs, metrics
from services.core.db import transaction, utcnow
from services.core.outbox import backlog

logger = logs.get_logger("lastmile.api")


class RequestObservability:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._templates: dict[tuple[str, str], str] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        offered = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        request_id = logs.new_request_id(offered)
        started = time.perf_counter()
        status = [500]

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        with logs.bound(request_id=request_id):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                self._observe(scope, status[0], time.perf_counter() - started)

    def _observe(self, scope: Scope, status: int, seconds: float) -> None:
        route = self._route(scope)
        metrics.HTTP_REQUESTS.labels(route, str(status)).inc()
        metrics.HTTP_LATENCY.labels(route).observe(seconds)
        if status == 429:
            metrics.THROTTLED.labels("http").inc()
        elif status >= 500:
            metrics.ERRORS.labels(f"HTTP_{status}").inc()
        if route != "/metrics":
            logger.info(
                "request",
                method=scope.get("method"),
                route=route,
                status=status,
                ms=round(seconds * 1000, 1),
            )

    def _route(self, scope: Scope) -> str:
        """The template of the route that served the request (never its concrete path:
        that may hold a tracking token)."""
        found = scope.get("route")
        if found is not None and hasattr(found, "path"):
            return str(found.path)
        key = (scope.get("method", ""), scope.get("path", ""))
        template = self._templates.get(key)
        if template is None:
            template = "unmatched"
            app = scope.get("app")
            for route in getattr(getattr(app, "router", None), "routes", []):
                match, _ = route.matches(scope)
                if match is not Match.NONE:
                    template = getattr(route, "path", None) or "unmatched"
                    break
            if "{" not in template and len(self._templates) < 1000:
                self._templates[key] = template  # only parameterless paths: bounded
        return template


class OperationMetrics(SchemaExtension):
    """Counts each GraphQL operation by its root field(s) and outcome, and its latency."""

    def on_operation(self) -> Iterator[None]:
        started = time.perf_counter()
        yield
        context = self.execution_context
        name = _operation_name(context)
        metrics.GRAPHQL_LATENCY.labels(name).observe(time.perf_counter() - started)
        result = context.result
        outcome = "ok"
        if result is None or result.errors:
            outcome = "error"
            for error in (result.errors or []) if result is not None else []:
                code = str((error.extensions or {}).get("code", "GRAPHQL_ERROR"))
                metrics.ERRORS.labels(code).inc()
                if code == "THROTTLED":
                    metrics.THROTTLED.labels("graphql").inc()
        elif result.data:
            codes = list(_user_error_codes(result.data))
            if codes:
                outcome = "user_error"
                for code in codes:
                    metrics.ERRORS.labels(code).inc()
        metrics.GRAPHQL_OPERATIONS.labels(name, outcome).inc()


def _operation_name(context: Any) -> str:
    """The selected operation's root fields (bounded by the schema), e.g. `bookDelivery`."""
    document = getattr(context, "graphql_document", None)
    if document is None:
        return "unparsed"
    for definition in document.definitions:
        if not isinstance(definition, OperationDefinitionNode):
            continue
        if context.operation_name and (
            definition.name is None or definition.name.value != context.operation_name
        ):
            continue
        fields = sorted(
            {
                selection.name.value
                for selection in definition.selection_set.selections
                if isinstance(selection, FieldNode)
            }
        )
        return "+".join(fields[:3]) or "fragment"
    return "unknown"


def _user_error_codes(data: Any) -> Iterator[str]:
    if isinstance(data, dict):
        for key, value in data.items():
            if key == "userErrors" and isinstance(value, list):
                for error in value:
                    if isinstance(error, dict) and error.get("code"):
                        yield str(error["code"])
            else:
                yield from _user_error_codes(value)
    elif isinstance(data, list):
        for value in data:
            yield from _user_error_codes(value)


class BacklogCollector:
    """Queue depths and outbox backlog, read when scraped (at most every few seconds)."""

    def __init__(self, max_age: float = 5.0) -> None:
        self.max_age = max_age
        self._at = float("-inf")
        self._families: list[GaugeMetricFamily] = []

    def collect(self) -> Iterator[GaugeMetricFamily]:
        if time.monotonic() - self._at > self.max_age:
            self._families = self._read()
            self._at = time.monotonic()
        yield from self._families

    def _read(self) -> list[GaugeMetricFamily]:
        depth = GaugeMetricFamily(
            "lastmile_celery_queue_depth",
            "Messages waiting in each Celery queue.",
            labels=["queue"],
        )
        for queue, count in health.queue_depths().items():
            if count is not None:
                depth.add_metric([queue], count)
        families = [depth]
        try:
            with transaction() as session:
                found = backlog(session, utcnow())
        except Exception:  # the database is down: /readyz says so
            return families
        pending = GaugeMetricFamily(
            "lastmile_outbox_pending", "Outbox events committed and not yet dispatched."
        )
        pending.add_metric([], found.pending)
        lag = GaugeMetricFamily(
            "lastmile_outbox_lag_seconds", "Age of the oldest undispatched outbox event."
        )
        lag.add_metric([], found.lag_seconds)
        return [*families, pending, lag]


_BACKLOG = BacklogCollector()


def metrics_endpoint(_request: Request) -> Response:
    body, content_type = metrics.exposition([_BACKLOG])
    return Response(body, media_type=content_type)
