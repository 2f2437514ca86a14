"""Leadership by lease: of several identical processes, exactly one does a job.

A lease is a row naming its holder until an expiry. The holder renews it well before
it expires; a process that finds it expired takes it, in the same single statement
that checks the expiry, so two contenders never both win. A holder that cannot renew
(the database unreachable, or another took over after it stalled) stops acting once
its last confirmed term runs out, which is before anyone else may take the lease, so
two holders never act at once while clocks agree to within `SKEW_SECONDS`. A holder
that dies simply stops renewing: the lease expires and a standby takes over. One that
stops cleanly releases it, so the takeover is immediate.

Used by the scheduler (`services.core.scheduler`): several `lastmile scheduler`
processes may run, one sends the periodic tasks.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import Table, case, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from services.core.models import Lease

logger = logging.getLogger(__name__)

SKEW_SECONDS = 2.0
"""How far the clocks of contenders may disagree; a holder stops acting this early."""


def holder_name() -> str:
    """Who this process is, for the lease row and the logs: host, pid and a nonce."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Leadership:
    """This process's claim on the lease `name`, held for `ttl` seconds at a time.

    `is_leader()` acquires or renews as needed and says whether this process may act
    now. The lease is renewed once a third of its term has passed, so a holder that
    calls it at least that often keeps it through two failed renewals.
    """

    def __init__(
        self,
        engine_factory: Callable[[], Engine],
        name: str,
        ttl: float,
        holder: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if ttl <= 2 * SKEW_SECONDS:
            raise ValueError(f"a lease must last more than {2 * SKEW_SECONDS:g} seconds")
        self.engine_factory = engine_factory
        self.name = name
        self.ttl = ttl
        self.holder = holder or holder_name()
        self.clock = clock
        self._valid_until = 0.0  # our clock: when our confirmed term runs out, less skew
        self._renewed_at = float("-inf")
        self._leading = False

    @property
    def renew_interval(self) -> float:
        return self.ttl / 3

    def is_leader(self) -> bool:
        now = self.clock()
        if now - self._renewed_at >= self.renew_interval or now >= self._valid_until:
            self._claim(now)
        leading = self.clock() < self._valid_until
        if leading != self._leading:
            self._leading = leading
            if leading:
                logger.info("Took the %s lease as %s.", self.name, self.holder)
            else:
                logger.warning("Lost the %s lease (%s); standing by.", self.name, self.holder)
        return leading

    def _claim(self, now: float) -> None:
        try:
            won = try_acquire(self.engine_factory(), self.name, self.holder, now, now + self.ttl)
        except Exception as error:  # database unreachable: keep what is confirmed
            logger.warning("Could not renew the %s lease: %s", self.name, error)
            return
        if won:
            self._renewed_at = now
            self._valid_until = now + self.ttl - SKEW_SECONDS
        else:
            self._valid_until = 0.0

    def release(self) -> None:
        """Give the lease up now (a clean shutdown), so a standby takes over at once."""
        if self._valid_until == 0.0:
            return
        self._valid_until = 0.0
        self._leading = False
        try:
            release(self.engine_factory(), self.name, self.holder)
        except Exception as error:
            logger.warning("Could not release the %s lease: %s", self.name, error)
        else:
            logger.info("Released the %s lease (%s).", self.name, self.holder)


def try_acquire(engine: Engine, name: str, holder: str, now: float, expires_at: float) -> bool:
    """Take or renew the lease, in one statement: it is ours if it was, if it has
    expired, or if nobody held it yet. Returns whether it is ours until `expires_at`."""
    table = Lease.__table__  # type: ignore[attr-defined]
    dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(table).values(
        name=name, holder=holder, acquired_at=now, expires_at=expires_at
    )
    excluded = statement.excluded
    statement = statement.on_conflict_do_update(
        index_elements=[table.c.name],
        set_={
            "holder": excluded.holder,
            "expires_at": excluded.expires_at,
            "acquired_at": _keep_if_same_holder(table, excluded),
        },
        where=(table.c.holder == excluded.holder) | (table.c.expires_at < now),
    ).returning(table.c.holder)
    with engine.begin() as connection:
        return connection.execute(statement).first() is not None


def _keep_if_same_holder(table: Table, excluded: Any) -> Any:
    return case(
        (table.c.holder == excluded.holder, table.c.acquired_at), else_=excluded.acquired_at
    )


def release(engine: Engine, name: str, holder: str) -> None:
    table = Lease.__table__  # type: ignore[attr-defined]
    with engine.begin() as connection:
        connection.execute(
            update(table)
            .where(table.c.name == name, table.c.holder == holder)
            .values(expires_at=0.0)
        )


def current(engine: Engine, name: str) -> Lease | None:
    """The lease row as stored (for `lastmile status` and tests)."""
    from sqlmodel import Session

    with Session(engine) as session:
        return session.get(Lease, name)
