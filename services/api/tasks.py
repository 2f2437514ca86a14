"""The API's own periodic jobs."""

from __future__ import annotations

from services.core import idempotency
from services.core.celery_app import celery_app
from services.core.db import transaction, utcnow


@celery_app.task(name="api.purge_idempotency_keys")
def purge_idempotency_keys() -> int:
    """Forget idempotency keys past their retention (7 days; the promise is 24 hours)."""
    with transaction() as session:
        return idempotency.purge(session, utcnow())
