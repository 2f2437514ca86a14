"""GraphQL for deliveries: booking (one or many), one delivery, and the paginated list."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import strawberry
from sqlmodel import col, select

from services.api.deliveries import service
from services.api.deliveries.errors import UserErrors
from services.api.graphql.context import context_of
from services.api.graphql.errors import UserError
from services.api.graphql.permissions import ReadDeliveries, WriteDeliveries
from services.api.graphql.relay import PageInfo, decode_cursor, encode_cursor, page_size
from services.api.tracking import tracking_url
from services.core import models
from services.core.models import DeliveryStatus as DomainDeliveryStatus

MAX_BULK_BOOKINGS = 250

DeliveryStatus = strawberry.enum(
    DomainDeliveryStatus, name="DeliveryStatus", description="Where a delivery is in its life."
)


@strawberry.type(description="An interval of time; both ends are instants with a UTC offset.")
class TimeWindow:
    start: datetime
    end: datetime


@strawberry.type(description="The route a planned delivery rides on.")
class DeliveryRoute:
    id: strawberry.ID
    stop_number: int = strawberry.field(
        description="This delivery's position on the route (1 = first)."
    )


@strawberry.type(description="A point on Earth.")
class Location:
    lat: float
    lng: float


@strawberry.type(description="One change of a delivery's status.")
class TrackingEvent:
    status: DeliveryStatus  # type: ignore[valid-type]
    at: datetime
    detail: str | None
    reason: str | None = strawberry.field(
        description="Normalised reason of a failure or cancellation."
    )
    location: Location | None = strawberry.field(description="Where it happened, if reported.")

    @classmethod
    def from_row(cls, row: models.DeliveryEvent) -> TrackingEvent:
        location = (
            Location(lat=row.lat, lng=row.lng)
            if row.lat is not None and row.lng is not None
            else None
        )
        return cls(
            status=row.status, at=row.at, detail=row.detail, reason=row.reason, location=location
        )


@strawberry.type
class Dropoff:
    lat: float
    lng: float
    line1: str | None
    city: str | None
    postal_code: str | None
    country: str | None


@strawberry.type
class Recipient:
    name: str
    phone: str | None
    email: str | None


@strawberry.type(description="A parcel to take to one recipient on one day.")
class Delivery:
    id: strawberry.ID
    reference: str = strawberry.field(description="The merchant's own order reference.")
    status: DeliveryStatus  # type: ignore[valid-type]
    date: date = strawberry.field(description="The delivery day, in the area's time zone.")
    time_window: TimeWindow
    eta: datetime | None = strawberry.field(
        description="Estimated arrival at the drop-off; null until planned."
    )
    dropoff: Dropoff
    weight_grams: int
    recipient: Recipient
    attempt: int = strawberry.field(description="Which delivery attempt this is (1 = first).")
    sandbox: bool = strawberry.field(
        description="Booked with test-mode credentials: never routed or billed."
    )
    tracking_url: str = strawberry.field(
        description="Public, read-only tracking page for the recipient (no merchant data)."
    )
    unplanned_reason: str | None = strawberry.field(
        description="Why the last plan run could not fit it (it stays BOOKED for the next)."
    )
    created_at: datetime
    _row: strawberry.Private[models.Delivery]

    @strawberry.field(description="The route it is planned on; null until planned.")
    def route(self) -> DeliveryRoute | None:
        if self._row.route_id is None or self._row.stop_number is None:
            return None
        return DeliveryRoute(
            id=strawberry.ID(self._row.route_id), stop_number=self._row.stop_number
        )

    @strawberry.field(description="Tracking events, oldest first.")
    def events(self, info: strawberry.Info) -> list[TrackingEvent]:
        ctx = context_of(info)
        rows = ctx.session.exec(
            select(models.DeliveryEvent)
            .where(
                models.DeliveryEvent.tenant_id == ctx.tenant_id,
                models.DeliveryEvent.delivery_id == self._row.id,
            )
            .order_by(col(models.DeliveryEvent.at), col(models.DeliveryEvent.id))
        ).all()
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


@strawberry.type
class DeliveryEdge:
    cursor: str
    node: Delivery


@strawberry.type
class DeliveryConnection:
    edges: list[DeliveryEdge]
    page_info: PageInfo


@strawberry.input
class DropoffInput:
    lat: float
    lng: float
    line1: str | None = None
    city: str | None = None
    postal_code: str | None = None
    country: str | None = None


@strawberry.input
class RecipientInput:
    name: str
    phone: str | None = None
    email: str | None = None


@strawberry.input
class ParcelInput:
    weight_grams: int
    length_cm: int | None = None
    width_cm: int | None = None
    height_cm: int | None = None


@strawberry.input
class TimeWindowInput:
    start: datetime
    end: datetime


@strawberry.input(description="Everything needed to book one delivery.")
class BookDeliveryInput:
    reference: str = strawberry.field(description="Your own order reference.")
    service_area: str = strawberry.field(description='Service area code, e.g. "demo".')
    dropoff: DropoffInput
    recipient: RecipientInput
    parcel: ParcelInput
    idempotency_key: str | None = strawberry.field(
        default=None,
        description="Same key and same input returns the same delivery; different input "
        "with the same key is rejected with IDEMPOTENCY_CONFLICT.",
    )
    date: date | None = strawberry.field(
        default=None, description="Delivery day; default: the next day in the area's time zone."
    )
    time_window: TimeWindowInput | None = strawberry.field(
        default=None, description="Absent: any time in the area's delivery hours that day."
    )
    quote_id: strawberry.ID | None = strawberry.field(
        default=None,
        description="A quote from createQuote: the booking is billed its price. The area, "
        "day, drop-off and weight must match it, and the window be one it offered.",
    )

    def to_request(self) -> service.BookingRequest:
        """The booking in the service's terms (the API's input types stay in this layer)."""
        return service.BookingRequest(
            reference=self.reference,
            service_area=self.service_area,
            dropoff=service.Dropoff(
                lat=self.dropoff.lat,
                lng=self.dropoff.lng,
                line1=self.dropoff.line1,
                city=self.dropoff.city,
                postal_code=self.dropoff.postal_code,
                country=self.dropoff.country,
            ),
            recipient=service.Recipient(
                name=self.recipient.name, phone=self.recipient.phone, email=self.recipient.email
            ),
            parcel=service.Parcel(
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


@strawberry.type
class BookDeliveryPayload:
    delivery: Delivery | None
    user_errors: list[UserError]


@strawberry.type
class BookDeliveriesPayload:
    results: list[BookDeliveryPayload] = strawberry.field(description="One per input, in order.")
    user_errors: list[UserError] = strawberry.field(
        description="Problems with the request as a whole (e.g. too many inputs)."
    )


def _book_one(info: strawberry.Info, input: BookDeliveryInput, prefix: tuple[str, ...]) -> Any:
    """Book one input; a rejected input writes nothing (the service checks before writing)."""
    ctx = context_of(info)
    try:
        row = service.book(
            ctx.session, ctx.tenant_id, input.to_request(), ctx.now, sandbox=ctx.token.sandbox
        )
    except UserErrors as rejected:
        return BookDeliveryPayload(
            delivery=None, user_errors=[UserError.from_domain(e, prefix) for e in rejected.errors]
        )
    return BookDeliveryPayload(delivery=Delivery.from_row(row), user_errors=[])


@strawberry.type
class DeliveryQueries:
    @strawberry.field(
        permission_classes=[ReadDeliveries],
        description="One of your deliveries; null if it does not exist or is not yours.",
    )
    def delivery(self, info: strawberry.Info, id: strawberry.ID) -> Delivery | None:
        ctx = context_of(info)
        row = ctx.session.exec(
            select(models.Delivery).where(
                models.Delivery.id == str(id), models.Delivery.tenant_id == ctx.tenant_id
            )
        ).first()
        return Delivery.from_row(row) if row else None

    @strawberry.field(
        permission_classes=[ReadDeliveries],
        description="Your deliveries, oldest first. `first` is at most 100 (default 50).",
    )
    def deliveries(
        self, info: strawberry.Info, first: int | None = None, after: str | None = None
    ) -> DeliveryConnection:
        ctx = context_of(info)
        size = page_size(first)
        statement = select(models.Delivery).where(models.Delivery.tenant_id == ctx.tenant_id)
        if after is not None:
            statement = statement.where(models.Delivery.id > decode_cursor("Delivery", after))
        rows = ctx.session.exec(statement.order_by(col(models.Delivery.id)).limit(size + 1)).all()
        page = rows[:size]
        edges = [
            DeliveryEdge(cursor=encode_cursor("Delivery", r.id), node=Delivery.from_row(r))
            for r in page
        ]
        return DeliveryConnection(
            edges=edges,
            page_info=PageInfo(
                has_next_page=len(rows) > size,
                has_previous_page=after is not None,
                start_cursor=edges[0].cursor if edges else None,
                end_cursor=edges[-1].cursor if edges else None,
            ),
        )


@strawberry.type
class DeliveryMutations:
    @strawberry.mutation(permission_classes=[WriteDeliveries], description="Book one delivery.")
    def book_delivery(self, info: strawberry.Info, input: BookDeliveryInput) -> BookDeliveryPayload:
        payload: BookDeliveryPayload = _book_one(info, input, ())
        return payload

    @strawberry.mutation(
        permission_classes=[WriteDeliveries],
        description=f"Book up to {MAX_BULK_BOOKINGS} deliveries; each input succeeds or fails "
        "on its own, and results come back in input order.",
    )
    def book_deliveries(
        self, info: strawberry.Info, inputs: list[BookDeliveryInput]
    ) -> BookDeliveriesPayload:
        if len(inputs) > MAX_BULK_BOOKINGS:
            return BookDeliveriesPayload(
                results=[],
                user_errors=[
                    UserError(
                        field=["inputs"],
                        message=f"At most {MAX_BULK_BOOKINGS} inputs per call, got {len(inputs)}.",
                        code=service.UserErrorCode.TOO_MANY_INPUTS,
                    )
                ],
            )
        results = [_book_one(info, item, ("inputs", str(i))) for i, item in enumerate(inputs)]
        return BookDeliveriesPayload(results=results, user_errors=[])
