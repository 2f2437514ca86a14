"""Rate limits on the endpoints that answer without a bearer token: the public tracking
page, per client address.

The `limits` library keeps moving windows in Redis when `LASTMILE_REDIS_URL` is set, so
every API process counts the same attempts; otherwise in this process's memory. As
with the GraphQL cost budget, an unreachable Redis lets requests through (with a
warning) rather than refusing every one.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

from limits import RateLimitItem, parse
from limits.errors import ConfigurationError
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter
from redis import RedisError

from services.core.settings import get_settings

logger = logging.getLogger(__name__)


class RateLimits:
    """The API's rate limits, each a `limits` rule such as "60/minute"."""

    def __init__(self, storage_uri: str, *, tracking: str = "60/minute") -> None:
        self._limiter = MovingWindowRateLimiter(storage_from_string(storage_uri))
        # Lookups of tracking links, per client address.
        self.tracking: RateLimitItem = parse(tracking)

    def hit(self, limit: RateLimitItem, *key: str) -> bool:
        """Count one request against `limit` for `key`; False when it is over the limit."""
        try:
            return self._limiter.hit(limit, *key)
        except RedisError:
            logger.warning("rate-limit storage unavailable; not limiting", exc_info=True)
            return True

    def retry_after(self, limit: RateLimitItem, *key: str) -> int:
        """Whole seconds until `key` may be counted against `limit` again (at least 1)."""
        try:
            reset = self._limiter.get_window_stats(limit, *key).reset_time
        except RedisError:
            return 1
        return max(1, math.ceil(reset - time.time()))


def new_rate_limits() -> RateLimits:
    settings = get_settings()
    try:
        return RateLimits(settings.redis_url or "memory://", tracking=settings.tracking_rate_limit)
    except (ValueError, ConfigurationError) as error:
        raise ValueError(f"Invalid rate limit setting: {error}") from error


def rate_limits_for(app: Any) -> RateLimits:
    """The app's rate limits, made on first use; tests may put their own in `app.state`."""
    limits: RateLimits | None = getattr(app.state, "rate_limits", None)
    if limits is None:
        limits = app.state.rate_limits = new_rate_limits()
    return limits


def client_address(request: Any) -> str:
    """The caller's address (behind a proxy, the forwarded one: `lastmile serve` trusts
    the proxy headers of the addresses in FORWARDED_ALLOW_IPS, as uvicorn does)."""
    return request.client.host if request.client else "unknown"
