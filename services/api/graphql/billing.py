"""GraphQL for billing: what the current period costs so far."""

from __future__ import annotations

import strawberry

from services.api.graphql.context import context_of
from services.api.graphql.permissions import ReadBilling
from services.billing.invoicing import preview


@strawberry.type(description="One charge of an invoice.")
class InvoiceLine:
    meter: str
    quantity: str = strawberry.field(description="Aggregated quantity before free units (decimal).")
    amount: str = strawberry.field(description="Decimal amount in the invoice currency.")


@strawberry.type(description="An invoice priced from metered usage.")
class InvoicePreview:
    period: str = strawberry.field(description="Billing period, YYYY-MM (UTC).")
    currency: str
    lines: list[InvoiceLine]
    subtotal: str
    total: str


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
        period, invoice = result
        document = invoice.as_json()
        return InvoicePreview(
            period=str(period),
            currency=invoice.currency.code,
            lines=[InvoiceLine(**line) for line in document["lines"]],
            subtotal=document["subtotal"],
            total=document["total"],
        )
