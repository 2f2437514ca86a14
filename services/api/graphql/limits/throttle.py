"""Per-caller query-cost budgets, and the extension that charges them.

Each tenant (an operator client, by its client id) has a leaky bucket, as Shopify's
API does: it holds up to `graphql_cost_limit` points and refills continuously at
`graphql_restore_rate` points a second. An operation is charged its requested cost
before it runs and refunded the difference once its actual cost is known; if the
bucket holds less than the requested cost, the operation does not run at all.

With `LASTMILE_REDIS_URL` set the buckets live in Redis, so every API process drains
the same budget; otherwise each app instance keeps its own in memory.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import redis
from graphql import ExecutionResult as GraphQLExecutionResult
from graphql import GraphQLError
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

from services.api.graphql.limits.cost import OperationCost
from services.api.oauth.tokens import AccessToken
from services.core.settings import Settings, get_settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Level:
    """The outcome of a take: whether it was granted, and the points left after it."""

    granted: bool
    available: float


class Bucket(Protocol):
    capacity: float
    restore_rate: float

    def take(self, key: str, amount: float) -> Level:
        """Refill `key` for the time elapsed, then take `amount` if the bucket holds it.

        A negative amount is a refund (never above capacity); zero reads the level.
        """
        ...


class LocalBucket:
    """Buckets in this process's memory, for a single API process."""

    def __init__(
        self, capacity: float, restore_rate: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.capacity = capacity
        self.restore_rate = restore_rate
        self._clock = clock
        self._lock = threading.Lock()
        self._levels: dict[str, tuple[float, float]] = {}  # key -> (level, at)

    def take(self, key: str, amount: float) -> Level:
        with self._lock:
            now = self._clock()
            level, at = self._levels.get(key, (self.capacity, now))
            level = min(self.capacity, level + max(0.0, now - at) * self.restore_rate)
            granted = amount <= level
            if granted:
                level = min(self.capacity, level - amount)
            # A full bucket is the same as none, so only callers that spent something
            # take memory.
            if level >= self.capacity:
                self._levels.pop(key, None)
            else:
                self._levels[key] = (level, now)
            return Level(granted, level)


# The same refill-then-take as LocalBucket, atomically and on Redis's clock, so the
# clocks of API processes never matter. A bucket's hash expires once it would be full.
_TAKE = """
local now = redis.call('TIME')
local t = tonumber(now[1]) + tonumber(now[2]) / 1000000
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local amount = tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'level', 'at')
local level = tonumber(state[1]) or capacity
local at = tonumber(state[2]) or t
level = math.min(capacity, level + math.max(0, t - at) * rate)
local granted = 0
if amount <= level then
  level = math.min(capacity, level - amount)
  granted = 1
end
if level >= capacity then
  redis.call('DEL', KEYS[1])
else
  redis.call('HSET', KEYS[1], 'level', level, 'at', t)
  redis.call('PEXPIRE', KEYS[1], math.ceil((capacity - level) / rate * 1000))
end
return {granted, tostring(level)}
"""


class RedisBucket:
    """Buckets in Redis, shared by every API process: one round trip per take."""

    def __init__(
        self,
        client: redis.Redis,
        capacity: float,
        restore_rate: float,
        prefix: str = "lastmile:graphql-cost:",
    ) -> None:
        self.capacity = capacity
        self.restore_rate = restore_rate
        self.prefix = prefix
        self._script = client.register_script(_TAKE)

    def take(self, key: str, amount: float) -> Level:
        try:
            granted, level = self._script(
                keys=[self.prefix + key], args=[self.capacity, self.restore_rate, amount]
            )
        except redis.RedisError:
            # Fail open: an unreachable Redis must not take the booking API down with it.
            logger.warning("query-cost bucket unavailable; not throttling", exc_info=True)
            return Level(True, self.capacity)
        return Level(bool(granted), float(level))


def new_bucket(settings: Settings) -> Bucket:
    capacity, rate = float(settings.graphql_cost_limit), settings.graphql_restore_rate
    if capacity <= 0 or rate <= 0:
        raise ValueError("LASTMILE_GRAPHQL_COST_LIMIT and _RESTORE_RATE must be positive.")
    if settings.redis_url:
        client = redis.Redis.from_url(
            settings.redis_url, socket_timeout=0.5, socket_connect_timeout=0.5
        )
        return RedisBucket(client, capacity, rate)
    return LocalBucket(capacity, rate)


def bucket_for(app: Any) -> Bucket:
    """The app's bucket store, made on first use; tests may put their own in `app.state`."""
    bucket: Bucket | None = getattr(app.state, "graphql_bucket", None)
    if bucket is None:
        bucket = app.state.graphql_bucket = new_bucket(get_settings())
    return bucket


def bucket_key(token: AccessToken) -> str:
    """Merchants share their tenant's budget across clients, one per mode (sandbox calls
    never drain the live budget); operator clients have their own."""
    if token.tenant_id is not None:
        return f"tenant:{token.tenant_id}" + (":sandbox" if token.sandbox else "")
    return f"client:{token.client_id}"


class QueryCost(SchemaExtension):
    """Prices, charges and reports every operation; refuses what the budget cannot cover.

    Refusals happen before execution by handing strawberry a finished result, so no
    resolver runs and the request transaction rolls back with nothing in it. A
    subscription is charged once, when it starts.
    `extensions.cost` is added to every response, errors included.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.requested = 0
        self.actual = 0
        self.level: Level | None = None

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        assert context.graphql_document is not None
        cost = OperationCost(
            context.schema._schema,
            context.graphql_document,
            context.operation_name,
            context.variables,
        )
        self.requested = cost.requested
        bucket, key = self._bucket()
        refusal = self._charge(bucket, key)
        if refusal is not None:
            if context.operation_type is OperationType.SUBSCRIPTION:
                raise refusal  # a subscription ignores a preset result; strawberry reports this
            context.result = GraphQLExecutionResult(data=None, errors=[refusal])
        yield
        if refusal is not None:
            return
        if context.result is None:  # a subscription: charged once, when it starts
            self.actual = self.requested
            return
        self.actual = cost.actual(context.result.data)
        if self.actual < self.requested:
            self.level = bucket.take(key, self.actual - self.requested)

    def _charge(self, bucket: Bucket, key: str) -> GraphQLError | None:
        if self.requested > bucket.capacity:
            return GraphQLError(
                f"This operation costs {self.requested} points, more than the "
                f"{bucket.capacity:g} one operation may cost. Ask for fewer items (a smaller "
                "`first`) or split it into several operations.",
                extensions={"code": "MAX_COST_EXCEEDED"},
            )
        self.level = bucket.take(key, self.requested)
        if self.level.granted:
            return None
        wait = max(1, math.ceil((self.requested - self.level.available) / bucket.restore_rate))
        response = self.execution_context.context.response
        if response is not None:
            response.headers["Retry-After"] = str(wait)
        return GraphQLError(
            f"Throttled: this operation costs {self.requested} points and "
            f"{int(self.level.available)} of {bucket.capacity:g} are available; the budget "
            f"refills at {bucket.restore_rate:g} points a second. Retry in {wait} s.",
            extensions={"code": "THROTTLED"},
        )

    def _bucket(self) -> tuple[Bucket, str]:
        context = self.execution_context.context
        return bucket_for(context.request.app), bucket_key(context.token)

    def get_results(self) -> dict[str, Any]:
        bucket, key = self._bucket()
        level = self.level or bucket.take(key, 0)
        return {
            "cost": {
                "requestedQueryCost": self.requested,
                "actualQueryCost": self.actual,
                "throttleStatus": {
                    "maximumAvailable": bucket.capacity,
                    "currentlyAvailable": int(level.available),
                    "restoreRate": bucket.restore_rate,
                },
            }
        }
