"""Configuration from the environment (prefix LASTMILE_), with embedded defaults.

The defaults need no server at all: a SQLite file and a SQLite-backed Celery broker
under ./var, so `make run` works on a bare machine. Point the URLs at PostgreSQL and
Redis/RabbitMQ to run for real.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LASTMILE_", extra="ignore")

    var_dir: Path = Path("var")
    # The platform's connection (jobs, CLI, operators, the token endpoint, tracking
    # pages). Empty: SQLite under var_dir.
    database_url: str = ""
    # On PostgreSQL, the role merchants' requests run as (row-level security confines it
    # to each request's tenant and mode) and the role that owns the tables and runs
    # migrations. Empty: database_url (right for SQLite only; see services.core.db).
    merchant_database_url: str = ""
    migration_database_url: str = ""
    broker_url: str = ""  # empty: a SQLite-backed broker under var_dir
    # Public base URL of the API: the `iss` of tokens and the base of RFC 8414 metadata.
    issuer: str = "http://127.0.0.1:8000"
    # PEM of the RSA key that signs access tokens. Empty: one is generated once into
    # var_dir. Every API process of a deployment must share the same key.
    jwt_private_key: str = ""
    access_token_ttl_seconds: int = 900
    # How the default matrix provider turns straight lines into road travel.
    road_circuity: float = 1.3
    plan_time_limit_seconds: float = 10.0
    # GraphQL query cost (docs/api-limits.md): each tenant's bucket holds
    # graphql_cost_limit points, which is also the most one operation may cost, and
    # refills at graphql_restore_rate points a second.
    graphql_cost_limit: int = 1000
    graphql_restore_rate: float = 50.0
    graphql_max_depth: int = 12
    graphql_max_aliases: int = 30
    graphql_max_tokens: int = 5000
    # The largest request body (and WebSocket message) the API reads, in bytes.
    max_request_bytes: int = 1024 * 1024
    # Subscriptions one merchant (tenant and mode) may hold open on one API process.
    subscriptions_per_merchant: int = 20
    # Redis holding the cost buckets, so that every API process drains the same budget.
    # Empty: each API process keeps its own buckets in memory (right for one process).
    redis_url: str = ""
    # No shift may pay less per hour than this (minor units): seeding and every plan
    # run refuse shifts below it.
    minimum_hourly_wage_minor: int = 1600
    # Where distances and travel times come from (docs/planning.md): "great_circle"
    # needs no network; "osrm" asks the OSRM-compatible table service at osrm_url.
    matrix_provider: Literal["great_circle", "osrm"] = "great_circle"
    osrm_url: str = ""
    osrm_timeout_seconds: float = 30.0
    # Matrices kept in process memory per area and set of points, and for how long.
    matrix_cache_size: int = 32
    matrix_cache_seconds: float = 3600.0
    # Let webhooks go to private, loopback and link-local addresses: for development,
    # whose receivers run on localhost. Off, only public addresses get webhooks.
    webhook_private_targets: bool = False
    # Public tracking-link lookups per client address ("<count>/<second|minute|hour>",
    # the `limits` library's notation).
    tracking_rate_limit: str = "60/minute"
    # Several schedulers may run; the one holding this database lease acts, and a
    # standby takes over this long after the holder last renewed (services.core.leader).
    scheduler_lease_seconds: float = 30.0
    # Logs: one JSON object a line ("json") or lines for a person ("console").
    log_format: Literal["json", "console"] = "json"
    log_level: str = "INFO"
    # A worker serves its processes' Prometheus metrics on this port (0: not served).
    worker_metrics_port: int = 0
    # Traces (OpenTelemetry): "none", "otlp" (to OTEL_EXPORTER_OTLP_ENDPOINT, the
    # standard variables) or "console" (stderr, for a look).
    tracing: Literal["none", "otlp", "console"] = "none"

    def resolved_database_url(self) -> str:
        return normalize_database_url(
            self.database_url or f"sqlite:///{(self.var_dir / 'lastmile.db').resolve()}"
        )

    def resolved_merchant_database_url(self) -> str:
        return normalize_database_url(self.merchant_database_url or self.resolved_database_url())

    def resolved_migration_database_url(self) -> str:
        return normalize_database_url(self.migration_database_url or self.resolved_database_url())

    def resolved_broker_url(self) -> str:
        return self.broker_url or f"sqla+sqlite:///{(self.var_dir / 'broker.db').resolve()}"


def normalize_database_url(url: str) -> str:
    """Accept plain `postgresql://` URLs and pick the driver we ship (psycopg 3)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


@lru_cache
def get_settings() -> Settings:
    settings = Settings()
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    return settings
