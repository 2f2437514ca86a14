"""Overview: today's and this week's deliveries by status, on-time rate, failed attempts
by reason, and spend this period against the plan."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from services.accounts.roles import Capability
from services.api.web.client import Viewer, viewer
from services.api.web.layout import merchant_today, page
from services.billing.invoicing import preview
from services.billing.plans import parsed_plan
from services.core.db import utcnow
from services.core.models import DeliveryStatus
from services.core.money import format_amount
from services.deliveries import insights

router = APIRouter()

STATUS_ORDER = list(DeliveryStatus)


@router.get("/dashboard", response_class=HTMLResponse)
def overview(request: Request, me: Viewer = Depends(viewer)) -> HTMLResponse:
    db, tenant = me.db, me.tenant_id
    today = merchant_today(me)
    week_start = today - timedelta(days=today.weekday())
    week_end = week_start + timedelta(days=6)
    today_counts = insights.status_counts(db, tenant, today, today)
    week = insights.daily_counts(db, tenant, week_start, week_end)
    since = datetime.combine(today - timedelta(days=29), datetime.min.time(), UTC)
    on_time = insights.on_time(db, tenant, since)
    failures = insights.failures_by_reason(db, tenant, since)
    days = [week_start + timedelta(days=n) for n in range(7)]
    week_chart = {
        "type": "bar",
        "labels": [day.strftime("%a %d") for day in days],
        "datasets": [
            {"label": status.replace("_", " ").lower(), "status": status.value,
             "data": [week.get(day, {}).get(status, 0) for day in days]}
            for status in STATUS_ORDER
            if any(week.get(day, {}).get(status, 0) for day in days)
        ],
        "stacked": True,
    }  # fmt: skip
    spend = None
    if me.can(Capability.VIEW_BILLING) and me.has_scope("billing:read"):
        found = preview(db, tenant, utcnow())
        if found is not None:
            period, draft = found
            plan = parsed_plan(draft.plan)
            spend = {
                "period": str(period),
                "total": format_amount(draft.total, draft.currency),
                "subtotal": format_amount(draft.subtotal, draft.currency),
                "minimum": format_amount(plan.minimum, draft.currency),
                "currency": draft.currency.code,
                "plan": draft.plan.code,
                "share": float(draft.subtotal / plan.minimum) if plan.minimum else None,
                "lines": [
                    (line.meter, format_amount(line.amount, draft.currency))
                    for line in draft.lines
                    if line.amount
                ],
            }
    return page(
        me,
        request,
        "overview.html",
        "Overview",
        today=today,
        week_start=week_start,
        today_counts=[(s, today_counts.get(s, 0)) for s in STATUS_ORDER],
        today_total=sum(today_counts.values()),
        week_total=sum(sum(c.values()) for c in week.values()),
        week_chart=json.dumps(week_chart),
        on_time=on_time,
        failures=failures,
        failure_chart=json.dumps(
            {
                "type": "doughnut",
                "labels": list(failures),
                "datasets": [{"label": "failed attempts", "data": list(failures.values())}],
            }
        ),
        spend=spend,
    )
