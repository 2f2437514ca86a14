"""Celery beat that may run on several machines at once, with exactly one active.

Every `lastmile scheduler` contends for the database lease `scheduler`
(`services.core.leader`): the holder ticks as Celery beat does, the others only keep
trying to take the lease. When the holder dies its lease expires (after
`LASTMILE_SCHEDULER_LEASE_SECONDS`) and a standby takes over; when it stops cleanly it
releases the lease and a standby takes over at once. Every periodic task is safe to
run twice, so a tick repeated across a takeover does no harm.
"""

from __future__ import annotations

from typing import Any

from celery.beat import PersistentScheduler

from services.core.db import get_engine
from services.core.leader import Leadership
from services.core.settings import get_settings

LEASE = "scheduler"


class LeaderScheduler(PersistentScheduler):
    """Celery's persistent scheduler, ticking only while this process holds the lease."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.leadership = Leadership(get_engine, LEASE, get_settings().scheduler_lease_seconds)
        super().__init__(*args, **kwargs)

    def tick(self, *args: Any, **kwargs: Any) -> float:
        if not self.leadership.is_leader():
            return self.leadership.renew_interval
        return min(super().tick(*args, **kwargs), self.leadership.renew_interval)

    def close(self) -> None:
        super().close()
        self.leadership.release()
