"""OpenTelemetry traces: API requests, database calls and Celery tasks, when configured.

Off by default (`LASTMILE_TRACING=none`): nothing of OpenTelemetry is even imported.
`otlp` exports to a collector named by OpenTelemetry's own variables
(`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_HEADERS`, ...); `console` prints
each span on stdout, for a look on one machine. A task sent while a request is traced
carries the trace context, so a booking's request and the tasks it causes join up.
"""

from __future__ import annotations

from typing import Any

from services.core.settings import get_settings

_enabled = False


def enabled() -> bool:
    return _enabled


def configure(process: str, exporter: Any = None) -> bool:
    """Start tracing this process (idempotent); returns whether it traces."""
    global _enabled
    mode = get_settings().tracing
    if _enabled or (mode == "none" and exporter is None):
        return _enabled
    from opentelemetry import trace
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        ConsoleSpanExporter,
        SimpleSpanProcessor,
    )

    from services.core.db import get_engine, get_merchant_engine

    provider = TracerProvider(resource=Resource.create({"service.name": f"lastmile-{process}"}))
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    elif mode == "console":
        provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    tracer = trace.get_tracer("lastmile.db")
    for engine in {id(e): e for e in (get_engine(), get_merchant_engine())}.values():
        _trace_statements(engine, tracer)
    CeleryInstrumentor().instrument()
    _enabled = True
    return True


def instrument_app(app: Any) -> None:
    """Trace each request of a FastAPI app, if this process traces."""
    if not _enabled:
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(app, excluded_urls="metrics,livez,readyz,healthz")


def _trace_statements(engine: Any, tracer: Any) -> None:
    """A client span per statement SQLAlchemy executes: its SQL, never its parameters.

    (OpenTelemetry's SQLAlchemy instrumentation does the same, but refuses the
    SQLAlchemy we ship and needs greenlet for its asyncio half.) Statements sent on the
    driver's own cursor (`services.core.db.driver_cursor`) are covered by their caller's span.
    """
    from opentelemetry.trace import SpanKind, Status, StatusCode
    from sqlalchemy import event

    system = engine.dialect.name

    @event.listens_for(engine, "before_cursor_execute")
    def _start(
        _conn: Any, _cursor: Any, statement: str, _params: Any, context: Any, _many: Any
    ) -> None:
        if context is None:
            return
        verb = statement.split(None, 1)[0].upper() if statement.strip() else "SQL"
        context._lastmile_span = tracer.start_span(
            f"{verb} {system}",
            kind=SpanKind.CLIENT,
            attributes={"db.system": system, "db.statement": statement[:2000]},
        )

    @event.listens_for(engine, "after_cursor_execute")
    def _end(
        _conn: Any, _cursor: Any, _statement: Any, _params: Any, context: Any, _many: Any
    ) -> None:
        span = getattr(context, "_lastmile_span", None)
        if span is not None:
            span.end()

    @event.listens_for(engine, "handle_error")
    def _failed(exception_context: Any) -> None:
        span = getattr(exception_context.execution_context, "_lastmile_span", None)
        if span is not None:
            span.set_status(
                Status(StatusCode.ERROR, type(exception_context.original_exception).__name__)
            )
            span.end()
