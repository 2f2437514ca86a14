"""Invoices from stored usage: quantities aggregated in SQL, priced by the pure engine."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import func
from sqlmodel import Session, col, select

from services.billing.plans import plan_on
from services.billing.pricing import Aggregation, Invoice, Period, Plan, price_invoice
from services.core.models import UsageEvent


def period_of(instant: datetime) -> Period:
    return Period(instant.year, instant.month)


def metered_quantities(
    session: Session, tenant_id: str, period: Period, plan: Plan
) -> dict[str, Decimal]:
    """Each of the plan's meters aggregated over the period, computed by the database."""
    rows = session.exec(
        select(  # type: ignore[call-overload]
            UsageEvent.meter,
            func.coalesce(func.sum(UsageEvent.quantity), 0),
            func.count(),
            func.coalesce(func.max(UsageEvent.quantity), 0),
            func.count(func.distinct(UsageEvent.key)),
        )
        .where(
            UsageEvent.tenant_id == tenant_id,
            col(UsageEvent.meter).in_([charge.meter for charge in plan.charges]),
            UsageEvent.at >= period.start,
            UsageEvent.at < period.end,
        )
        .group_by(UsageEvent.meter)
    ).all()
    by_meter = {row[0]: row[1:] for row in rows}
    quantities: dict[str, Decimal] = {}
    for charge in plan.charges:
        total, count, maximum, distinct = by_meter.get(charge.meter, (0, 0, 0, 0))
        value = {
            Aggregation.SUM: total,
            Aggregation.COUNT: count,
            Aggregation.MAX: maximum,
            Aggregation.UNIQUE_COUNT: distinct,
        }[charge.aggregation]
        quantities[charge.meter] = Decimal(value)
    return quantities


def preview(session: Session, tenant_id: str, now: datetime) -> tuple[Period, Invoice] | None:
    """The current period's invoice so far; None when the tenant has no plan."""
    period = period_of(now)
    plan = plan_on(session, tenant_id, now.date())
    if plan is None:
        return None
    return period, price_invoice(plan, metered_quantities(session, tenant_id, period, plan))
