"""Celery tasks of billing: allocating route shares, closing periods and reconciling, all
safe to run twice (or at once)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from services.billing import consolidation, invoicing, reconciliation
from services.core import logs, metrics
from services.core.celery_app import celery_app
from services.core.db import transaction, utcnow
from services.core.usage import period_of

logger = logs.get_logger(__name__)

GRACE = timedelta(days=3)
"""How long a closed month's invoices stay drafts, so late usage still lands on them."""


def due_period(now: datetime) -> tuple[str, bool]:
    """The month to close at `now` (the previous one), and whether its grace is over."""
    first_of_month = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    previous = period_of(first_of_month - timedelta(days=1))
    return previous, now >= first_of_month + GRACE


@celery_app.task(name="billing.close_due_period")
def close_due_period() -> dict[str, Any]:
    """Draft last month's invoices during the grace days, finalize them after."""
    period, finalize = due_period(utcnow())
    try:
        with transaction() as session:
            closed = invoicing.close_period(session, period, finalize).as_json()
    except Exception:
        metrics.PERIOD_CLOSES.labels("failed").inc()
        raise
    metrics.PERIOD_CLOSES.labels("finalized" if finalize else "drafted").inc()
    logger.info("period closed", period=period, finalize=finalize)
    return closed


@celery_app.task(name="billing.reconcile")
def reconcile(period: str | None = None) -> dict[str, Any]:
    with transaction() as session:
        result = reconciliation.reconcile(session, period).as_json()
    findings = len(result.get("findings", []))
    metrics.RECONCILIATIONS.labels("findings" if findings else "clean").inc()
    metrics.RECONCILIATION_FINDINGS.set(findings)
    logger.info("reconciled", period=period, findings=findings)
    return result


@celery_app.task(name="billing.allocate_route_shares")
def allocate_route_shares() -> int:
    """Split the cost of every route revision the planner wrote a cost basis for and
    billing has not allocated yet; return how many shares were written.

    A plan run sends this by name once its routes commit, and beat sweeps every minute,
    so a lost kick or a failed run is made good within a minute.
    """
    with transaction() as session:
        return len(consolidation.allocate_route_shares(session))
