"""Billing: usage by meter and day (chart), the current period's estimate, invoices with
their lines and a CSV download, and the route-cost share explained per route. Owners,
admins and viewers see it; developers do not (their role and their token say so)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, StreamingResponse

from services.accounts.roles import Capability
from services.api.billing_export import invoices_download
from services.api.web.client import Viewer, viewer
from services.api.web.layout import page
from services.billing.consolidation import tenant_route_shares
from services.billing.invoicing import PricedLine, invoices_of, lines_by_invoice, preview
from services.billing.metering import usage_by_day
from services.billing.plans import parsed_plan
from services.core.models import Invoice, Route, RouteAllocation
from services.core.money import Currency, currency_for, format_amount, format_quantity, from_minor

router = APIRouter()
READ = "billing:read"


def _require(me: Viewer) -> None:
    me.require(Capability.VIEW_BILLING, READ)


@router.get("/dashboard/billing", response_class=HTMLResponse)
def billing(
    request: Request, meter: str = "deliveries", me: Viewer = Depends(viewer)
) -> HTMLResponse:
    _require(me)
    db, tenant = me.db, me.tenant_id
    month_start = me.now.date().replace(day=1)
    next_month = (month_start + timedelta(days=32)).replace(day=1)
    usage = usage_by_day(db, tenant, _midnight(month_start), _midnight(next_month))
    days = [month_start + timedelta(days=n) for n in range((me.now.date() - month_start).days + 1)]
    by_day = {u.day: u.quantity for u in usage if u.meter == meter}
    chart = {
        "type": "bar",
        "labels": [day.strftime("%d") for day in days],
        "datasets": [
            {"label": meter.replace("_", " "), "data": [float(by_day.get(d, 0)) for d in days]}
        ],
    }
    invoices = invoices_of(db, tenant, limit=12)
    lines = lines_by_invoice(db, invoices)
    shares = tenant_route_shares(db, tenant, month_start - timedelta(days=31), next_month)
    return page(
        me,
        request,
        "billing.html",
        "Billing",
        chart=json.dumps(chart),
        meter=meter,
        meters=sorted({u.meter for u in usage} | {meter}),
        estimate=_estimate(me),
        invoices=[_invoice(invoice, lines[invoice.id]) for invoice in invoices],
        shares=[_share(route, share) for route, share in shares],
    )


def _lines(lines: list[PricedLine], currency: Currency) -> list[tuple[str, str, str, str]]:
    return [
        (line.meter, format_quantity(line.quantity), format_amount(line.amount, currency),
         line.kind.value)
        for line in lines
    ]  # fmt: skip


def _estimate(me: Viewer) -> dict[str, object] | None:
    """The current period priced as it stands (the same preview as `invoicePreview`)."""
    found = preview(me.db, me.tenant_id, me.now)
    if found is None:
        return None
    period, draft = found
    return {
        "period": str(period),
        "currency": draft.currency.code,
        "plan": draft.plan.code,
        "minimum": format_amount(parsed_plan(draft.plan).minimum, draft.currency),
        "lines": _lines(draft.lines, draft.currency),
        "subtotal": format_amount(draft.subtotal, draft.currency),
        "total": format_amount(draft.total, draft.currency),
    }


def _invoice(invoice: Invoice, lines: list[PricedLine]) -> dict[str, object]:
    currency = currency_for(invoice.currency)
    return {
        "row": invoice,
        "total": format_amount(from_minor(invoice.total_minor, currency), currency),
        "lines": _lines(lines, currency),
    }


METHODS = {
    "sole": "you were the only merchant on this van, so its whole cost is yours",
    "shapley": "split by Shapley values: each merchant pays its average added cost over "
    "every order the merchants could have joined the route in",
    "standalone": "split in proportion to what each merchant's stops would cost alone",
    "insertion": "a late booking: you pay what adding your stops added to the route",
}


def _share(route: Route, share: RouteAllocation) -> dict[str, object]:
    """A route share and why it is what it is: never who else rode the van."""
    currency = currency_for(share.currency)
    return {
        "route_id": route.id,
        "day": route.date,
        "stops": share.stops,
        "method": share.method,
        "why": METHODS.get(share.method, share.method),
        "amount": format_amount(from_minor(share.amount_minor, currency), currency),
        "route_cost": format_amount(from_minor(share.route_cost_minor, currency), currency),
        "percent": 100 * share.amount_minor / share.route_cost_minor
        if share.route_cost_minor
        else None,
        "currency": currency.code,
    }


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


@router.get("/dashboard/billing/invoices.csv")
def invoices_csv(me: Viewer = Depends(viewer)) -> StreamingResponse:
    _require(me)
    return invoices_download(me.db, me.tenant_id)
