"""Reconciliation: independent checks that the books are right. Findings are stored.

Checks:
- `delivery_usage`: every delivery has exactly the usage events its history calls for
  (services/billing/metering.py lists them), no more, no fewer;
- `invoice_amounts`: every finalized invoice recomputes from the raw events to the same
  lines and totals. The raw events are streamed and aggregated here in Python, not by
  the SQL that produced the invoice, then priced by the same pure engine;
- `invoice_missing` / `invoice_totals` / `invoice_numbering`: each closed tenant-period
  with usage has an invoice, totals are the sum of lines, numbers run 1..n per tenant;
- `route_allocation`: every allocated route's shares sum to its cost, every stop is paid
  for, each share has its `route_cost` usage event of the same amount, and no route's
  cost basis has waited unallocated longer than `STALE_COST_BASIS`;
- `usage_period`: no event is billed to a month before the one it happened in.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from services.billing.invoicing import (
    InvoiceError,
    Totals,
    Usage,
    compute_drafts,
    lines_by_invoice,
    same_figures,
)
from services.billing.pricing import parse_period
from services.core.db import utcnow
from services.core.meters import DELIVERY_METERS, expected_delivery_usage_ids, route_cost_usage_id
from services.core.models import (
    BillingAccount,
    Delivery,
    DeliveryEvent,
    DeliveryStatus,
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    Quote,
    ReconciliationFinding,
    ReconciliationRun,
    Route,
    RouteAllocation,
    RouteCostBasis,
    Stop,
    UsageEvent,
)
from services.core.money import currency_for, from_minor

STALE_COST_BASIS = timedelta(minutes=5)
"""A cost basis is allocated within seconds of its plan run, or by the minute's sweep;
one waiting longer means the allocation task is failing or not running."""


@dataclass(frozen=True)
class Finding:
    check: str
    subject: str
    message: str
    tenant_id: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "subject": self.subject,
            "tenant": self.tenant_id,
            "message": self.message,
        }


@dataclass
class Result:
    run_id: str
    period: str | None
    checked: dict[str, int] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "period": self.period,
            "ok": not self.findings,
            "checked": self.checked,
            "findings": [finding.as_json() for finding in self.findings],
        }


def reconcile(session: Session, period: str | None = None) -> Result:
    """Run every check (for one period, or everything) and store the findings."""
    if period is not None:
        parse_period(period)
    run = ReconciliationRun(period=period)
    session.add(run)
    session.flush()
    result = Result(run.id, period)
    result.findings += _delivery_usage(session, period, result.checked)
    periods = [period] if period else _invoiced_periods(session)
    for month in periods:
        result.findings += _invoices(session, month, result.checked)
    result.findings += _numbering(session, result.checked)
    result.findings += _allocations(session, period, result.checked)
    result.findings += _usage_periods(session, period)
    session.add_all(
        ReconciliationFinding(
            run_id=run.id,
            check=f.check,
            subject=f.subject,
            tenant_id=f.tenant_id,
            message=f.message,
        )
        for f in result.findings
    )
    run.findings = len(result.findings)
    run.finished_at = utcnow()
    session.add(run)
    session.flush()
    return result


def _delivery_usage(session: Session, period: str | None, checked: dict[str, int]) -> list[Finding]:
    """Each live delivery against the usage its history calls for (sandbox ones bill nothing).

    Whether it was planned comes from its history, not its stop: a cancelled or
    rescheduled delivery leaves its route but keeps the usage of having been on it.
    """
    deliveries = (
        select(Delivery.id, Delivery.tenant_id, Delivery.status, Quote.id)
        .outerjoin(Quote, col(Quote.delivery_id) == col(Delivery.id))
        .where(col(Delivery.sandbox).is_(False))
    )
    if period:
        month = parse_period(period)
        deliveries = deliveries.where(
            Delivery.created_at >= month.start, Delivery.created_at < month.end
        )
    rows = session.exec(deliveries).all()
    checked["deliveries"] = len(rows)
    if not rows:
        return []
    planned = set(
        session.exec(
            select(DeliveryEvent.delivery_id)
            .where(DeliveryEvent.status == DeliveryStatus.PLANNED)
            .distinct()
        ).all()
    )
    # Cancelled while planned: the event just before CANCELLED in its history is PLANNED.
    history = select(
        DeliveryEvent.delivery_id,
        DeliveryEvent.status,
        func.lag(DeliveryEvent.status)
        .over(
            partition_by=DeliveryEvent.delivery_id,
            order_by=(col(DeliveryEvent.at), col(DeliveryEvent.id)),
        )
        .label("before"),
    ).subquery()
    cancelled_late = set(
        session.exec(
            select(history.c.delivery_id).where(
                history.c.status == DeliveryStatus.CANCELLED,
                history.c.before == DeliveryStatus.PLANNED,
            )
        ).all()
    )
    failures = dict(
        session.exec(  # type: ignore[call-overload]
            select(DeliveryEvent.delivery_id, func.count())
            .where(DeliveryEvent.status == DeliveryStatus.FAILED)
            .group_by(DeliveryEvent.delivery_id)
        ).all()
    )
    recorded: defaultdict[str, set[str]] = defaultdict(set)
    usage = select(UsageEvent.id).where(col(UsageEvent.meter).in_(DELIVERY_METERS))
    for usage_id in session.exec(usage).all():
        recorded[usage_id.split(":", 1)[0]].add(usage_id)
    findings = []
    for delivery_id, tenant_id, raw_status, quote_id in rows:
        status = DeliveryStatus(raw_status)
        expected = expected_delivery_usage_ids(
            delivery_id,
            quoted=quote_id is not None,
            planned=delivery_id in planned,
            delivered=status is DeliveryStatus.DELIVERED,
            cancelled=status is DeliveryStatus.CANCELLED,
            cancelled_late=delivery_id in cancelled_late,
            failures=failures.get(delivery_id, 0),
        )
        actual = recorded.get(delivery_id, set())
        for missing in sorted(expected - actual):
            findings.append(
                Finding("delivery_usage", delivery_id, f"usage event {missing!r} is missing",
                        tenant_id)
            )  # fmt: skip
        for extra in sorted(actual - expected):
            findings.append(
                Finding("delivery_usage", delivery_id,
                        f"usage event {extra!r} does not match the delivery's history"
                        f" (status {status.value})", tenant_id)
            )  # fmt: skip
    return findings


def _invoiced_periods(session: Session) -> list[str]:
    return list(session.exec(select(Invoice.period).distinct().order_by(Invoice.period)).all())


def stream_billed(session: Session, period: str) -> Usage:
    """The raw events billed to `period`, aggregated here rather than in SQL."""
    raw: dict[tuple[str, str, str], list[Any]] = {}
    statement = (
        select(  # type: ignore[call-overload]
            UsageEvent.tenant_id, UsageEvent.period, UsageEvent.meter, UsageEvent.quantity,
            UsageEvent.key,
        )
        .where(UsageEvent.billed_period == period)
        .execution_options(yield_per=20_000)
    )  # fmt: skip
    for tenant, month, meter, quantity, key in session.connection().execute(statement):
        entry = raw.get((tenant, month, meter))
        if entry is None:
            entry = raw[(tenant, month, meter)] = [Decimal(0), 0, quantity, set()]
        entry[0] += quantity
        entry[1] += 1
        if quantity > entry[2]:
            entry[2] = quantity
        if key is not None:
            entry[3].add(key)
    return {
        k: Totals(total, count, maximum, len(keys))
        for k, (total, count, maximum, keys) in raw.items()
    }


def _invoices(session: Session, period: str, checked: dict[str, int]) -> list[Finding]:
    findings = []
    billed = stream_billed(session, period)
    try:
        drafts = compute_drafts(session, period, billed)
    except InvoiceError as error:
        return [Finding("invoice_amounts", period, str(error))]
    invoices = {
        invoice.tenant_id: invoice
        for invoice in session.exec(select(Invoice).where(Invoice.period == period)).all()
    }
    closed = {
        tenant
        for tenant, through in session.exec(
            select(BillingAccount.tenant_id, BillingAccount.closed_through)
        ).all()
        if through is not None and through >= period
    }
    checked["invoices"] = checked.get("invoices", 0) + len(invoices)
    lines = lines_by_invoice(
        session, [i for i in invoices.values() if i.status is InvoiceStatus.FINALIZED]
    )
    for tenant, draft in drafts.items():
        invoice = invoices.get(tenant)
        if invoice is None:
            if tenant in closed:
                findings.append(
                    Finding("invoice_missing", f"{tenant}/{period}",
                            f"{draft.event_count} usage events billed to closed period {period}"
                            " are on no invoice", tenant)
                )  # fmt: skip
            continue
        if invoice.status is not InvoiceStatus.FINALIZED:
            continue  # drafts are recomputed by every close run
        if not same_figures(invoice, lines[invoice.id], draft) or (
            invoice.event_count != draft.event_count
        ):
            currency = currency_for(invoice.currency)
            findings.append(
                Finding("invoice_amounts", invoice.id,
                        f"invoice {period} totals {from_minor(invoice.total_minor, currency)}"
                        f" over {invoice.event_count} events; the raw events give {draft.total}"
                        f" over {draft.event_count}", tenant)
            )  # fmt: skip
    sums = dict(
        session.exec(  # type: ignore[call-overload]
            select(InvoiceLine.invoice_id, func.sum(InvoiceLine.amount_minor))
            .join(Invoice, col(Invoice.id) == col(InvoiceLine.invoice_id))
            .where(Invoice.period == period)
            .group_by(InvoiceLine.invoice_id)
        ).all()
    )
    for tenant, invoice in invoices.items():
        if tenant not in drafts and invoice.status is InvoiceStatus.FINALIZED:
            findings.append(
                Finding("invoice_amounts", invoice.id,
                        f"invoice {period} has no usage events behind it", tenant)
            )  # fmt: skip
        lines_sum = int(sums.get(invoice.id, 0))
        if lines_sum != invoice.total_minor:
            findings.append(
                Finding("invoice_totals", invoice.id,
                        f"lines sum to {lines_sum} minor units, the total says"
                        f" {invoice.total_minor}", tenant)
            )  # fmt: skip
    return findings


def _numbering(session: Session, checked: dict[str, int]) -> list[Finding]:
    numbers: defaultdict[str, list[int]] = defaultdict(list)
    for tenant, number in session.exec(
        select(Invoice.tenant_id, Invoice.number).where(col(Invoice.number).is_not(None))
    ).all():
        if number is not None:
            numbers[tenant].append(number)
    last = dict(
        session.exec(select(BillingAccount.tenant_id, BillingAccount.last_invoice_number)).all()
    )
    findings = []
    for tenant in sorted(set(numbers) | {t for t, n in last.items() if n}):
        issued = sorted(numbers.get(tenant, []))
        expected = list(range(1, last.get(tenant, 0) + 1))
        if issued != expected:
            findings.append(
                Finding("invoice_numbering", tenant,
                        f"invoice numbers {issued} are not 1..{last.get(tenant, 0)}", tenant)
            )  # fmt: skip
    checked["tenants_numbered"] = len(numbers)
    return findings


def _allocations(session: Session, period: str | None, checked: dict[str, int]) -> list[Finding]:
    """Route shares against route costs, stops and `route_cost` usage events.

    Per route: the shares of all revisions sum to the highest cost a revision was made
    at; the last revision was made at the route's current cost (else it changed and
    was not re-allocated); every stop is paid for by a share; every share has its
    usage event of the same amount, and every `route_cost` event has its share.
    A route whose cost basis billing has not allocated yet is expected to lack its
    newest shares, so those two checks wait for it, unless it has waited longer than
    `STALE_COST_BASIS`: that is a finding of its own.
    """
    routes = select(Route.id, Route.cost_minor)
    stops = select(Stop.route_id, Stop.delivery_id, Stop.tenant_id).join(
        Route, col(Route.id) == col(Stop.route_id)
    )
    if period:
        month = parse_period(period)
        days = (Route.date >= month.start.date(), Route.date < month.end.date())
        routes, stops = routes.where(*days), stops.where(*days)
    costs: dict[str, int] = dict(session.exec(routes).all())  # type: ignore[arg-type]
    rows = session.exec(select(RouteAllocation)).all()
    expected: dict[str, tuple[str, str, Decimal]] = {}
    by_route: defaultdict[str, list[RouteAllocation]] = defaultdict(list)
    for row in rows:
        usage_id = route_cost_usage_id(row.route_id, row.tenant_id, row.revision)
        expected[usage_id] = (row.route_id, row.tenant_id,
                              from_minor(row.amount_minor, currency_for(row.currency)))  # fmt: skip
        if row.route_id in costs:
            by_route[row.route_id].append(row)
    events = select(  # type: ignore[call-overload]
        UsageEvent.id, UsageEvent.tenant_id, UsageEvent.quantity
    ).where(UsageEvent.meter == "route_cost")
    if period:
        events = events.where(UsageEvent.period == period)
    recorded: dict[str, Decimal] = {}
    findings = []
    for usage_id, tenant, quantity in session.exec(events).all():
        recorded[usage_id] = quantity
        if usage_id not in expected:
            findings.append(
                Finding("route_allocation", usage_id.split(":", 1)[0],
                        f"the route_cost usage event {usage_id!r} matches no share", tenant)
            )  # fmt: skip
    missing_ids = [i for i, (route, *_) in expected.items() if route in costs and i not in recorded]
    if missing_ids:  # billed to another month than the route's date, or really missing
        for start in range(0, len(missing_ids), 5000):
            chunk = missing_ids[start : start + 5000]
            by_id = select(UsageEvent.id, UsageEvent.quantity)  # type: ignore[call-overload]
            recorded.update(session.exec(by_id.where(col(UsageEvent.id).in_(chunk))).all())
    for usage_id, (route_id, tenant, amount) in sorted(expected.items()):
        if route_id in costs and recorded.get(usage_id) != amount:
            findings.append(
                Finding("route_allocation", route_id,
                        f"the route_cost usage event {usage_id!r} is {recorded.get(usage_id)},"
                        f" the share {amount}", tenant)
            )  # fmt: skip
    covered: defaultdict[str, set[str]] = defaultdict(set)
    pending = select(RouteCostBasis).where(col(RouteCostBasis.allocated_at).is_(None))
    waiting = set()
    for basis in session.exec(pending.order_by(col(RouteCostBasis.route_id))).all():
        if basis.route_id not in costs:
            continue
        waiting.add(basis.route_id)
        for own in basis.deliveries.values():
            covered[basis.route_id].update(own)
        if basis.created_at < utcnow() - STALE_COST_BASIS:
            findings.append(
                Finding("route_allocation", basis.route_id,
                        f"the cost basis of revision {basis.revision} has waited unallocated"
                        f" since {basis.created_at.isoformat()}")
            )  # fmt: skip
    for route_id, allocations in sorted(by_route.items()):
        total = sum(a.amount_minor for a in allocations)
        target = max(a.route_cost_minor for a in allocations)
        last = max(allocations, key=lambda a: a.revision)
        if total != target:
            findings.append(
                Finding("route_allocation", route_id,
                        f"shares sum to {total} minor units, the route cost {target} when"
                        " allocated")
            )  # fmt: skip
        if last.route_cost_minor != costs[route_id] and route_id not in waiting:
            findings.append(
                Finding("route_allocation", route_id,
                        f"the route costs {costs[route_id]} minor units, but was last allocated"
                        f" at {last.route_cost_minor} (revision {last.revision})")
            )  # fmt: skip
        for allocation in allocations:
            covered[route_id].update(allocation.deliveries)
    for route_id, delivery_id, tenant in session.exec(stops).all():
        if delivery_id not in covered[route_id]:
            findings.append(
                Finding("route_allocation", route_id,
                        f"the stop of delivery {delivery_id} is paid for by no share", tenant)
            )  # fmt: skip
    checked["routes"] = len(by_route)
    return findings


def _usage_periods(session: Session, period: str | None) -> list[Finding]:
    statement = select(UsageEvent.id, UsageEvent.tenant_id, UsageEvent.billed_period).where(
        col(UsageEvent.billed_period) < col(UsageEvent.period)
    )
    if period:
        statement = statement.where(UsageEvent.billed_period == period)
    return [
        Finding("usage_period", usage_id, f"billed to {billed}, before it happened", tenant)
        for usage_id, tenant, billed in session.exec(statement).all()
    ]
