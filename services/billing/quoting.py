"""What one more delivery would add to a merchant's invoice: the price a quote holds.

The marginal price under the merchant's plan this month, i.e. what the `deliveries`
and `parcel_kg` lines would grow by with this parcel (tiers and free units included;
the minimum commitment is left out, it is not a per-delivery price).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlmodel import Session

from services.billing.invoicing import period_of, preview
from services.billing.plans import parsed_plan, plans_for_period
from services.billing.pricing import price_line
from services.core.errors import UserErrorCode, UserErrors
from services.core.money import to_minor

PRICED_METERS = {"deliveries": Decimal(1), "parcel_kg": None}  # None: the parcel's weight


def marginal_price(
    session: Session, tenant_id: str, weight_grams: int, now: datetime
) -> tuple[int, str]:
    """What this parcel adds to the merchant's invoice this month, in minor units."""
    plan_row = plans_for_period(session, period_of(now), [tenant_id]).get(tenant_id)
    plan = parsed_plan(plan_row) if plan_row else None
    if plan is None or plan.charge_for("quoted_amount") is None:
        raise UserErrors.one(
            ("serviceArea",), "Your price plan does not offer quotes.", UserErrorCode.INVALID
        )
    current = preview(session, tenant_id, now)
    so_far = {line.meter: line.quantity for line in current[1].lines} if current else {}
    added = Decimal(0)
    for meter, step in PRICED_METERS.items():
        charge = plan.charge_for(meter)
        if charge is None:
            continue
        quantity = so_far.get(meter, Decimal(0))
        extra = step if step is not None else Decimal(weight_grams) / 1000
        before = price_line(charge, quantity, plan.currency).amount
        after = price_line(charge, quantity + extra, plan.currency).amount
        added += after - before
    return to_minor(added, plan.currency), plan.currency.code
