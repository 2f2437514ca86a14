"""Price plans and subscriptions stored in the database.

A plan version is immutable once stored; changing prices means a new version that
subscriptions move to from a date, so past invoices never change.
"""

from __future__ import annotations

import json
from datetime import date
from functools import lru_cache
from typing import Any

from sqlmodel import Session, col, select

from services.billing.pricing import Period, Plan, parse_plan
from services.core.models import PricePlan, Subscription

# The plan every merchant starts on (the contract's example plan).
DEFAULT_PLAN: dict[str, Any] = {
    "code": "growth",
    "currency": "USD",
    "minimum": "100.00",
    "charges": [
        {
            "meter": "deliveries",
            "model": "graduated",
            "tiers": [
                {"up_to": "1000", "unit_price": "2.50"},
                {"up_to": None, "unit_price": "2.00"},
            ],
        },
        {"meter": "failed_attempts", "model": "per_unit", "unit_price": "1.00", "free_units": "10"},
        # Cancelling is free until the delivery is on a van's route.
        {"meter": "late_cancellations", "model": "per_unit", "unit_price": "1.50"},
        {
            "meter": "parcel_kg",
            "model": "volume",
            "tiers": [
                {"up_to": "500", "unit_price": "0.10"},
                {"up_to": None, "unit_price": "0.08"},
            ],
        },
        {
            "meter": "api_requests",
            "model": "package",
            "package_size": "10000",
            "package_price": "5.00",
            "free_units": "100000",
        },
        {
            "meter": "active_recipients",
            "model": "per_unit",
            "aggregation": "unique_count",
            "unit_price": "0.01",
        },
        # Bookings made on a quote are billed exactly the quoted price.
        {"meter": "quoted_amount", "model": "per_unit", "unit_price": "1"},
    ],
}


def store_plan(session: Session, definition: dict[str, Any]) -> PricePlan:
    """Store a plan definition (validated by the pricing engine) as its code's next version,
    unless the latest version already has exactly this definition."""
    plan = parse_plan(definition)
    latest = session.exec(
        select(PricePlan).where(PricePlan.code == plan.code).order_by(col(PricePlan.version).desc())
    ).first()
    if latest is not None and latest.definition == definition:
        return latest
    row = PricePlan(
        code=plan.code,
        version=(latest.version + 1) if latest else 1,
        currency=plan.currency.code,
        definition=definition,
    )
    session.add(row)
    session.flush()
    return row


def subscribe(session: Session, tenant_id: str, plan: PricePlan, starts_on: date) -> Subscription:
    subscription = Subscription(tenant_id=tenant_id, plan_id=plan.id, starts_on=starts_on)
    session.add(subscription)
    session.flush()
    return subscription


def subscribe_new_merchant(session: Session, tenant_id: str, today: date) -> Subscription:
    """A new merchant's subscription: the default plan, from the first of this month."""
    return subscribe(session, tenant_id, store_plan(session, DEFAULT_PLAN), today.replace(day=1))


def plans_for_period(
    session: Session, period: Period, tenant_ids: list[str] | None = None
) -> dict[str, PricePlan]:
    """Each tenant's plan version for a period: the latest subscription started by its end."""
    statement = (
        select(Subscription, PricePlan)
        .join(PricePlan, col(PricePlan.id) == col(Subscription.plan_id))
        .where(col(Subscription.starts_on) < period.end.date())
        .order_by(col(Subscription.starts_on), col(Subscription.id))
    )
    if tenant_ids is not None:
        statement = statement.where(col(Subscription.tenant_id).in_(tenant_ids))
    chosen: dict[str, PricePlan] = {}
    for subscription, plan in session.exec(statement).all():
        chosen[subscription.tenant_id] = plan  # later rows win
    return chosen


@lru_cache(maxsize=256)
def _parsed(plan_id: str, definition: str) -> Plan:
    return parse_plan(json.loads(definition))


def parsed_plan(row: PricePlan) -> Plan:
    """The pricing engine's view of a stored plan version (parsed once per version)."""
    return _parsed(row.id, json.dumps(row.definition, sort_keys=True))
