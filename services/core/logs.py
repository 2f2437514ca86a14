"""Structured logs (structlog): one JSON object a line, with the request id.

Every line a serving process writes, its own and its libraries' (uvicorn, Celery,
SQLAlchemy), goes through the same processors: the bound context (`request_id`, and
whatever else was bound), level, UTC timestamp, logger name, and redaction, then JSON
(or a console rendering for a person, `LASTMILE_LOG_FORMAT=console`).

The request id follows a booking: the API binds one per request (a caller's
`X-Request-Id` if it is sane, else a new one) and answers with it; it is stored with
the delivery and the outbox events the request wrote, travels in the headers of the
Celery tasks a process sends while it is bound, and is bound again by whoever handles
those rows later (outbox dispatch, webhook delivery, the planner, billing's
allocation).

No secret, token or recipient contact detail is ever logged: code logs ids, never
such values, and `redact` masks what slips through (keys named like secrets or
contact fields, bearer tokens, JWTs, signing secrets) as a second wall.
"""

from __future__ import annotations

import logging
import re
import sys
import uuid
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import IO, Any

import structlog
from structlog.contextvars import bind_contextvars, get_contextvars, reset_contextvars

REQUEST_ID = "request_id"
_SANE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")

_SECRET_KEYS = re.compile(
    r"(authorization|password|passwd|secret|token|signature|cookie|api[_-]?key|"
    r"phone|email|recipient|line1|postal)",
    re.IGNORECASE,
)
_SECRET_TEXT = (
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+"), r"\1 [redacted]"),
    (re.compile(r"\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"), "[redacted-jwt]"),
    (re.compile(r"\b(whsec|lms|lm_secret|trk)_[A-Za-z0-9_-]{8,}"), r"\1_[redacted]"),
    (re.compile(r"(?i)(client_secret|password|token)=([^&\s]+)"), r"\1=[redacted]"),
    (re.compile(r"(://[^:/@\s]+:)[^@\s]+@"), r"\1[redacted]@"),
    # A URL's query may carry a key (a merchant's webhook URL, a callback).
    (re.compile(r"(https?://[^\s?#\"']+)\?[^\s\"']*"), r"\1?[redacted]"),
)


def request_id() -> str | None:
    value = get_contextvars().get(REQUEST_ID)
    return value if isinstance(value, str) else None


def new_request_id(offered: str | None = None) -> str:
    """The caller's id if it is a sane one, else a fresh one."""
    if offered and _SANE_ID.match(offered):
        return offered
    return f"req_{uuid.uuid4().hex}"


@contextmanager
def bound(**values: Any) -> Iterator[None]:
    """Bind values (say `request_id`) to every log line in this block, then unbind."""
    tokens = bind_contextvars(**{k: v for k, v in values.items() if v is not None})
    try:
        yield
    finally:
        reset_contextvars(**tokens)


def redact(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in list(event):
        if key != "event" and _SECRET_KEYS.search(key):
            event[key] = "[redacted]"
        elif isinstance(event[key], str):
            event[key] = redact_text(event[key])
    return event


def redact_text(text: str) -> str:
    for pattern, replacement in _SECRET_TEXT:
        text = pattern.sub(replacement, text)
    return text


def _shared_processors() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.stdlib.ExtraAdder(),
        structlog.processors.format_exc_info,
        redact,
    ]


# structlog hands every line to the standard library's logging, so one handler (set
# by `configure`) renders them all; until then, lines go where logging sends them.
structlog.configure(
    processors=[*_shared_processors(), structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
    logger_factory=structlog.stdlib.LoggerFactory(),
    wrapper_class=structlog.stdlib.BoundLogger,
    cache_logger_on_first_use=False,
)


def handler(stream: IO[str], process: str, log_format: str = "json") -> logging.Handler:
    """A logging handler rendering every line, ours and libraries', as JSON (or for a
    person, "console") onto `stream`."""
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=False)
        if log_format == "console"
        else structlog.processors.JSONRenderer()
    )
    rendering = logging.StreamHandler(stream)
    rendering.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=_shared_processors(),
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                _add_process(process),
                renderer,
            ],
        )
    )
    return rendering


def configure(process: str) -> None:
    """Send every log line of this process, as configured, to stderr."""
    from services.core.settings import get_settings

    settings = get_settings()
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler(sys.stderr, process, settings.log_format))
    root.setLevel(settings.log_level.upper())
    for name in ("uvicorn", "uvicorn.error", "celery", "kombu"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    # SQL with its parameters (recipients' details) is never logged, whatever the level.
    logging.getLogger("sqlalchemy").setLevel(logging.WARNING)
    # Access logs would carry paths (tracking tokens); our own request line has templates.
    logging.getLogger("uvicorn.access").disabled = True


def _add_process(process: str) -> Any:
    def add(
        _logger: Any, _method: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        event.setdefault("process", process)
        return event

    return add


def get_logger(name: str) -> Any:
    return structlog.stdlib.get_logger(name)
