"""Idempotency keys for every mutation that creates or changes something (Stripe's rules).

- The same key with the same input replays the first result instead of acting again.
- The same key with different input (or for another operation) is IDEMPOTENCY_CONFLICT.
- Concurrent requests with one key have exactly one effect: `claim` inserts the key row
  with ON CONFLICT DO NOTHING, which waits for a concurrent claimer's transaction; if
  that one commits, the late request replays its result instead of acting.
- Keys are kept at least 24 hours (RETENTION); a periodic job deletes older ones.

Keys belong to a principal in one mode: a merchant's tenant (shared by all its API
clients, as a Stripe account's keys are) with its live or its sandbox credentials, two
separate key spaces; or, for the operator, its client (live). Results are known before
acting (the id of the delivery made or changed), so claiming is a single statement.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import Insert, Row, delete, select
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col

from services.core.db import driver_cursor, json_document, utcnow
from services.core.errors import UserError, UserErrorCode, UserErrors
from services.core.models import IdempotencyRecord

RETENTION = timedelta(days=7)
MAX_KEY_LENGTH = 255


def fingerprint(operation: str, payload: Any) -> str:
    text = json.dumps([operation, payload], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def replay(
    session: Session, principal: str, key: str, operation: str, digest: str, *, sandbox: bool
) -> dict[str, Any] | None:
    """The result of an earlier request with this key, or None if the key is unused.

    Raises UserErrors when the key is malformed or was used with other input.
    """
    check_key(key)
    earlier = records(session, principal, [key], sandbox=sandbox).get(key)
    return same_request(earlier, operation, digest) if earlier else None


def claim(
    session: Session,
    principal: str,
    key: str,
    operation: str,
    digest: str,
    result: dict[str, Any],
    *,
    sandbox: bool,
) -> dict[str, Any] | None:
    """Take the key for this request, storing its result. Returns None when taken; when a
    concurrent request took it first, returns that request's result to replay instead."""
    if claim_many(session, principal, operation, {key: (digest, result)}, sandbox=sandbox):
        return None
    earlier = records(session, principal, [key], sandbox=sandbox)[key]
    return same_request(earlier, operation, digest)


def check_key(key: str) -> None:
    """UserErrors when the key cannot be an idempotency key."""
    if not 1 <= len(key) <= MAX_KEY_LENGTH:
        raise UserErrors(
            [_error("Idempotency key must be 1 to 255 characters.", UserErrorCode.INVALID)]
        )


def claim_many(
    session: Session,
    principal: str,
    operation: str,
    claims: dict[str, tuple[str, dict[str, Any]]],
    *,
    sandbox: bool,
) -> set[str]:
    """Take many keys at once (key -> (input digest, result)); returns the keys taken.

    One statement whatever the count. A key not returned was taken earlier, or by a
    concurrent request whose transaction committed first (the insert waits for it).
    """
    if not claims:
        return set()
    now = utcnow()
    if session.get_bind().dialect.name == "postgresql":
        with driver_cursor(session) as cursor:
            cursor.execute(
                _CLAIM_POSTGRESQL,
                {
                    "principal": principal,
                    "sandbox": sandbox,
                    "operation": operation,
                    "now": now,
                    "claims": json_document(
                        [
                            {"key": key, "fingerprint": digest, "result": result}
                            for key, (digest, result) in claims.items()
                        ]
                    ),
                },
            )
            return {key for (key,) in cursor}
    rows = [
        {
            "principal": principal,
            "sandbox": sandbox,
            "key": key,
            "operation": operation,
            "fingerprint": digest,
            "result": result,
            "created_at": now,
        }
        for key, (digest, result) in claims.items()
    ]
    return set(session.connection().execute(_claim_statement(), rows).scalars())


# One constant statement for any number of keys, run on the driver (services.core.db).
# The claims travel as one JSON document: the driver quotes text arrays element by
# element, with a regular expression each (2% of a bulk booking).
_CLAIM_POSTGRESQL = """
INSERT INTO idempotency_record
    (principal, sandbox, key, operation, fingerprint, result, created_at)
SELECT %(principal)s, %(sandbox)s, claim.key, %(operation)s, claim.fingerprint, claim.result,
    %(now)s
FROM json_to_recordset(CAST(%(claims)s AS json)) AS claim(key text, fingerprint text, result json)
ON CONFLICT (principal, sandbox, key) DO NOTHING
RETURNING key
"""


@cache
def _claim_statement() -> Insert:
    """Elsewhere (SQLite): one constant statement, executed for many rows, built once."""
    table = IdempotencyRecord.__table__  # type: ignore[attr-defined]
    return (
        sqlite_insert(table)
        .on_conflict_do_nothing(index_elements=["principal", "sandbox", "key"])
        .returning(table.c.key)
    )


def records(
    session: Session, principal: str, keys: list[str], *, sandbox: bool
) -> dict[str, Row[Any]]:
    """The stored records of these keys (those that have one), by key, in one query."""
    if not keys:
        return {}
    table = IdempotencyRecord.__table__  # type: ignore[attr-defined]
    rows = session.connection().execute(
        select(table.c.key, table.c.operation, table.c.fingerprint, table.c.result).where(
            table.c.principal == principal,
            table.c.sandbox == sandbox,
            table.c.key.in_(keys),
        )
    )
    return {row.key: row for row in rows}


def purge(session: Session, now: datetime) -> int:
    """Forget keys older than the retention period."""
    result = session.execute(
        delete(IdempotencyRecord).where(col(IdempotencyRecord.created_at) < now - RETENTION)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def same_request(earlier: Row[Any], operation: str, digest: str) -> dict[str, Any]:
    """The earlier request's result to replay, or IDEMPOTENCY_CONFLICT if it differed."""
    if earlier.operation != operation or earlier.fingerprint != digest:
        raise conflict()
    return earlier.result


def conflict() -> UserErrors:
    """IDEMPOTENCY_CONFLICT: the key was used before with other input."""
    return UserErrors(
        [
            _error(
                "This idempotency key was already used with different input.",
                UserErrorCode.IDEMPOTENCY_CONFLICT,
            )
        ]
    )


def _error(message: str, code: UserErrorCode) -> UserError:
    return UserError(("idempotencyKey",), message, code)
