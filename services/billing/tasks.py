"""Celery tasks of billing: allocating route shares, closing periods and reconciling, all
safe to run twice (or at once)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from services.billing import consolidation, invoicing, reconciliation
from services.core.celery_app import celery_app
from services.core.db import transaction, utcnow
from services.core.usage import period_of

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
    with transaction() as session:
        return invoicing.close_period(session, period, finalize).as_json()


@celery_app.task(name="billing.reconcile")
def reconcile(period: str | None = None) -> dict[str, Any]:
    with transaction() as session:
        return reconciliation.reconcile(session, period).as_json()


@celery_app.task(name="billing.allocate_route_shares")
def allocate_route_shares() -> int:
    """Split the cost of every route revision the planner wrote a cost basis for and
    billing has not allocated yet; return how many shares were written.

    A plan run sends this by name once its routes commit, and beat sweeps every minute,
    so a lost kick or a failed run is made good within a minute.
    """
    with transaction() as session:
        return len(consolidation.allocate_route_shares(session))
