"""Idempotency keys for every mutation that creates or changes something (Stripe's rules).

- The same key with the same input replays the first result instead of acting again.
- The same key with different input (or for another operation) is IDEMPOTENCY_CONFLICT.
- Concurrent requests with one key have exactly one effect: `claim` inserts the key row
  with ON CONFLICT DO NOTHING, which waits for a concurrent claimer's transaction; if
  that one commits, the late request replays its result instead of acting.
- Keys are kept at least 24 hours (RETENTION); a periodic job deletes older ones.

Keys belong to a principal: a merchant's tenant (shared by all its API clients, as a
Stripe account's keys are) or, for the operator, its client. Results are known before
acting (the id of the delivery made or changed), so claiming is a single statement.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, select

from services.api.deliveries.errors import UserError, UserErrorCode, UserErrors
from services.core.db import utcnow
from services.core.models import IdempotencyRecord

RETENTION = timedelta(days=7)
MAX_KEY_LENGTH = 255


def fingerprint(operation: str, payload: Any) -> str:
    text = json.dumps([operation, payload], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def replay(
    session: Session, principal: str, key: str, operation: str, digest: str
) -> dict[str, Any] | None:
    """The result of an earlier request with this key, or None if the key is unused.

    Raises UserErrors when the key is malformed or was used with other input.
    """
    if not 1 <= len(key) <= MAX_KEY_LENGTH:
        raise UserErrors(
            [_error("Idempotency key must be 1 to 255 characters.", UserErrorCode.INVALID)]
        )
    earlier = session.get(IdempotencyRecord, (principal, key))
    return _same_request(earlier, operation, digest) if earlier else None


def claim(
    session: Session,
    principal: str,
    key: str,
    operation: str,
    digest: str,
    result: dict[str, Any],
) -> dict[str, Any] | None:
    """Take the key for this request, storing its result. Returns None when taken; when a
    concurrent request took it first, returns that request's result to replay instead."""
    dialect_insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    table = IdempotencyRecord.__table__  # type: ignore[attr-defined]
    statement = (
        dialect_insert(table)
        .values(
            principal=principal,
            key=key,
            operation=operation,
            fingerprint=digest,
            result=result,
            created_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=["principal", "key"])
        .returning(table.c.key)
    )
    if session.execute(statement).first() is not None:
        return None
    earlier = session.exec(
        select(IdempotencyRecord)
        .where(IdempotencyRecord.principal == principal, IdempotencyRecord.key == key)
        .execution_options(populate_existing=True)
    ).one()
    return _same_request(earlier, operation, digest)


def purge(session: Session, now: datetime) -> int:
    """Forget keys older than the retention period."""
    result = session.execute(
        delete(IdempotencyRecord).where(col(IdempotencyRecord.created_at) < now - RETENTION)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def _same_request(earlier: IdempotencyRecord, operation: str, digest: str) -> dict[str, Any]:
    if earlier.operation != operation or earlier.fingerprint != digest:
        raise UserErrors(
            [
                _error(
                    "This idempotency key was already used with different input.",
                    UserErrorCode.IDEMPOTENCY_CONFLICT,
                )
            ]
        )
    return earlier.result


def _error(message: str, code: UserErrorCode) -> UserError:
    return UserError(("idempotencyKey",), message, code)
