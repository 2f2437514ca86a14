"""GraphQL for billing: usage, invoices, the current period so far, route-cost shares.

Everything is the caller's tenant's own: a route share shows the route's day and the
merchant's own stops and amount, never who else rode the van.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated

import strawberry
from sqlmodel import col, select

from services.api.graphql.context import context_of
from services.api.graphql.permissions import ReadBilling
from services.api.graphql.relay import decode_cursor, encode_cursor, page_size
from services.billing.consolidation import tenant_route_shares
from services.billing.invoicing import InvoiceDraft, PricedLine, preview, stored_lines
from services.billing.metering import usage_by_day
from services.billing.money import (
    Currency,
    currency_for,
    format_amount,
    format_quantity,
    from_minor,
)
from services.core.models import Invoice as InvoiceRow
from services.core.models import InvoiceStatus

MAX_USAGE_DAYS = 92


@strawberry.type(description="One line of an invoice.")
class InvoiceLine:
    meter: str
    quantity: str = strawberry.field(description="Aggregated quantity before free units (decimal).")
    amount: str = strawberry.field(description="Decimal amount in the invoice currency.")
    kind: str = strawberry.field(description="charge, minimum or adjustment.")
    adjusts_period: str | None = strawberry.field(
        description="For adjustments: the earlier period whose late usage this bills."
    )


@strawberry.type(description="An invoice priced from metered usage.")
class InvoicePreview:
    period: str = strawberry.field(description="Billing period, YYYY-MM (UTC).")
    currency: str
    lines: list[InvoiceLine]
    subtotal: str
    total: str


@strawberry.type(description="An invoice: a draft until finalized, then numbered and immutable.")
class Invoice:
    id: strawberry.ID
    number: int | None = strawberry.field(description="1, 2, 3… per merchant once finalized.")
    period: str
    status: str = strawberry.field(description="draft, finalized or void.")
    currency: str
    lines: list[InvoiceLine]
    subtotal: str
    total: str


@strawberry.type
class InvoiceEdge:
    cursor: str
    node: Invoice


@strawberry.type
class InvoiceConnection:
    edges: list[InvoiceEdge]
    has_next_page: bool
    end_cursor: str | None


@strawberry.type(description="A meter's usage on one UTC day.")
class DailyUsage:
    day: date
    meter: str
    area: str | None
    quantity: str
    events: int


@strawberry.type(description="Your share of a shared route's cost.")
class RouteCostShare:
    route_id: strawberry.ID
    day: date
    stops: int = strawberry.field(description="Your stops on the route.")
    amount: str
    currency: str
    method: str = strawberry.field(description="shapley, standalone (weights) or sole.")


def _lines(lines: list[PricedLine], currency: Currency) -> list[InvoiceLine]:
    return [
        InvoiceLine(
            meter=line.meter,
            quantity=format_quantity(line.quantity),
            amount=format_amount(line.amount, currency),
            kind=line.kind.value,
            adjusts_period=line.adjusts_period,
        )
        for line in lines
    ]


def _preview(draft: InvoiceDraft, period: str) -> InvoicePreview:
    return InvoicePreview(
        period=period,
        currency=draft.currency.code,
        lines=_lines(draft.lines, draft.currency),
        subtotal=format_amount(draft.subtotal, draft.currency),
        total=format_amount(draft.total, draft.currency),
    )


@strawberry.type
class BillingQueries:
    @strawberry.field(
        permission_classes=[ReadBilling],
        description="The current period's invoice as it stands now; null without a price plan.",
    )
    def invoice_preview(self, info: strawberry.Info) -> InvoicePreview | None:
        ctx = context_of(info)
        result = preview(ctx.session, ctx.tenant_id, ctx.now)
        if result is None:
            return None
        period, draft = result
        return _preview(draft, str(period))

    @strawberry.field(
        permission_classes=[ReadBilling],
        description="Your invoices, newest period first (drafts included, up to 100 a page).",
    )
    def invoices(
        self, info: strawberry.Info, first: int | None = None, after: str | None = None
    ) -> InvoiceConnection:
        ctx = context_of(info)
        size = page_size(first)
        statement = select(InvoiceRow).where(InvoiceRow.tenant_id == ctx.tenant_id)
        if after:
            statement = statement.where(col(InvoiceRow.period) < decode_cursor("Invoice", after))
        rows = ctx.session.exec(
            statement.order_by(col(InvoiceRow.period).desc()).limit(size + 1)
        ).all()
        edges = []
        for row in rows[:size]:
            currency = currency_for(row.currency)
            node = Invoice(
                id=strawberry.ID(row.id),
                number=row.number,
                period=row.period,
                status=InvoiceStatus(row.status).value,
                currency=row.currency,
                lines=_lines(stored_lines(ctx.session, row), currency),
                subtotal=format_amount(from_minor(row.subtotal_minor, currency), currency),
                total=format_amount(from_minor(row.total_minor, currency), currency),
            )
            edges.append(InvoiceEdge(cursor=encode_cursor("Invoice", row.period), node=node))
        return InvoiceConnection(
            edges=edges,
            has_next_page=len(rows) > size,
            end_cursor=edges[-1].cursor if edges else None,
        )

    @strawberry.field(
        permission_classes=[ReadBilling],
        description=f"Usage per meter and UTC day in [from, to), at most {MAX_USAGE_DAYS} days.",
    )
    def usage(
        self,
        info: strawberry.Info,
        from_: Annotated[date, strawberry.argument(name="from")],
        to: date,
        meters: list[str] | None = None,
        by_area: bool = False,
    ) -> list[DailyUsage]:
        if not from_ < to <= from_ + timedelta(days=MAX_USAGE_DAYS):
            raise ValueError(f"`to` must be after `from` and at most {MAX_USAGE_DAYS} days later.")
        ctx = context_of(info)
        rows = usage_by_day(
            ctx.session,
            ctx.tenant_id,
            _midnight(from_),
            _midnight(to),
            meters,
            by_area,
        )
        return [
            DailyUsage(
                day=row.day,
                meter=row.meter,
                area=row.area_code,
                quantity=format_quantity(row.quantity),
                events=row.events,
            )
            for row in rows
        ]

    @strawberry.field(
        permission_classes=[ReadBilling],
        description="Your shares of planned routes' costs for route days in [from, to).",
    )
    def route_cost_shares(
        self,
        info: strawberry.Info,
        from_: Annotated[date, strawberry.argument(name="from")],
        to: date,
    ) -> list[RouteCostShare]:
        ctx = context_of(info)
        shares = []
        for route, allocation in tenant_route_shares(ctx.session, ctx.tenant_id, from_, to):
            currency = currency_for(allocation.currency)
            shares.append(
                RouteCostShare(
                    route_id=strawberry.ID(route.id),
                    day=route.date,
                    stops=allocation.stops,
                    amount=format_amount(from_minor(allocation.amount_minor, currency), currency),
                    currency=allocation.currency,
                    method=allocation.method,
                )
            )
        return shares


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)
