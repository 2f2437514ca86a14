"""GraphQL for quotes: a price and open windows before booking, honoured when booked."""

from __future__ import annotations

from datetime import date, datetime

import strawberry

from services.api.deliveries import quotes, service
from services.api.deliveries.errors import UserErrors
from services.api.graphql.context import context_of
from services.api.graphql.deliveries import DropoffInput, ParcelInput, TimeWindow
from services.api.graphql.errors import UserError
from services.api.graphql.permissions import WriteDeliveries
from services.billing.money import currency_for, format_amount, from_minor
from services.core.models import Quote as QuoteRow


@strawberry.type(description="An amount of money in a currency.")
class Money:
    amount: str = strawberry.field(description="Decimal string with the currency's digits.")
    currency: str = strawberry.field(description="ISO 4217 code.")


@strawberry.type(description="A held price and the windows open for one parcel to one drop-off.")
class Quote:
    id: strawberry.ID = strawberry.field(description="Pass it as `quoteId` when booking.")
    price: Money = strawberry.field(description="What the booking will be billed.")
    date: date = strawberry.field(description="The delivery day quoted.")
    time_windows: list[TimeWindow] = strawberry.field(
        description="Two-hour windows with room left; book one of them (or none: any time)."
    )
    expires_at: datetime = strawberry.field(description="Book before this, or ask again.")

    @classmethod
    def from_row(cls, row: QuoteRow) -> Quote:
        currency = currency_for(row.currency)
        return cls(
            id=strawberry.ID(row.id),
            price=Money(
                amount=format_amount(from_minor(row.price_minor, currency), currency),
                currency=currency.code,
            ),
            date=row.date,
            time_windows=[
                TimeWindow(start=datetime.fromisoformat(a), end=datetime.fromisoformat(b))
                for a, b in row.windows
            ],
            expires_at=row.expires_at,
        )


@strawberry.input(description="The parcel and drop-off to price.")
class CreateQuoteInput:
    service_area: str = strawberry.field(description='Service area code, e.g. "demo".')
    dropoff: DropoffInput = strawberry.field(description="Where it goes.")
    parcel: ParcelInput = strawberry.field(description="What goes.")
    date: date | None = strawberry.field(
        default=None, description="Delivery day; default: the next day in the area's time zone."
    )


@strawberry.type
class CreateQuotePayload:
    quote: Quote | None = strawberry.field(description="The quote, if one could be made.")
    user_errors: list[UserError] = strawberry.field(description="Why not.")


@strawberry.type
class QuoteMutations:
    @strawberry.mutation(
        permission_classes=[WriteDeliveries],
        description=f"Price one delivery and list open windows; held for "
        f"{int(quotes.QUOTE_TTL.total_seconds() // 60)} minutes.",
    )
    def create_quote(self, info: strawberry.Info, input: CreateQuoteInput) -> CreateQuotePayload:
        ctx = context_of(info)
        request = quotes.QuoteRequest(
            service_area=input.service_area,
            dropoff=service.Dropoff(lat=input.dropoff.lat, lng=input.dropoff.lng),
            parcel=service.Parcel(
                weight_grams=input.parcel.weight_grams,
                length_cm=input.parcel.length_cm,
                width_cm=input.parcel.width_cm,
                height_cm=input.parcel.height_cm,
            ),
            date=input.date,
        )
        try:
            row = quotes.create_quote(ctx.session, ctx.tenant_id, request, ctx.now)
        except UserErrors as rejected:
            return CreateQuotePayload(
                quote=None, user_errors=[UserError.from_domain(e) for e in rejected.errors]
            )
        return CreateQuotePayload(quote=Quote.from_row(row), user_errors=[])
