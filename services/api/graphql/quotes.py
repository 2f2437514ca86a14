"""GraphQL for quotes: a price and open windows before booking, honoured when booked."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

import strawberry

from services.api.graphql.context import context_of
from services.api.graphql.deliveries import DropoffInput, ParcelInput, TimeWindow
from services.api.graphql.errors import UserError
from services.api.graphql.permissions import WriteDeliveries
from services.billing.quoting import marginal_price
from services.core.errors import UserErrors
from services.core.models import Quote as QuoteRow
from services.core.money import currency_for, format_amount, from_minor
from services.deliveries import quotes, validation
from services.planner.live import servable_windows


@strawberry.type(description="An amount of money in a currency.")
class Money:
    amount: str = strawberry.field(
        description='Decimal string with exactly the currency\'s minor-unit digits, e.g. "2.50" '
        'in USD, "250" in JPY; never a binary float.'
    )
    currency: str = strawberry.field(description='ISO 4217 code, e.g. "USD".')


@strawberry.type(description="A held price and the windows open for one parcel to one drop-off.")
class Quote:
    id: strawberry.ID = strawberry.field(description="Pass it as `quoteId` when booking.")
    price: Money = strawberry.field(
        description="What a booking with this quote will be billed: what it adds to this "
        "month's invoice under your plan, minimum commitment left out."
    )
    date: date = strawberry.field(description="The delivery day quoted, in the area's time zone.")
    time_windows: list[TimeWindow] = strawberry.field(
        description="Two-hour windows with room left, in UTC, ending more than an hour from "
        "now; book one of them (or none: any time that day). May be empty."
    )
    expires_at: datetime = strawberry.field(
        description="When the quote lapses (UTC): book before this, or ask again."
    )

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
            time_windows=[TimeWindow(start=start, end=end) for start, end in row.offered_windows()],
            expires_at=row.expires_at,
        )


@strawberry.input(description="The parcel and drop-off to price.")
class CreateQuoteInput:
    service_area: str = strawberry.field(description='Service area code, e.g. "demo".')
    dropoff: DropoffInput = strawberry.field(
        description="Where it goes; inside the area's bounds (only the coordinates are used)."
    )
    parcel: ParcelInput = strawberry.field(description="What goes.")
    date: date | None = strawberry.field(
        default=None,
        description=f"Delivery day, today to {validation.BOOKING_HORIZON_DAYS} days ahead in the "
        "area's time zone; default: "
        "the next day.",
    )


@strawberry.type(description="The result of asking for a quote.")
class CreateQuotePayload:
    quote: Quote | None = strawberry.field(
        description="The quote; null when the input was rejected."
    )
    user_errors: list[UserError] = strawberry.field(
        description="Why no quote was made (e.g. your plan does not offer quotes: INVALID); "
        "empty on success."
    )


@strawberry.type
class QuoteMutations:
    @strawberry.mutation(
        permission_classes=[WriteDeliveries],
        description=f"Price one delivery and list open windows; held for "
        f"{int(quotes.QUOTE_TTL.total_seconds() // 60)} minutes.",
    )
    def create_quote(
        self,
        info: strawberry.Info,
        input: Annotated[
            CreateQuoteInput, strawberry.argument(description="The parcel and drop-off to price.")
        ],
    ) -> CreateQuotePayload:
        ctx = context_of(info)
        request = quotes.QuoteRequest(
            service_area=input.service_area,
            dropoff=validation.Dropoff(lat=input.dropoff.lat, lng=input.dropoff.lng),
            parcel=validation.Parcel(
                weight_grams=input.parcel.weight_grams,
                length_cm=input.parcel.length_cm,
                width_cm=input.parcel.width_cm,
                height_cm=input.parcel.height_cm,
            ),
            date=input.date,
        )
        try:
            row = quotes.create_quote(
                ctx.session,
                ctx.tenant_id,
                request,
                ctx.now,
                marginal_price,
                sandbox=ctx.token.sandbox,
                # Sandbox bookings are never routed: the live plan has nothing to say.
                live_plan=None if ctx.token.sandbox else servable_windows,
            )
        except UserErrors as rejected:
            return CreateQuotePayload(
                quote=None, user_errors=[UserError.from_domain(e) for e in rejected.errors]
            )
        return CreateQuotePayload(quote=Quote.from_row(row), user_errors=[])
