"""Deliveries: the searchable table, a delivery's page (timeline, proof, ETA, map of the
merchant's own stops), booking by form with a live quote, cancel, reschedule and export.
CSV bulk booking is `bulk`. Every rule is the delivery domain's: these handlers parse
the form, call the same services as GraphQL, and show what they answer."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import date, datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse

from services.accounts import merchant
from services.accounts.roles import Capability
from services.api.graphql.relay import decode_position, encode_position
from services.api.tracking import tracking_url
from services.api.web.client import Viewer, viewer
from services.api.web.layout import page
from services.api.web.session import check_csrf
from services.billing.quoting import marginal_price
from services.core import areas
from services.core.errors import UserErrors
from services.core.models import Delivery, DeliveryStatus
from services.core.money import currency_for, format_amount, from_minor
from services.deliveries import booking, lifecycle, listing, quotes, repository, validation

router = APIRouter()

PAGE_SIZE = 25
EXPORT_BATCH = 500
WRITE = "deliveries:write"
READ = "deliveries:read"

# Where the domain's error paths land on the booking form.
FORM_FIELDS = {
    "reference": "reference",
    "serviceArea": "service_area",
    "dropoff": "lat",
    "recipient.name": "recipient_name",
    "recipient.phone": "recipient_phone",
    "recipient.email": "recipient_email",
    "parcel.weightGrams": "weight_grams",
    "parcel.lengthCm": "length_cm",
    "parcel.widthCm": "width_cm",
    "parcel.heightCm": "height_cm",
    "date": "date",
    "timeWindow": "window",
    "quoteId": "window",
    "idempotencyKey": "reference",
}


def form_errors(rejected: UserErrors) -> dict[str, str]:
    errors: dict[str, str] = {}
    for error in rejected.errors:
        name = FORM_FIELDS.get(".".join(error.field), "form")
        errors.setdefault(name, error.message)
    return errors


def _filters(q: str, status: str, day: str) -> tuple[listing.Filters, dict[str, str]]:
    chosen = tuple(DeliveryStatus(s) for s in status.split(",") if s in set(DeliveryStatus))
    try:
        on = date.fromisoformat(day) if day else None
    except ValueError:
        on = None
    filters = listing.Filters(statuses=chosen, day=on, search=q.strip() or None)
    return filters, {"q": q, "status": status, "date": day}


@router.get("/dashboard/deliveries", response_class=HTMLResponse)
def table(
    request: Request,
    q: str = "",
    status: str = "",
    date: str = "",
    after: str = "",
    me: Viewer = Depends(viewer),
) -> HTMLResponse:
    me.require(Capability.VIEW_DELIVERIES, READ)
    filters, shown = _filters(q, status, date)
    try:
        position = decode_position("Delivery", after) if after else None
    except ValueError:
        position = None
    rows, more = listing.page(
        me.db, me.merchant, filters, listing.SortKey.CREATED_AT, True, PAGE_SIZE, position
    )
    next_cursor = (
        encode_position("Delivery", listing.position(rows[-1], listing.SortKey.CREATED_AT))
        if more and rows
        else None
    )
    return page(
        me,
        request,
        "deliveries.html",
        "Deliveries",
        rows=rows,
        filters=shown,
        statuses=list(DeliveryStatus),
        next_cursor=next_cursor,
        first_page=not after,
        can_write=me.can(Capability.MANAGE_DELIVERIES) and me.has_scope(WRITE),
    )


@router.get("/dashboard/deliveries/export.csv")
def export(
    q: str = "", status: str = "", date: str = "", me: Viewer = Depends(viewer)
) -> StreamingResponse:
    """Every delivery the filters find, newest first, read in pages as it streams."""
    me.require(Capability.VIEW_DELIVERIES, READ)
    filters, _ = _filters(q, status, date)
    header = [
        "id", "reference", "status", "date", "window_start", "window_end", "eta",
        "recipient_name", "recipient_phone", "recipient_email", "lat", "lng", "line1",
        "city", "postal_code", "country", "weight_grams", "attempt", "sandbox",
        "tracking_url", "created_at",
    ]  # fmt: skip

    def rows() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(header)
        after: list[str] | None = None
        while True:
            batch, more = listing.page(
                me.db, me.merchant, filters, listing.SortKey.CREATED_AT, True, EXPORT_BATCH, after
            )
            for d in batch:
                writer.writerow([
                    d.id, d.reference, d.status.value, d.date.isoformat(),
                    d.window_start.isoformat(), d.window_end.isoformat(),
                    d.eta.isoformat() if d.eta else "", d.recipient_name,
                    d.recipient_phone or "", d.recipient_email or "", d.dropoff_lat,
                    d.dropoff_lng, d.dropoff_line1 or "", d.dropoff_city or "",
                    d.dropoff_postal_code or "", d.dropoff_country or "", d.weight_grams,
                    d.attempt, str(d.sandbox).lower(), tracking_url(d.tracking_token),
                    d.created_at.isoformat(),
                ])  # fmt: skip
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
            if not more or not batch:
                return
            after = listing.position(batch[-1], listing.SortKey.CREATED_AT)

    return StreamingResponse(
        rows(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="deliveries.csv"'},
    )


def _booking_context(me: Viewer, form: dict[str, Any], errors: dict[str, str]) -> dict[str, Any]:
    known = areas.all_areas(me.db)
    default_code = merchant.settings_of(me.db, me.tenant_id).default_service_area
    code = form.get("service_area") or default_code or (known[0].code if known else "")
    area = next((a for a in known if a.code == code), known[0] if known else None)
    picker = (
        {
            "bounds": [[area.south, area.west], [area.north, area.east]],
            "depot": [area.depot_lat, area.depot_lng],
            "pick": True,
        }
        if area
        else None
    )
    return {
        "form": {"service_area": code, **form},
        "errors": errors,
        "areas": known,
        "picker": json.dumps(picker) if picker else None,
    }


@router.get("/dashboard/deliveries/new", response_class=HTMLResponse)
def booking_form(request: Request, me: Viewer = Depends(viewer)) -> HTMLResponse:
    me.require(Capability.MANAGE_DELIVERIES, WRITE)
    return page(me, request, "book.html", "Deliveries", **_booking_context(me, {}, {}))


def _number(value: str, kind: type = float) -> Any:
    value = value.strip()
    if not value:
        return None
    return kind(value)


def parse_booking(form: dict[str, str]) -> tuple[booking.BookingRequest | None, dict[str, str]]:
    """The booking a form asks for, or which fields are not even numbers or dates."""
    errors: dict[str, str] = {}
    values: dict[str, Any] = {}
    for name, kind in (
        ("lat", float), ("lng", float), ("weight_grams", int), ("length_cm", int),
        ("width_cm", int), ("height_cm", int),
    ):  # fmt: skip
        try:
            values[name] = _number(form.get(name, ""), kind)
        except ValueError:
            errors[name] = "Enter a number." if kind is float else "Enter a whole number."
    for required in ("lat", "lng", "weight_grams"):
        if values.get(required) is None and required not in errors:
            errors[required] = "Required."
    day = None
    if form.get("date"):
        try:
            day = date.fromisoformat(form["date"])
        except ValueError:
            errors["date"] = "Enter a date (YYYY-MM-DD)."
    window = None
    if form.get("window"):
        try:
            start, end = form["window"].split("|")
            window = (datetime.fromisoformat(start), datetime.fromisoformat(end))
        except ValueError:
            errors["window"] = "Choose one of the windows offered."
    if errors:
        return None, errors
    request = booking.BookingRequest(
        reference=form.get("reference", ""),
        service_area=form.get("service_area", ""),
        dropoff=validation.Dropoff(
            lat=values["lat"],
            lng=values["lng"],
            line1=form.get("line1") or None,
            city=form.get("city") or None,
            postal_code=form.get("postal_code") or None,
            country=form.get("country") or None,
        ),
        recipient=validation.Recipient(
            name=form.get("recipient_name", ""),
            phone=form.get("recipient_phone") or None,
            email=form.get("recipient_email") or None,
        ),
        parcel=validation.Parcel(
            weight_grams=values["weight_grams"],
            length_cm=values["length_cm"],
            width_cm=values["width_cm"],
            height_cm=values["height_cm"],
        ),
        date=day,
        time_window=window,
        quote_id=form.get("quote_id") or None,
        idempotency_key=form.get("idempotency_key") or None,
    )
    return request, {}


async def _form(request: Request) -> dict[str, str]:
    data = await request.form()
    return {key: value for key, value in data.items() if isinstance(value, str)}


@router.post("/dashboard/deliveries/quote", response_class=HTMLResponse)
async def live_quote(request: Request, me: Viewer = Depends(viewer)) -> HTMLResponse:
    """The quote fragment the booking form refreshes as it is filled in (htmx)."""
    check_csrf(request.headers.get("x-csrf-token"), me.csrf_token)
    me.require(Capability.MANAGE_DELIVERIES, WRITE)
    form = await _form(request)
    parsed, _ = parse_booking({**form, "window": "", "quote_id": ""})
    quote, problem = None, None
    if parsed is None:
        problem = "Enter the drop-off and the weight to see a price."
    else:
        try:
            quote = quotes.create_quote(
                me.db,
                me.tenant_id,
                quotes.QuoteRequest(
                    service_area=parsed.service_area,
                    dropoff=parsed.dropoff,
                    parcel=parsed.parcel,
                    date=parsed.date,
                ),
                me.now,
                marginal_price,
            )
        except UserErrors as rejected:
            problem = " ".join(e.message for e in rejected.errors)
    price = (
        format_amount(from_minor(quote.price_minor, currency_for(quote.currency)),
                      currency_for(quote.currency))
        if quote
        else None
    )  # fmt: skip
    return page(
        me,
        request,
        "_quote.html",
        "Deliveries",
        quote=quote,
        price=price,
        problem=problem,
        zone=_zone(me),
    )


def _zone(me: Viewer) -> str | None:
    code = merchant.settings_of(me.db, me.tenant_id).default_service_area
    area = areas.shared_area(me.db, code) if code else areas.first_area(me.db)
    return area.timezone if area else None


@router.post("/dashboard/deliveries", response_class=HTMLResponse)
async def book(request: Request, me: Viewer = Depends(viewer)) -> Response:
    form = await _form(request)
    check_csrf(form.get("csrf_token"), me.csrf_token)
    me.require(Capability.MANAGE_DELIVERIES, WRITE)
    parsed, errors = parse_booking(form)
    if parsed is not None:
        try:
            row = booking.book(me.db, me.tenant_id, parsed, me.now, sandbox=me.token.sandbox)
        except UserErrors as rejected:
            errors = form_errors(rejected)
        else:
            return RedirectResponse(
                f"/dashboard/deliveries/{row.id}?done=Booked+{row.reference}", status_code=303
            )
    return page(
        me,
        request,
        "book.html",
        "Deliveries",
        status_code=422,
        **_booking_context(me, form, errors),
    )


def _owned(me: Viewer, delivery_id: str) -> Delivery:
    row = repository.get(me.db, me.merchant, delivery_id)
    if row is None:  # another merchant's looks exactly like a missing one
        raise HTTPException(404, "No such delivery.")
    return row


@router.get("/dashboard/deliveries/{delivery_id}", response_class=HTMLResponse)
def delivery_page(request: Request, delivery_id: str, me: Viewer = Depends(viewer)) -> HTMLResponse:
    me.require(Capability.VIEW_DELIVERIES, READ)
    row = _owned(me, delivery_id)
    events = repository.events_of(me.db, me.tenant_id, row.id)
    area = areas.area_by_id(me.db, row.area_id)
    stops = repository.own_stops_on_route(me.db, me.merchant, row.route_id) if row.route_id else []
    map_data: dict[str, Any] = {
        "bounds": [[area.south, area.west], [area.north, area.east]] if area else None,
        "depot": [area.depot_lat, area.depot_lng] if area else None,
        "stops": [
            {
                "n": stop.stop_number,
                "at": [stop.dropoff_lat, stop.dropoff_lng],
                "label": stop.reference,
                "current": stop.id == row.id,
            }
            for stop in stops
        ]
        or [
            {
                "n": None,
                "at": [row.dropoff_lat, row.dropoff_lng],
                "label": row.reference,
                "current": True,
            }
        ],
    }
    proof = next((e.proof for e in reversed(events) if e.status == DeliveryStatus.DELIVERED), None)
    return page(
        me,
        request,
        "delivery.html",
        "Deliveries",
        delivery=row,
        events=events,
        area=area,
        zone=area.timezone if area else None,
        stops=stops,
        map_data=json.dumps(map_data),
        proof=proof,
        tracking=tracking_url(row.tracking_token),
        can_change=me.can(Capability.MANAGE_DELIVERIES)
        and me.has_scope(WRITE)
        and row.status in lifecycle.CHANGEABLE,
    )


def _change(
    me: Viewer,
    csrf_token: str,
    delivery_id: str,
    operation: str,
    action: lifecycle.Change,
    done: str,
) -> RedirectResponse:
    """Apply a change through the delivery's lifecycle (as `cancelDelivery` and
    `rescheduleDelivery` do), then back to its page saying what happened."""
    check_csrf(csrf_token, me.csrf_token)
    me.require(Capability.MANAGE_DELIVERIES, WRITE)
    try:
        lifecycle.change(
            me.db,
            lifecycle.Actor(principal=me.tenant_id, merchant=me.merchant),
            delivery_id,
            me.now,
            action,
            operation=operation,
            idempotency_key=None,
            request=None,
        )
    except UserErrors as rejected:
        return _back(delivery_id, " ".join(e.message for e in rejected.errors))
    return _back(delivery_id, done)


@router.post("/dashboard/deliveries/{delivery_id}/cancel")
def cancel(
    delivery_id: str,
    csrf_token: str = Form(""),
    reason: str = Form(""),
    me: Viewer = Depends(viewer),
) -> Response:
    return _change(
        me, csrf_token, delivery_id, "cancelDelivery",
        lambda s, row, now: lifecycle.cancel(s, row, now, reason or None), "Cancelled.",
    )  # fmt: skip


@router.post("/dashboard/deliveries/{delivery_id}/reschedule")
def reschedule(
    delivery_id: str,
    csrf_token: str = Form(""),
    day: str = Form(""),
    me: Viewer = Depends(viewer),
) -> Response:
    try:
        new_day = date.fromisoformat(day)
    except ValueError:
        return _back(delivery_id, "Choose a day.")
    return _change(
        me, csrf_token, delivery_id, "rescheduleDelivery",
        lambda s, row, now: lifecycle.reschedule(s, row, now, new_day, None),
        f"Rescheduled to {new_day}.",
    )  # fmt: skip


def _back(delivery_id: str, message: str) -> RedirectResponse:
    return RedirectResponse(
        f"/dashboard/deliveries/{delivery_id}?{urlencode({'done': message})}", status_code=303
    )
