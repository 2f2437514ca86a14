"""Idempotency keys for every mutation that creates or changes something (Stripe's rules).

Keys belong to a principal: a merchant's tenant (shared by all its API clients, as a
Stripe account's keys are) or, for the operator, its client.

- The same key with the same input replays the first result instead of acting again.
- The same key with different input (or for another operation) is IDEMPOTENCY_CONFLICT.
- Concurrent requests with one key have exactly one effect: the first inserts the key
  row inside its transaction; the others block on that row's unique index until it
  commits, then replay its result (or, if it rolled back, act themselves).
- Keys are kept at least 24 hours (RETENTION); a periodic job deletes older ones.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from services.api.deliveries.errors import UserError, UserErrorCode, UserErrors
from services.core.models import IdempotencyRecord

RETENTION = timedelta(days=7)
MAX_KEY_LENGTH = 255


def fingerprint(operation: str, payload: Any) -> str:
    text = json.dumps([operation, payload], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def begin(
    session: Session, principal: str, key: str, operation: str, digest: str
) -> dict[str, Any] | None:
    """Claim `key` for this request. Returns the earlier result to replay, or None to act.

    Raises UserErrors when the key is malformed or was used with other input.
    """
    if not 1 <= len(key) <= MAX_KEY_LENGTH:
        raise UserErrors(
            [_error("Idempotency key must be 1 to 255 characters.", UserErrorCode.INVALID)]
        )
    earlier = session.get(IdempotencyRecord, (principal, key))
    if earlier is None:
        try:
            with session.begin_nested():
                session.add(
                    IdempotencyRecord(
                        principal=principal, key=key, operation=operation, fingerprint=digest
                    )
                )
                session.flush()
            return None
        except IntegrityError:
            # Another request claimed the key and has committed: replay its result.
            earlier = session.exec(
                select(IdempotencyRecord)
                .where(IdempotencyRecord.principal == principal, IdempotencyRecord.key == key)
                .execution_options(populate_existing=True)
            ).one()
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


def finish(session: Session, principal: str, key: str, result: dict[str, Any]) -> None:
    """Store what the request produced, for replays."""
    record = session.get(IdempotencyRecord, (principal, key))
    assert record is not None, "finish() without begin()"
    record.result = result
    session.add(record)


def purge(session: Session, now: datetime) -> int:
    """Forget keys older than the retention period."""
    result = session.execute(
        delete(IdempotencyRecord).where(col(IdempotencyRecord.created_at) < now - RETENTION)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def _error(message: str, code: UserErrorCode) -> UserError:
    return UserError(("idempotencyKey",), message, code)
