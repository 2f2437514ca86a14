"""Invoices from stored usage: quantities aggregated in SQL, priced by the pure engine.

Lifecycle: `draft` (recomputed on every close run, so late usage still lands on it)
→ `finalized` (numbered 1, 2, 3… per tenant without gaps, immutable) → `void`.
Corrections of a finalized invoice are credit notes. Closing a period is idempotent:
a draft is rewritten only if its figures changed, a finalized invoice is never touched.

What an invoice of period P bills (`usage_event.billed_period = P`):
- charge lines: every charge of the tenant's plan for P, priced from the events of
  P itself, then the minimum-commitment top-up (the rules of `billing rate`);
- adjustment lines: events of an earlier period Q that arrived after Q's invoice was
  finalized. Q is re-priced with Q's plan with and without them; each line's
  difference (which may be negative: volume tiers are not monotone) is billed now.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import delete, func, insert, or_, update
from sqlmodel import Session, col, select

from services.billing.plans import parsed_plan, plans_for_period
from services.billing.pricing import (
    MINIMUM_COMMITMENT,
    Period,
    Plan,
    parse_period,
    price_invoice,
)
from services.billing.pricing import (
    Invoice as PricedInvoice,
)
from services.core.db import utcnow
from services.core.meters import Aggregation
from services.core.models import (
    BillingAccount,
    CreditNote,
    Invoice,
    InvoiceLine,
    InvoiceLineKind,
    InvoiceStatus,
    PricePlan,
    UsageEvent,
)
from services.core.money import (
    Currency,
    currency_for,
    format_amount,
    format_quantity,
    from_minor,
    to_minor,
)
from services.core.usage import period_of as _period_text

_ZERO = Decimal(0)


class InvoiceError(ValueError):
    """An invoice operation that the lifecycle forbids; the message says which and why."""


def period_of(instant: datetime) -> Period:
    return parse_period(_period_text(instant))


@dataclass
class Totals:
    """One meter's raw aggregates; the plan's charge picks the one it bills."""

    total: Decimal = _ZERO
    count: int = 0
    maximum: Decimal = _ZERO
    distinct: int = 0

    def quantity(self, aggregation: Aggregation) -> Decimal:
        return {
            Aggregation.SUM: self.total,
            Aggregation.COUNT: Decimal(self.count),
            Aggregation.MAX: self.maximum,
            Aggregation.UNIQUE_COUNT: Decimal(self.distinct),
        }[aggregation]


# (tenant_id, period of the events, meter) -> aggregates
Usage = dict[tuple[str, str, str], Totals]


@dataclass(frozen=True)
class PricedLine:
    kind: InvoiceLineKind
    meter: str
    quantity: Decimal
    amount: Decimal
    adjusts_period: str | None = None


@dataclass
class InvoiceDraft:
    """An invoice as computed from usage, before (or instead of) being stored."""

    tenant_id: str
    period: str
    plan: PricePlan
    currency: Currency
    lines: list[PricedLine] = field(default_factory=list)
    event_count: int = 0

    @property
    def subtotal(self) -> Decimal:
        return sum(
            (line.amount for line in self.lines if line.kind is not InvoiceLineKind.MINIMUM), _ZERO
        )

    @property
    def total(self) -> Decimal:
        return sum((line.amount for line in self.lines), _ZERO)

    def as_json(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant_id,
            "period": self.period,
            "currency": self.currency.code,
            "lines": [
                {
                    "kind": line.kind.value,
                    "meter": line.meter,
                    "quantity": format_quantity(line.quantity),
                    "amount": format_amount(line.amount, self.currency),
                    "adjusts_period": line.adjusts_period,
                }
                for line in self.lines
            ],
            "subtotal": format_amount(self.subtotal, self.currency),
            "total": format_amount(self.total, self.currency),
        }


# --- aggregation in SQL --------------------------------------------------------------


def aggregate_billed(session: Session, period: str, tenant_ids: list[str] | None = None) -> Usage:
    """Aggregates of every event billed to `period`, by tenant, event month and meter.

    Two hash aggregates: sums, counts and maxima over all events, distinct keys over
    keyed events only (a COUNT(DISTINCT) beside them would sort every event).
    """
    where = [col(UsageEvent.billed_period) == period]
    if tenant_ids is not None:
        where.append(col(UsageEvent.tenant_id).in_(tenant_ids))
    group = (col(UsageEvent.tenant_id), col(UsageEvent.period), col(UsageEvent.meter))
    totals = (
        select(*group, func.sum(UsageEvent.quantity), func.count(), func.max(UsageEvent.quantity))  # type: ignore[call-overload]
        .where(*where)
        .group_by(*group)
    )
    usage = {
        (tenant, month, meter): Totals(Decimal(total), count, Decimal(maximum))
        for tenant, month, meter, total, count, maximum in session.exec(totals).all()
    }
    keyed = (
        select(*group, col(UsageEvent.key))
        .where(*where, col(UsageEvent.key).is_not(None))
        .distinct()
        .subquery()
    )
    distinct = select(keyed.c.tenant_id, keyed.c.period, keyed.c.meter, func.count()).group_by(
        keyed.c.tenant_id, keyed.c.period, keyed.c.meter
    )
    for tenant, month, meter, count in session.exec(distinct).all():  # type: ignore[call-overload]
        usage[(tenant, month, meter)].distinct = count
    return usage


def aggregate_earlier(
    session: Session, period: str, late: Iterable[tuple[str, str]]
) -> tuple[Usage, Usage]:
    """For (tenant, earlier month) pairs with late events billed to `period`: the
    aggregates of that month as billed before `period`, and including `period`."""
    pairs = sorted(set(late))
    before: Usage = {}
    through: Usage = {}
    if not pairs:
        return before, through
    earlier = col(UsageEvent.billed_period) < period
    statement = (
        select(  # type: ignore[call-overload]
            UsageEvent.tenant_id,
            UsageEvent.period,
            UsageEvent.meter,
            func.coalesce(func.sum(UsageEvent.quantity).filter(earlier), 0),
            func.count().filter(earlier),
            func.coalesce(func.max(UsageEvent.quantity).filter(earlier), 0),
            func.count(func.distinct(UsageEvent.key)).filter(earlier),
            func.sum(UsageEvent.quantity),
            func.count(),
            func.max(UsageEvent.quantity),
            func.count(func.distinct(UsageEvent.key)),
        )
        .where(
            or_(*(
                (col(UsageEvent.tenant_id) == tenant) & (col(UsageEvent.period) == month)
                for tenant, month in pairs
            )),
            col(UsageEvent.billed_period) <= period,
        )
        .group_by(UsageEvent.tenant_id, UsageEvent.period, UsageEvent.meter)
    )  # fmt: skip
    for row in session.exec(statement).all():
        key = (row[0], row[1], row[2])
        if row[4]:
            before[key] = Totals(Decimal(row[3]), row[4], Decimal(row[5]), row[6])
        through[key] = Totals(Decimal(row[7]), row[8], Decimal(row[9]), row[10])
    return before, through


# --- pricing -------------------------------------------------------------------------


def quantities(plan: Plan, usage: Mapping[str, Totals]) -> dict[str, Decimal]:
    """The plan's meters' quantities; meters the plan does not charge are not billed."""
    return {
        charge.meter: usage[charge.meter].quantity(charge.aggregation)
        for charge in plan.charges
        if charge.meter in usage
    }


def charge_lines(plan: Plan, usage: Mapping[str, Totals]) -> list[PricedLine]:
    return _lines(price_invoice(plan, quantities(plan, usage)), InvoiceLineKind.CHARGE, None)


def adjustment_lines(
    plan: Plan, month: str, before: Mapping[str, Totals], through: Mapping[str, Totals]
) -> list[PricedLine]:
    """What the late events of `month` add: re-price it with and without them."""
    old = _lines(price_invoice(plan, quantities(plan, before)), InvoiceLineKind.ADJUSTMENT, month)
    new = _lines(price_invoice(plan, quantities(plan, through)), InvoiceLineKind.ADJUSTMENT, month)
    if not any(totals.count for totals in before.values()):
        old = []  # the month had no invoice at all: nothing was billed for it
    old_by_meter = {line.meter: line for line in old}
    result = []
    for line in new:
        previous = old_by_meter.pop(line.meter, None)
        quantity = line.quantity - (previous.quantity if previous else _ZERO)
        amount = line.amount - (previous.amount if previous else _ZERO)
        if quantity or amount:
            result.append(PricedLine(line.kind, line.meter, quantity, amount, month))
    for gone in old_by_meter.values():  # e.g. a minimum top-up that late usage removed
        result.append(PricedLine(gone.kind, gone.meter, -gone.quantity, -gone.amount, month))
    return result


def _lines(invoice: PricedInvoice, kind: InvoiceLineKind, month: str | None) -> list[PricedLine]:
    return [
        PricedLine(
            InvoiceLineKind.MINIMUM
            if line.meter == MINIMUM_COMMITMENT and kind is InvoiceLineKind.CHARGE
            else kind,
            line.meter,
            line.quantity,
            line.amount,
            month,
        )
        for line in invoice.lines
    ]


def compute_drafts(
    session: Session,
    period: str,
    billed: Usage,
    tenant_ids: list[str] | None = None,
    before: Usage | None = None,
    through: Usage | None = None,
) -> dict[str, InvoiceDraft]:
    """Every invoice of `period` from aggregates (SQL ones, or reconciliation's own)."""
    by_tenant: defaultdict[str, defaultdict[str, dict[str, Totals]]] = defaultdict(
        lambda: defaultdict(dict)
    )
    for (tenant, month, meter), totals in billed.items():
        by_tenant[tenant][month][meter] = totals
    late = [(t, m) for t, months in by_tenant.items() for m in months if m < period]
    if before is None or through is None:
        before, through = aggregate_earlier(session, period, late)
    plans = plans_for_period(session, parse_period(period), tenant_ids or sorted(by_tenant))
    earlier_plans = _plans_of_months(session, late)
    drafts = {}
    for tenant in sorted(by_tenant):
        plan_row = plans.get(tenant)
        if plan_row is None:
            raise InvoiceError(f"tenant {tenant!r} has usage in {period} but no price plan")
        plan = parsed_plan(plan_row)
        draft = InvoiceDraft(tenant, period, plan_row, plan.currency)
        months = by_tenant[tenant]
        if period in months:
            draft.lines += charge_lines(plan, months[period])
        for month in sorted(m for m in months if m < period):
            month_plan = parsed_plan(earlier_plans.get((tenant, month)) or plan_row)
            if month_plan.currency != plan.currency:
                raise InvoiceError(
                    f"tenant {tenant!r}: late usage of {month} is priced in"
                    f" {month_plan.currency.code}, the {period} invoice in {plan.currency.code}"
                )
            draft.lines += adjustment_lines(
                month_plan, month, _of(before, tenant, month), _of(through, tenant, month)
            )
        draft.event_count = sum(t.count for m in months.values() for t in m.values())
        drafts[tenant] = draft
    return drafts


def _of(usage: Usage, tenant: str, month: str) -> dict[str, Totals]:
    return {meter: t for (tt, mm, meter), t in usage.items() if tt == tenant and mm == month}


def _plans_of_months(
    session: Session, pairs: list[tuple[str, str]]
) -> dict[tuple[str, str], PricePlan]:
    """The plan each earlier month was invoiced with, else the one in effect then."""
    found: dict[tuple[str, str], PricePlan] = {}
    for tenant, month in pairs:
        row = session.exec(
            select(PricePlan)
            .join(Invoice, col(Invoice.plan_id) == col(PricePlan.id))
            .where(Invoice.tenant_id == tenant, Invoice.period == month)
        ).first()
        if row is None:
            row = plans_for_period(session, parse_period(month), [tenant]).get(tenant)
        if row is not None:
            found[(tenant, month)] = row
    return found


# --- the lifecycle ---------------------------------------------------------------------


@dataclass
class CloseReport:
    period: str
    drafted: int = 0
    updated: int = 0
    unchanged: int = 0
    finalized: int = 0
    skipped: list[str] = field(default_factory=list)  # why a tenant was not finalized

    def as_json(self) -> dict[str, Any]:
        return {
            "period": self.period,
            "drafted": self.drafted,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "finalized": self.finalized,
            "skipped": self.skipped,
        }


def close_period(
    session: Session, period: str, finalize: bool, now: datetime | None = None
) -> CloseReport:
    """Draft (and, when `finalize`, finalize) every invoice of `period`. Safe to rerun.

    Finalizing first closes the tenants' accounts through `period` (rows locked in
    tenant order, as recording locks them), then aggregates. Usage being recorded
    concurrently either committed before (and is counted) or waits and then sees the
    period closed (and is billed to the next one). Only tenants whose account this run
    closed are finalized: one opened meanwhile is left for the next run.
    """
    parse_period(period)
    now = now or utcnow()
    report = CloseReport(period)
    earlier_drafts = set(
        session.exec(
            select(Invoice.tenant_id).where(
                Invoice.period < period, Invoice.status == InvoiceStatus.DRAFT
            )
        ).all()
    )
    closed = _close_accounts(session, period, earlier_drafts) if finalize else set()
    drafts = compute_drafts(session, period, aggregate_billed(session, period))
    existing = {
        invoice.tenant_id: invoice
        for invoice in session.exec(select(Invoice).where(Invoice.period == period)).all()
    }
    stored = lines_by_invoice(
        session, [i for i in existing.values() if i.status is InvoiceStatus.DRAFT]
    )
    new_invoices: list[Invoice] = []
    rewritten: list[Invoice] = []
    for tenant, draft in drafts.items():
        invoice = existing.get(tenant)
        if invoice is not None and invoice.status is not InvoiceStatus.DRAFT:
            continue  # finalized or void: never rewritten
        if invoice is None:
            invoice = existing[tenant] = _new_invoice(draft, now)
            new_invoices.append(invoice)
            report.drafted += 1
        elif invoice.event_count == draft.event_count and same_figures(
            invoice, stored.get(invoice.id, []), draft
        ):
            report.unchanged += 1
        else:
            _refigure(invoice, draft, now)
            rewritten.append(invoice)
            report.updated += 1
    if rewritten:  # before finalizing them: lines of a finalized invoice never change
        session.execute(
            delete(InvoiceLine).where(col(InvoiceLine.invoice_id).in_([i.id for i in rewritten]))
        )
    if finalize:
        due = []
        for tenant in sorted(existing):
            if existing[tenant].status is not InvoiceStatus.DRAFT:
                continue
            if tenant in earlier_drafts:
                report.skipped.append(f"{tenant}: an earlier period is still a draft")
            elif tenant not in closed:
                report.skipped.append(f"{tenant}: its billing account opened during this run")
            else:
                due.append(existing[tenant])
        _number(session, due, now)
        report.finalized = len(due)
    session.add_all(new_invoices)
    session.flush()
    lines = [row for i in new_invoices + rewritten for row in _line_rows(i.id, drafts[i.tenant_id])]
    if lines:
        session.execute(insert(InvoiceLine), lines)
    session.flush()
    return report


def _close_accounts(session: Session, period: str, earlier_drafts: set[str]) -> set[str]:
    """Mark `period` closed on every account still open, except tenants with an earlier
    draft, locking the rows in tenant order; returns the tenants closed through it."""
    table = BillingAccount.__table__  # type: ignore[attr-defined]
    still_open = (
        select(table.c.tenant_id)
        .where(or_(table.c.closed_through.is_(None), table.c.closed_through < period))
        .order_by(table.c.tenant_id)
        .with_for_update()
    )
    if earlier_drafts:
        still_open = still_open.where(table.c.tenant_id.not_in(earlier_drafts))
    advanced = session.execute(
        update(table)
        .where(table.c.tenant_id.in_(still_open.scalar_subquery()))
        .values(closed_through=period)
        .returning(table.c.tenant_id)
    ).scalars()
    return set(advanced)


def _number(session: Session, invoices: list[Invoice], now: datetime) -> None:
    """Finalize with each tenant's next number, from one UPDATE of the (locked) accounts."""
    if not invoices:
        return
    table = BillingAccount.__table__  # type: ignore[attr-defined]
    numbers = dict(
        session.execute(
            update(table)
            .where(table.c.tenant_id.in_([invoice.tenant_id for invoice in invoices]))
            .values(last_invoice_number=table.c.last_invoice_number + 1)
            .returning(table.c.tenant_id, table.c.last_invoice_number)
        ).all()
    )
    for invoice in invoices:
        invoice.number = numbers[invoice.tenant_id]
        invoice.status = InvoiceStatus.FINALIZED
        invoice.finalized_at = now
        invoice.updated_at = now
    session.add_all(invoices)


def _new_invoice(draft: InvoiceDraft, now: datetime) -> Invoice:
    return Invoice(
        tenant_id=draft.tenant_id,
        period=draft.period,
        plan_id=draft.plan.id,
        currency=draft.currency.code,
        subtotal_minor=to_minor(draft.subtotal, draft.currency),
        total_minor=to_minor(draft.total, draft.currency),
        event_count=draft.event_count,
        created_at=now,
        updated_at=now,
    )


def _line_rows(invoice_id: str, draft: InvoiceDraft) -> list[dict[str, Any]]:
    return [
        {
            "id": f"{invoice_id}:{position}",
            "invoice_id": invoice_id,
            "position": position,
            "kind": line.kind,
            "meter": line.meter,
            "quantity": line.quantity,
            "amount_minor": to_minor(line.amount, draft.currency),
            "adjusts_period": line.adjusts_period,
        }
        for position, line in enumerate(draft.lines, start=1)
    ]


def invoices_of(
    session: Session, tenant_id: str, before_period: str | None = None, limit: int | None = None
) -> list[Invoice]:
    """A tenant's invoices, newest period first; only periods before `before_period`
    when given (a page's cursor), at most `limit` of them."""
    statement = select(Invoice).where(Invoice.tenant_id == tenant_id)
    if before_period is not None:
        statement = statement.where(col(Invoice.period) < before_period)
    statement = statement.order_by(col(Invoice.period).desc())
    if limit is not None:
        statement = statement.limit(limit)
    return list(session.exec(statement).all())


def stored_lines(session: Session, invoice: Invoice) -> list[PricedLine]:
    return lines_by_invoice(session, [invoice])[invoice.id]


def lines_by_invoice(session: Session, invoices: list[Invoice]) -> dict[str, list[PricedLine]]:
    """The stored lines of many invoices, in position order, read in one query."""
    currencies = {invoice.id: currency_for(invoice.currency) for invoice in invoices}
    found: dict[str, list[PricedLine]] = {invoice_id: [] for invoice_id in currencies}
    if not currencies:
        return found
    statement = (
        select(  # type: ignore[call-overload]
            InvoiceLine.invoice_id, InvoiceLine.kind, InvoiceLine.meter, InvoiceLine.quantity,
            InvoiceLine.amount_minor, InvoiceLine.adjusts_period,
        )
        .where(col(InvoiceLine.invoice_id).in_(currencies))
        .order_by(col(InvoiceLine.invoice_id), col(InvoiceLine.position))
    )  # fmt: skip
    for invoice_id, kind, meter, quantity, amount, adjusts in session.exec(statement):
        amount = from_minor(amount, currencies[invoice_id])
        found[invoice_id].append(PricedLine(kind, meter, quantity, amount, adjusts))
    return found


def same_figures(invoice: Invoice, lines: list[PricedLine], draft: InvoiceDraft) -> bool:
    return (
        invoice.plan_id == draft.plan.id
        and invoice.total_minor == to_minor(draft.total, draft.currency)
        and invoice.subtotal_minor == to_minor(draft.subtotal, draft.currency)
        and lines == draft.lines
    )


def _refigure(invoice: Invoice, draft: InvoiceDraft, now: datetime) -> None:
    invoice.plan_id = draft.plan.id
    invoice.currency = draft.currency.code
    invoice.subtotal_minor = to_minor(draft.subtotal, draft.currency)
    invoice.total_minor = to_minor(draft.total, draft.currency)
    invoice.event_count = draft.event_count
    invoice.updated_at = now


def _locked_account(session: Session, tenant_id: str) -> BillingAccount:
    return session.exec(
        select(BillingAccount).where(BillingAccount.tenant_id == tenant_id).with_for_update()
    ).one()


def void_invoice(
    session: Session, invoice_id: str, reason: str, now: datetime | None = None
) -> Invoice:
    """Void a finalized invoice issued in error. Its number stays used (no gap, no reuse)."""
    invoice = session.exec(
        select(Invoice).where(Invoice.id == invoice_id).with_for_update()
    ).first()
    if invoice is None:
        raise InvoiceError(f"no invoice {invoice_id!r}")
    if invoice.status is not InvoiceStatus.FINALIZED:
        raise InvoiceError(
            f"invoice {invoice_id!r} is {invoice.status.value};"
            " only finalized invoices can be voided"
        )
    if not reason.strip():
        raise InvoiceError("a void needs a reason")
    invoice.status = InvoiceStatus.VOID
    invoice.voided_at = now or utcnow()
    invoice.void_reason = reason
    session.add(invoice)
    session.flush()
    return invoice


def issue_credit_note(
    session: Session, invoice_id: str, amount: Decimal, reason: str, now: datetime | None = None
) -> CreditNote:
    """Credit part of a finalized invoice; credits never exceed what it charged."""
    invoice = session.get(Invoice, invoice_id)
    if invoice is None:
        raise InvoiceError(f"no invoice {invoice_id!r}")
    if invoice.status is not InvoiceStatus.FINALIZED:
        raise InvoiceError(
            f"invoice {invoice_id!r} is {invoice.status.value};"
            " credit notes apply to finalized invoices"
        )
    if not reason.strip():
        raise InvoiceError("a credit note needs a reason")
    currency = currency_for(invoice.currency)
    try:
        minor = to_minor(amount, currency)
    except ValueError:
        raise InvoiceError(
            f"amount {amount} is not a whole number of {currency.code} minor units"
        ) from None
    if minor <= 0:
        raise InvoiceError(f"credit note amount {amount} must be positive")
    account = _locked_account(session, invoice.tenant_id)
    credited = int(
        session.exec(
            select(func.coalesce(func.sum(CreditNote.amount_minor), 0)).where(
                CreditNote.invoice_id == invoice_id
            )
        ).one()
    )
    if credited + minor > invoice.total_minor:
        raise InvoiceError(
            f"credit of {amount} {currency.code} exceeds what is left to credit"
            f" on invoice {invoice_id!r}"
            f" ({from_minor(invoice.total_minor - credited, currency)})"
        )
    account.last_credit_note_number += 1
    note = CreditNote(
        tenant_id=invoice.tenant_id,
        invoice_id=invoice.id,
        number=account.last_credit_note_number,
        currency=invoice.currency,
        amount_minor=minor,
        reason=reason,
        created_at=now or utcnow(),
    )
    session.add_all([account, note])
    session.flush()
    return note


def preview(session: Session, tenant_id: str, now: datetime) -> tuple[Period, InvoiceDraft] | None:
    """The current period's invoice so far; None when the tenant has no plan for it."""
    period = period_of(now)
    plan_row = plans_for_period(session, period, [tenant_id]).get(tenant_id)
    if plan_row is None:
        return None
    billed = aggregate_billed(session, str(period), [tenant_id])
    drafts = compute_drafts(session, str(period), billed, [tenant_id])
    draft = drafts.get(tenant_id)
    if draft is None:  # no usage yet: every charge at zero, then the minimum
        plan = parsed_plan(plan_row)
        draft = InvoiceDraft(
            tenant_id, str(period), plan_row, plan.currency, charge_lines(plan, {})
        )
    return period, draft
