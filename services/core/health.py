"""What a process depends on, checked: the database, the broker and Redis.

For `/readyz` (is this API process ready for traffic?) and `lastmile status`. Each
check returns None when the dependency answers, else why not; none waits longer than
its timeout.
"""

from __future__ import annotations

from sqlalchemy import text

from services.core.celery_app import QUEUES, celery_app
from services.core.db import get_engine
from services.core.settings import get_settings

TIMEOUT_SECONDS = 2.0


def check_database() -> str | None:
    try:
        with get_engine().connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as error:
        return _reason(error)
    return None


def check_broker(timeout: float = TIMEOUT_SECONDS) -> str | None:
    try:
        with celery_app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=timeout)
    except Exception as error:
        return _reason(error)
    return None


def check_redis(timeout: float = TIMEOUT_SECONDS) -> str | None:
    """Redis holding the API's shared budgets; None when none is configured."""
    url = get_settings().redis_url
    if not url:
        return None
    import redis

    try:
        client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as error:
        return _reason(error)
    return None


def readiness() -> dict[str, str]:
    """Each dependency: "ok", "not configured", or why it failed."""
    checks = {"database": check_database(), "broker": check_broker()}
    checks["redis"] = check_redis() if get_settings().redis_url else "not configured"
    return {name: "ok" if problem is None else problem for name, problem in checks.items()}


def ready(checks: dict[str, str]) -> bool:
    return all(state in ("ok", "not configured") for state in checks.values())


def queue_depths() -> dict[str, int | None]:
    """Messages waiting in each Celery queue (None: the broker did not say)."""
    depths: dict[str, int | None] = dict.fromkeys(QUEUES)
    try:
        with celery_app.connection_for_read() as connection:
            connection.ensure_connection(max_retries=1, timeout=TIMEOUT_SECONDS)
            channel = connection.default_channel
            for queue in QUEUES:
                try:
                    depths[queue] = channel.queue_declare(queue, passive=True).message_count
                except Exception:  # never declared: nothing was ever sent to it
                    depths[queue] = 0
                    channel = connection.channel()  # a failed declare may close the channel
    except Exception:
        pass
    return depths


def _reason(error: BaseException) -> str:
    """The error's type and first line: enough to act on, and no connection string."""
    first = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {first}" if first else type(error).__name__
