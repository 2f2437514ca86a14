"""Sign-in throttling, per account and per address.

Each attempt is recorded. An account with ACCOUNT_LIMIT failures in the last WINDOW
(since its last success) is refused without its password being checked, as is an
address with ADDRESS_LIMIT failures: guessing one account's password, or many
accounts' from one place, is slowed to a crawl. Refusals say when to try again.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func
from sqlmodel import Session, col, delete, select

from services.core.models import LoginAttempt

WINDOW = timedelta(minutes=15)
ACCOUNT_LIMIT = 5
ADDRESS_LIMIT = 20
RETENTION = timedelta(days=1)


def retry_after(session: Session, email: str, address: str, now: datetime) -> timedelta | None:
    """How long until this account and address may try again; None when they may now."""
    since = now - WINDOW
    waits = []
    for column, value, limit in (
        (LoginAttempt.email, email, ACCOUNT_LIMIT),
        (LoginAttempt.address, address, ADDRESS_LIMIT),
    ):
        last_success = session.exec(
            select(func.max(LoginAttempt.at)).where(
                column == value, col(LoginAttempt.succeeded).is_(True), LoginAttempt.at >= since
            )
        ).one()
        start = max(since, last_success) if last_success is not None else since
        failures = session.exec(
            select(LoginAttempt.at)
            .where(column == value, col(LoginAttempt.succeeded).is_(False), LoginAttempt.at > start)
            .order_by(col(LoginAttempt.at).desc())
            .limit(limit)
        ).all()
        if len(failures) >= limit:
            waits.append(failures[-1] + WINDOW - now)
    return max(waits) if waits else None


def record(session: Session, email: str, address: str, now: datetime, succeeded: bool) -> None:
    session.add(LoginAttempt(email=email, address=address, at=now, succeeded=succeeded))


def prune(session: Session, now: datetime) -> None:
    """Forget attempts older than anything throttling looks at."""
    session.exec(delete(LoginAttempt).where(col(LoginAttempt.at) < now - RETENTION))
