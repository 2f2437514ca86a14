"""GraphQL for deliveries: booking (one or many), one delivery, and the paginated list."""

from __future__ import annotations

from datetime import date, datetime
from datetime import date as datetime_date
from typing import Annotated, Any

import strawberry

from services.api.graphql.context import context_of
from services.api.graphql.enums import describe_values
from services.api.graphql.errors import UserError
from services.api.graphql.inputs import plain_input
from services.api.graphql.permissions import ReadDeliveries, WriteDeliveries
from services.api.graphql.relay import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    PageInfo,
    decode_position,
    encode_position,
    page_size,
)
from services.api.insertion import insert_after_commit
from services.api.tracking import tracking_url
from services.core import idempotency, models
from services.core.errors import UserErrors
from services.core.models import DeliveryStatus as DomainDeliveryStatus
from services.deliveries import booking, lifecycle, listing, repository, validation

MAX_BULK_BOOKINGS = 250

DeliverySortKey = describe_values(
    strawberry.enum(
        listing.SortKey, name="DeliverySortKey", description="Orders of the deliveries list."
    ),
    {
        "CREATED_AT": "When it was booked (the id order).",
        "DATE": "The delivery day, then booking order.",
        "REFERENCE": "Your order reference, then booking order.",
    },
)

DeliveryStatus = describe_values(
    strawberry.enum(
        DomainDeliveryStatus,
        name="DeliveryStatus",
        description="Where a delivery is in its life. Stable: clients may branch on these "
        "values. DELIVERED, RETURNED and CANCELLED are final.",
    ),
    {
        "BOOKED": "Accepted and waiting to be planned onto a route; also after a reschedule, "
        "and after a failed attempt that will be re-attempted.",
        "PLANNED": "On a route, with an ETA and a stop number; the van has not left yet.",
        "OUT_FOR_DELIVERY": "The van carrying the parcel has left the depot.",
        "DELIVERED": "Handed over to the recipient, with proof. Final.",
        "FAILED": "An attempt failed. A delivery rests here only after its last allowed "
        "attempt, until the parcel is back at the depot (RETURNED).",
        "RETURNED": "Back at the depot after the last failed attempt. Final.",
        "CANCELLED": "Cancelled by the merchant before the van left. Final.",
    },
)


@strawberry.type(description="An interval of time; both ends are instants with a UTC offset.")
class TimeWindow:
    start: datetime = strawberry.field(description="When the window opens, in UTC.")
    end: datetime = strawberry.field(description="When the window closes, in UTC.")


@strawberry.type(description="The route a planned delivery rides on.")
class DeliveryRoute:
    id: strawberry.ID = strawberry.field(
        description="The route's id; deliveries sharing it ride the same van that day."
    )
    stop_number: int = strawberry.field(
        description="This delivery's position among your own stops on the route (1 = the "
        "first of yours). Routes are shared: other merchants' stops are neither counted nor "
        "shown."
    )


@strawberry.type(description="A point on Earth (WGS 84).")
class Location:
    lat: float = strawberry.field(description="Latitude in decimal degrees.")
    lng: float = strawberry.field(description="Longitude in decimal degrees.")

    @classmethod
    def of_event(cls, row: models.DeliveryEvent) -> Location | None:
        """Where a tracking event happened, if it was reported."""
        return (
            cls(lat=row.lat, lng=row.lng) if row.lat is not None and row.lng is not None else None
        )


@strawberry.type(description="One change of a delivery's status.")
class TrackingEvent:
    status: DeliveryStatus = strawberry.field(  # type: ignore[valid-type]
        description="The status the delivery moved to."
    )
    at: datetime = strawberry.field(description="When the change was recorded, in UTC.")
    detail: str | None = strawberry.field(
        description="What happened, in English, for people (e.g. the new day of a "
        "reschedule or a driver's note); null when there is nothing to add."
    )
    reason: str | None = strawberry.field(
        description="For FAILED, a FailureReason value (e.g. RECIPIENT_ABSENT); for "
        "CANCELLED, the reason given to cancelDelivery; otherwise null."
    )
    location: Location | None = strawberry.field(
        description="Where it happened, when the driver's device reported it; else null."
    )

    @classmethod
    def from_row(cls, row: models.DeliveryEvent) -> TrackingEvent:
        return cls(
            status=row.status,
            at=row.at,
            detail=row.detail,
            reason=row.reason,
            location=Location.of_event(row),
        )


@strawberry.type(description="Where the parcel is handed over, as given when booking.")
class Dropoff:
    lat: float = strawberry.field(description="Latitude in decimal degrees (WGS 84).")
    lng: float = strawberry.field(description="Longitude in decimal degrees (WGS 84).")
    line1: str | None = strawberry.field(
        description="Street address, for the driver; null if not given."
    )
    city: str | None = strawberry.field(description="City; null if not given.")
    postal_code: str | None = strawberry.field(description="Postal code; null if not given.")
    country: str | None = strawberry.field(description="Country, as given; null if not given.")


@strawberry.type(description="Who receives the parcel.")
class Recipient:
    name: str = strawberry.field(description="The recipient's name, as on the parcel.")
    phone: str | None = strawberry.field(
        description="Phone number for the driver; null if not given."
    )
    email: str | None = strawberry.field(description="E-mail address; null if not given.")


@strawberry.type(description="A parcel to take to one recipient on one day.")
class Delivery:
    id: strawberry.ID = strawberry.field(
        description="Lastmile's id for the delivery, stable for its whole life."
    )
    reference: str = strawberry.field(description="The merchant's own order reference.")
    status: DeliveryStatus = strawberry.field(  # type: ignore[valid-type]
        description="Where the delivery is in its life now."
    )
    date: date = strawberry.field(
        description="The delivery day, in the area's time zone; a re-attempt moves it to the "
        "next day."
    )
    time_window: TimeWindow = strawberry.field(
        description="When the recipient expects it; the area's whole delivery day when "
        "booked without a window (and for a re-attempt)."
    )
    eta: datetime | None = strawberry.field(
        description="Estimated arrival at the drop-off, in UTC; null while it is on no route "
        "(before planning, or after a cancellation, reschedule or re-attempt)."
    )
    dropoff: Dropoff = strawberry.field(description="Where the parcel goes.")
    weight_grams: int = strawberry.field(description="The parcel's weight in grams.")
    recipient: Recipient = strawberry.field(
        description="Who receives it; updateDeliveryRecipient corrects it."
    )
    attempt: int = strawberry.field(
        description="Which delivery attempt this is: 1 at booking, 1 more after each failed "
        f"attempt that is re-attempted ({lifecycle.MAX_ATTEMPTS} at most)."
    )
    sandbox: bool = strawberry.field(
        description="Booked with test-mode credentials: never routed or billed."
    )
    tracking_url: str = strawberry.field(
        description="Public, read-only tracking page for the recipient (no merchant data)."
    )
    unplanned_reason: str | None = strawberry.field(
        description="Why the last plan run could not fit it (it stays BOOKED for the next); "
        "null once planned or rescheduled, and before any plan run."
    )
    created_at: datetime = strawberry.field(description="When it was booked, in UTC.")
    _row: strawberry.Private[models.Delivery]

    @strawberry.field(description="The route it is planned on; null until planned.")
    def route(self, info: strawberry.Info) -> DeliveryRoute | None:
        number = repository.own_stop_number(context_of(info).session, self._row)
        if self._row.route_id is None or number is None:
            return None
        return DeliveryRoute(id=strawberry.ID(self._row.route_id), stop_number=number)

    @strawberry.field(description="Tracking events, oldest first.")
    def events(self, info: strawberry.Info) -> list[TrackingEvent]:
        ctx = context_of(info)
        rows = repository.events_of(ctx.session, ctx.tenant_id, self._row.id)
        return [TrackingEvent.from_row(r) for r in rows]

    @classmethod
    def from_row(cls, row: models.Delivery) -> Delivery:
        return cls(
            id=strawberry.ID(row.id),
            reference=row.reference,
            status=row.status,
            date=row.date,
            time_window=TimeWindow(start=row.window_start, end=row.window_end),
            eta=row.eta,
            dropoff=Dropoff(
                lat=row.dropoff_lat,
                lng=row.dropoff_lng,
                line1=row.dropoff_line1,
                city=row.dropoff_city,
                postal_code=row.dropoff_postal_code,
                country=row.dropoff_country,
            ),
            weight_grams=row.weight_grams,
            recipient=Recipient(
                name=row.recipient_name, phone=row.recipient_phone, email=row.recipient_email
            ),
            attempt=row.attempt,
            sandbox=row.sandbox,
            tracking_url=tracking_url(row.tracking_token),
            unplanned_reason=row.unplanned_reason,
            created_at=row.created_at,
            _row=row,
        )


@strawberry.type(description="One delivery in a page of deliveries.")
class DeliveryEdge:
    cursor: str = strawberry.field(
        description="Opaque position of this delivery in the list; pass it as `after`."
    )
    node: Delivery = strawberry.field(description="The delivery.")


@strawberry.type(description="A page of deliveries, oldest first.")
class DeliveryConnection:
    edges: list[DeliveryEdge] = strawberry.field(description="The page's deliveries, in order.")
    page_info: PageInfo = strawberry.field(description="Where the page stands in the list.")


@plain_input
@strawberry.input(description="Where the parcel is handed over.")
class DropoffInput:
    lat: float = strawberry.field(
        description="Latitude in decimal degrees (WGS 84); must lie in the area's bounds."
    )
    lng: float = strawberry.field(
        description="Longitude in decimal degrees (WGS 84); must lie in the area's bounds."
    )
    line1: str | None = strawberry.field(
        default=None,
        description="Street address, for the driver; at most "
        f"{validation.MAX_TEXT[('dropoff', 'line1')]} characters.",
    )
    city: str | None = strawberry.field(
        default=None,
        description=f"City; at most {validation.MAX_TEXT[('dropoff', 'city')]} characters.",
    )
    postal_code: str | None = strawberry.field(
        default=None,
        description="Postal code; at most "
        f"{validation.MAX_TEXT[('dropoff', 'postalCode')]} characters.",
    )
    country: str | None = strawberry.field(
        default=None,
        description=f"Country; at most {validation.MAX_TEXT[('dropoff', 'country')]} characters.",
    )


@plain_input
@strawberry.input(description="Who receives the parcel.")
class RecipientInput:
    name: str = strawberry.field(
        description="The recipient's name; not blank, at most "
        f"{validation.MAX_TEXT[('recipient', 'name')]} characters."
    )
    phone: str | None = strawberry.field(
        default=None,
        description="Phone number for the driver: an optional leading + and 6 to 20 "
        "digits, spaces or ( ) - . characters.",
    )
    email: str | None = strawberry.field(
        default=None,
        description="E-mail address, e.g. name@example.com; at most "
        f"{validation.MAX_TEXT[('recipient', 'email')]} characters.",
    )


@plain_input
@strawberry.input(description="The parcel's weight and, optionally, its size.")
class ParcelInput:
    weight_grams: int = strawberry.field(
        description=f"Weight in grams: more than 0 and at most {validation.MAX_WEIGHT_GRAMS:,}."
    )
    length_cm: int | None = strawberry.field(
        default=None,
        description=f"Length in whole centimetres: more than 0, at most {validation.MAX_SIDE_CM}.",
    )
    width_cm: int | None = strawberry.field(
        default=None,
        description=f"Width in whole centimetres: more than 0, at most {validation.MAX_SIDE_CM}.",
    )
    height_cm: int | None = strawberry.field(
        default=None,
        description=f"Height in whole centimetres: more than 0, at most {validation.MAX_SIDE_CM}.",
    )


@plain_input
@strawberry.input(description="A delivery window; both ends must carry a UTC offset.")
class TimeWindowInput:
    start: datetime = strawberry.field(
        description="When the recipient can receive it from, e.g. 2026-11-24T14:00:00-05:00."
    )
    end: datetime = strawberry.field(
        description="Until when; at least 30 minutes after `start`, within the area's "
        "delivery hours that day, and not yet past."
    )


@plain_input
@strawberry.input(description="Everything needed to book one delivery.")
class BookDeliveryInput:
    reference: str = strawberry.field(
        description="Your own order reference: not blank, at most 128 characters."
    )
    service_area: str = strawberry.field(description='Service area code, e.g. "demo".')
    dropoff: DropoffInput = strawberry.field(description="Where it goes; inside the area's bounds.")
    recipient: RecipientInput = strawberry.field(description="Who receives it.")
    parcel: ParcelInput = strawberry.field(description="What goes.")
    idempotency_key: str | None = strawberry.field(
        default=None,
        description=f"1 to {idempotency.MAX_KEY_LENGTH} characters, kept "
        f"{idempotency.RETENTION.days} days. Same key and same input returns the "
        "same delivery; different input with the same key is rejected with "
        "IDEMPOTENCY_CONFLICT.",
    )
    date: date | None = strawberry.field(
        default=None,
        description=f"Delivery day, today to {validation.BOOKING_HORIZON_DAYS} days ahead in the "
        "area's time zone; default: "
        "the day of `timeWindow` if given, else the next day.",
    )
    time_window: TimeWindowInput | None = strawberry.field(
        default=None, description="Absent: any time in the area's delivery hours that day."
    )
    quote_id: strawberry.ID | None = strawberry.field(
        default=None,
        description="A quote from createQuote: the booking is billed its price. The area, "
        "day, drop-off and weight must match it, and the window be one it offered.",
    )

    def to_request(self) -> booking.BookingRequest:
        """The booking in the service's terms (the API's input types stay in this layer)."""
        return booking.BookingRequest(
            reference=self.reference,
            service_area=self.service_area,
            dropoff=validation.Dropoff(
                lat=self.dropoff.lat,
                lng=self.dropoff.lng,
                line1=self.dropoff.line1,
                city=self.dropoff.city,
                postal_code=self.dropoff.postal_code,
                country=self.dropoff.country,
            ),
            recipient=validation.Recipient(
                name=self.recipient.name, phone=self.recipient.phone, email=self.recipient.email
            ),
            parcel=validation.Parcel(
                weight_grams=self.parcel.weight_grams,
                length_cm=self.parcel.length_cm,
                width_cm=self.parcel.width_cm,
                height_cm=self.parcel.height_cm,
            ),
            date=self.date,
            time_window=(
                (self.time_window.start, self.time_window.end) if self.time_window else None
            ),
            idempotency_key=self.idempotency_key,
            quote_id=str(self.quote_id) if self.quote_id is not None else None,
        )


@strawberry.type(description="The result of booking one delivery.")
class BookDeliveryPayload:
    delivery: Delivery | None = strawberry.field(
        description="The booked delivery (or the earlier one, replayed by idempotency key); "
        "null when the input was rejected."
    )
    user_errors: list[UserError] = strawberry.field(
        description="Why the input was rejected (nothing was written); empty on success."
    )


@strawberry.type(description="The results of booking many deliveries in one call.")
class BookDeliveriesPayload:
    results: list[BookDeliveryPayload] = strawberry.field(
        description="One per input, in input order; empty when the call as a whole was "
        "rejected (see `userErrors`)."
    )
    user_errors: list[UserError] = strawberry.field(
        description="Problems with the request as a whole (e.g. too many inputs)."
    )


def _book_one(info: strawberry.Info, input: BookDeliveryInput, prefix: tuple[str, ...]) -> Any:
    """Book one input; a rejected input writes nothing (the service checks before writing)."""
    ctx = context_of(info)
    try:
        row = booking.book(
            ctx.session, ctx.tenant_id, input.to_request(), ctx.now, sandbox=ctx.token.sandbox
        )
    except UserErrors as rejected:
        return BookDeliveryPayload(
            delivery=None, user_errors=[UserError.from_domain(e, prefix) for e in rejected.errors]
        )
    insert_after_commit(ctx.session, [row])
    return BookDeliveryPayload(delivery=Delivery.from_row(row), user_errors=[])


@strawberry.type
class DeliveryQueries:
    @strawberry.field(
        permission_classes=[ReadDeliveries],
        description="One of your deliveries; null if it does not exist or is not yours.",
    )
    def delivery(
        self,
        info: strawberry.Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="The delivery's id.")],
    ) -> Delivery | None:
        ctx = context_of(info)
        row = repository.get(ctx.session, ctx.merchant, str(id))
        return Delivery.from_row(row) if row else None

    @strawberry.field(
        permission_classes=[ReadDeliveries],
        description="Your deliveries, filtered and sorted (oldest first by default). `first` "
        f"is at most {MAX_PAGE_SIZE} (default {DEFAULT_PAGE_SIZE}).",
    )
    def deliveries(
        self,
        info: strawberry.Info,
        first: Annotated[
            int | None,
            strawberry.argument(
                description=f"Page size, 0 to {MAX_PAGE_SIZE}; default {DEFAULT_PAGE_SIZE}."
            ),
        ] = None,
        after: Annotated[
            str | None,
            strawberry.argument(
                description="Start after this cursor (the previous page's `endCursor`, from "
                "the same sortKey and reverse); absent: from the beginning."
            ),
        ] = None,
        status: Annotated[
            list[DeliveryStatus] | None,  # type: ignore[valid-type]
            strawberry.argument(description="Only deliveries in one of these statuses."),
        ] = None,
        date: Annotated[
            datetime_date | None,
            strawberry.argument(description="Only deliveries for this delivery day."),
        ] = None,
        reference: Annotated[
            str | None, strawberry.argument(description="Only deliveries with this reference.")
        ] = None,
        sort_key: Annotated[
            DeliverySortKey,  # type: ignore[valid-type]
            strawberry.argument(description="What to order by."),
        ] = listing.SortKey.CREATED_AT,
        reverse: Annotated[
            bool, strawberry.argument(description="Descending instead of ascending.")
        ] = False,
    ) -> DeliveryConnection:
        ctx = context_of(info)
        size = page_size(first)
        order = listing.SortKey(sort_key)
        rows, more = listing.page(
            ctx.session,
            ctx.merchant,
            listing.Filters(statuses=tuple(status or ()), day=date, reference=reference),
            order,
            reverse,
            size,
            decode_position("Delivery", after) if after is not None else None,
        )
        edges = [
            DeliveryEdge(
                cursor=encode_position("Delivery", listing.position(row, order)),
                node=Delivery.from_row(row),
            )
            for row in rows
        ]
        return DeliveryConnection(
            edges=edges,
            page_info=PageInfo(
                has_next_page=more,
                has_previous_page=after is not None,
                start_cursor=edges[0].cursor if edges else None,
                end_cursor=edges[-1].cursor if edges else None,
            ),
        )


@strawberry.type
class DeliveryMutations:
    @strawberry.mutation(permission_classes=[WriteDeliveries], description="Book one delivery.")
    def book_delivery(
        self,
        info: strawberry.Info,
        input: Annotated[
            BookDeliveryInput, strawberry.argument(description="The delivery to book.")
        ],
    ) -> BookDeliveryPayload:
        payload: BookDeliveryPayload = _book_one(info, input, ())
        return payload

    @strawberry.mutation(
        permission_classes=[WriteDeliveries],
        description=f"Book up to {MAX_BULK_BOOKINGS} deliveries; each input succeeds or fails "
        "on its own, and results come back in input order.",
    )
    def book_deliveries(
        self,
        info: strawberry.Info,
        inputs: Annotated[
            list[BookDeliveryInput],
            strawberry.argument(
                description=f"The deliveries to book, at most {MAX_BULK_BOOKINGS}; each "
                "costs 1 more query-cost point."
            ),
        ],
    ) -> BookDeliveriesPayload:
        if len(inputs) > MAX_BULK_BOOKINGS:
            return BookDeliveriesPayload(
                results=[],
                user_errors=[
                    UserError(
                        field=["inputs"],
                        message=f"At most {MAX_BULK_BOOKINGS} inputs per call, got {len(inputs)}.",
                        code=booking.UserErrorCode.TOO_MANY_INPUTS,
                    )
                ],
            )
        ctx = context_of(info)
        outcomes = booking.book_many(
            ctx.session,
            ctx.tenant_id,
            [item.to_request() for item in inputs],
            ctx.now,
            sandbox=ctx.token.sandbox,
        )
        insert_after_commit(ctx.session, [o for o in outcomes if not isinstance(o, UserErrors)])
        results = [
            BookDeliveryPayload(
                delivery=None,
                user_errors=[UserError.from_domain(e, ("inputs", str(i))) for e in outcome.errors],
            )
            if isinstance(outcome, UserErrors)
            else BookDeliveryPayload(delivery=Delivery.from_row(outcome), user_errors=[])
            for i, outcome in enumerate(outcomes)
        ]
        return BookDeliveriesPayload(results=results, user_errors=[])
