"""GraphQL for billing: usage, invoices, the current period so far, route-cost shares.

Everything is the caller's tenant's own: a route share shows the route's day and the
merchant's own stops and amount, never who else rode the van.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated

import strawberry

from services.api.graphql.context import context_of
from services.api.graphql.permissions import ReadBilling
from services.api.graphql.relay import decode_cursor, encode_cursor, page_size
from services.billing.consolidation import tenant_route_shares
from services.billing.invoicing import (
    InvoiceDraft,
    PricedLine,
    invoices_of,
    preview,
    stored_lines,
)
from services.billing.metering import usage_by_day
from services.core.models import InvoiceStatus
from services.core.money import (
    Currency,
    currency_for,
    format_amount,
    format_quantity,
    from_minor,
)

MAX_USAGE_DAYS = 92

_DECIMAL_AMOUNT = (
    'Decimal string with exactly the currency\'s minor-unit digits (e.g. "2900.00" in USD).'
)
_CURRENCY = 'ISO 4217 code, e.g. "USD".'


@strawberry.type(description="One line of an invoice.")
class InvoiceLine:
    meter: str = strawberry.field(
        description='The meter it prices, e.g. "deliveries", "parcel_kg"; '
        '"minimum_commitment" for the line that tops the total up to the plan\'s minimum.'
    )
    quantity: str = strawberry.field(
        description="Aggregated quantity before free units, as a decimal string; negative "
        "only on adjustments."
    )
    amount: str = strawberry.field(
        description="Amount in the invoice currency, a decimal string with exactly its "
        "minor-unit digits; negative only on adjustments."
    )
    kind: str = strawberry.field(
        description='"charge" (usage priced by the plan), "minimum" (the minimum-commitment '
        'top-up) or "adjustment" (late usage of an earlier, already finalized period).'
    )
    adjusts_period: str | None = strawberry.field(
        description="For adjustments: the earlier period (YYYY-MM) whose late usage this "
        "bills; null on other lines."
    )


@strawberry.type(description="An invoice priced from metered usage.")
class InvoicePreview:
    period: str = strawberry.field(description="Billing period, YYYY-MM (UTC).")
    currency: str = strawberry.field(description=_CURRENCY)
    lines: list[InvoiceLine] = strawberry.field(
        description="Every charge of the plan in plan order (zero lines included), then any "
        "minimum and adjustment lines."
    )
    subtotal: str = strawberry.field(
        description=f"The lines without the minimum-commitment top-up. {_DECIMAL_AMOUNT}"
    )
    total: str = strawberry.field(
        description=f"What is owed: the sum of all lines. {_DECIMAL_AMOUNT}"
    )


@strawberry.type(description="An invoice: a draft until finalized, then numbered and immutable.")
class Invoice:
    id: strawberry.ID = strawberry.field(description="The invoice's id.")
    number: int | None = strawberry.field(
        description="1, 2, 3… per merchant, without gaps, given when finalized (a void "
        "invoice keeps its number); null while a draft."
    )
    period: str = strawberry.field(description="Billing period, YYYY-MM (UTC).")
    status: str = strawberry.field(
        description='"draft" (recomputed until finalized), "finalized" (immutable) or "void" '
        "(cancelled after being issued in error)."
    )
    currency: str = strawberry.field(description=_CURRENCY)
    lines: list[InvoiceLine] = strawberry.field(description="The invoice's lines, in order.")
    subtotal: str = strawberry.field(
        description=f"The lines without the minimum-commitment top-up. {_DECIMAL_AMOUNT}"
    )
    total: str = strawberry.field(
        description=f"What is owed: the sum of all lines. {_DECIMAL_AMOUNT}"
    )


@strawberry.type(description="One invoice in a page of invoices.")
class InvoiceEdge:
    cursor: str = strawberry.field(
        description="Opaque position of this invoice in the list; pass it as `after`."
    )
    node: Invoice = strawberry.field(description="The invoice.")


@strawberry.type(description="A page of invoices, newest period first.")
class InvoiceConnection:
    edges: list[InvoiceEdge] = strawberry.field(description="The page's invoices, in order.")
    has_next_page: bool = strawberry.field(
        description="Whether older invoices follow: fetch them with `after: endCursor`."
    )
    end_cursor: str | None = strawberry.field(
        description="The cursor of the page's last invoice; null when the page is empty."
    )


@strawberry.type(description="A meter's usage on one UTC day.")
class DailyUsage:
    day: date = strawberry.field(description="The UTC day.")
    meter: str = strawberry.field(description='The meter, e.g. "deliveries", "parcel_kg".')
    area: str | None = strawberry.field(
        description="The service area's code with `byArea: true`; null otherwise, and for "
        "usage not tied to an area."
    )
    quantity: str = strawberry.field(
        description="The day's quantity, aggregated as the meter aggregates it (sum, count, "
        "max or distinct count), as a decimal string."
    )
    events: int = strawberry.field(description="How many usage events were recorded.")


@strawberry.type(description="Your share of a shared route's cost.")
class RouteCostShare:
    route_id: strawberry.ID = strawberry.field(description="The route's id.")
    day: date = strawberry.field(description="The route's delivery day, in the area's time zone.")
    stops: int = strawberry.field(description="Your stops on the route.")
    amount: str = strawberry.field(description=f"Your share of the route's cost. {_DECIMAL_AMOUNT}")
    currency: str = strawberry.field(description=_CURRENCY)
    method: str = strawberry.field(
        description='How the cost was split: "shapley" (Shapley values, up to 8 merchants), '
        '"standalone" (in proportion to each merchant\'s stand-alone cost) or "sole" (you '
        "were the only merchant on it)."
    )


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
        self,
        info: strawberry.Info,
        first: Annotated[
            int | None, strawberry.argument(description="Page size, 0 to 100; default 50.")
        ] = None,
        after: Annotated[
            str | None,
            strawberry.argument(
                description="Start after this cursor (the previous page's `endCursor`); "
                "absent: from the newest."
            ),
        ] = None,
    ) -> InvoiceConnection:
        ctx = context_of(info)
        size = page_size(first)
        before = decode_cursor("Invoice", after) if after else None
        rows = invoices_of(ctx.session, ctx.tenant_id, before, size + 1)
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
        from_: Annotated[
            date, strawberry.argument(name="from", description="First UTC day (inclusive).")
        ],
        to: Annotated[
            date,
            strawberry.argument(
                description=f"UTC day after the last (exclusive); at most {MAX_USAGE_DAYS} "
                "days after `from`."
            ),
        ],
        meters: Annotated[
            list[str] | None,
            strawberry.argument(description="Only these meters; absent or empty: all."),
        ] = None,
        by_area: Annotated[
            bool,
            strawberry.argument(description="Split each day's usage by service area."),
        ] = False,
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
        from_: Annotated[
            date,
            strawberry.argument(name="from", description="First route day (inclusive)."),
        ],
        to: Annotated[
            date, strawberry.argument(description="Route day after the last (exclusive).")
        ],
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
