"""Quotes: a price and open windows, held for a while, honoured when booked."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import select

from services.api.oauth.tokens import issue_access_token
from services.api.seed import seed_demo
from services.core.db import transaction, utcnow
from services.core.models import Quote, UsageEvent
from tests.factories import BOOK, booking_input, graphql

CREATE = """mutation($input: CreateQuoteInput!) { createQuote(input: $input) {
  quote { id price { amount currency } date timeWindows { start end } expiresAt }
  userErrors { field code message } } }"""

DROPOFF = {"lat": 40.72, "lng": -74.0}
PARCEL = {"weightGrams": 2500}


@pytest.fixture
def token(db):
    with transaction() as session:
        merchant = seed_demo(session, utcnow().date())["merchants"][0]
    return issue_access_token(
        client_id=merchant["client_id"],
        tenant_id=merchant["tenant_id"],
        scope="deliveries:read deliveries:write billing:read",
    )[0]


def _quote(client, token, **overrides):
    body = graphql(
        client,
        token,
        CREATE,
        {"input": {"serviceArea": "demo", "dropoff": DROPOFF, "parcel": PARCEL, **overrides}},
    )
    return body["data"]["createQuote"]


def test_a_quote_prices_the_next_delivery_on_the_plan_and_lists_open_windows(client, token):
    payload = _quote(client, token)
    quote = payload["quote"]
    assert payload["userErrors"] == []
    # First delivery of the month on the growth plan: 2.50 + 2.5 kg x 0.10.
    assert quote["price"] == {"amount": "2.75", "currency": "USD"}
    windows = quote["timeWindows"]
    assert len(windows) == 6  # 08-10, 10-12, ..., 18-20 local
    assert windows[0]["start"].startswith(quote["date"]) and windows[0]["start"].endswith(
        "13:00:00+00:00"
    )


def test_booking_on_a_quote_is_billed_the_quoted_price_once(client, token):
    quote = _quote(client, token)["quote"]
    window = quote["timeWindows"][2]
    booking = booking_input(
        "quoted-1",
        dropoff=DROPOFF,
        parcel=PARCEL,
        date=quote["date"],
        timeWindow=window,
        quoteId=quote["id"],
    )
    booked = graphql(client, token, BOOK, {"input": booking})["data"]["bookDelivery"]
    assert booked["userErrors"] == []
    delivery_id = booked["delivery"]["id"]
    with transaction() as session:
        meters = {
            e.meter: e.quantity
            for e in session.exec(
                select(UsageEvent).where(UsageEvent.id.startswith(delivery_id))
            ).all()
        }
        assert session.get(Quote, quote["id"]).delivery_id == delivery_id
    assert meters == {"quoted_amount": 2.75, "active_recipients": 1}
    again = graphql(client, token, BOOK, {"input": {**booking, "reference": "quoted-2"}})
    assert [e["code"] for e in again["data"]["bookDelivery"]["userErrors"]] == ["QUOTE_EXPIRED"]


def test_a_booking_that_does_not_match_its_quote_is_refused(client, token):
    quote = _quote(client, token)["quote"]
    heavier = booking_input(
        "q", dropoff=DROPOFF, parcel={"weightGrams": 9000}, date=quote["date"], quoteId=quote["id"]
    )
    body = graphql(client, token, BOOK, {"input": heavier})
    assert [e["code"] for e in body["data"]["bookDelivery"]["userErrors"]] == ["QUOTE_MISMATCH"]
    odd_window = {"start": quote["timeWindows"][0]["start"], "end": quote["timeWindows"][1]["end"]}
    body = graphql(
        client,
        token,
        BOOK,
        {
            "input": booking_input(
                "q",
                dropoff=DROPOFF,
                parcel=PARCEL,
                date=quote["date"],
                timeWindow=odd_window,
                quoteId=quote["id"],
            )
        },
    )
    assert [e["code"] for e in body["data"]["bookDelivery"]["userErrors"]] == ["QUOTE_MISMATCH"]


def test_an_expired_quote_is_refused(client, token):
    quote = _quote(client, token)["quote"]
    with transaction() as session:
        row = session.get(Quote, quote["id"])
        row.expires_at = utcnow() - timedelta(seconds=1)
    body = graphql(
        client,
        token,
        BOOK,
        {
            "input": booking_input(
                "late", dropoff=DROPOFF, parcel=PARCEL, date=quote["date"], quoteId=quote["id"]
            )
        },
    )
    assert [e["code"] for e in body["data"]["bookDelivery"]["userErrors"]] == ["QUOTE_EXPIRED"]


def test_full_slots_are_not_offered(client, token, monkeypatch):
    from services.deliveries import quotes

    monkeypatch.setattr(quotes, "STOPS_PER_VAN_HOUR", 0)
    assert _quote(client, token)["quote"]["timeWindows"] == []


def test_quote_input_is_validated(client, token):
    payload = _quote(client, token, dropoff={"lat": 10.0, "lng": 10.0})
    assert payload["quote"] is None
    assert [e["code"] for e in payload["userErrors"]] == ["OUTSIDE_SERVICE_AREA"]


def test_one_quote_serves_one_booking_even_within_a_bulk_call(client, token):
    from tests.factories import BOOK_MANY

    quote = _quote(client, token)["quote"]
    booking = {"dropoff": DROPOFF, "parcel": PARCEL, "date": quote["date"], "quoteId": quote["id"]}
    inputs = [booking_input("q-1", **booking), booking_input("q-2", **booking)]
    results = graphql(client, token, BOOK_MANY, {"inputs": inputs})["data"]["bookDeliveries"][
        "results"
    ]
    assert results[0]["userErrors"] == []
    assert [e["code"] for e in results[1]["userErrors"]] == ["QUOTE_EXPIRED"]


def test_other_merchants_bookings_fill_the_slots_too(client, token, monkeypatch):
    """Capacity is the area's: under row-level security the quote still counts every
    merchant's bookings (services.core.db.across_tenants), never shows them."""
    from services.core import areas
    from services.core.models import ServiceArea, Shift
    from services.deliveries import quotes

    window = _quote(client, token)["quote"]["timeWindows"][2]
    with transaction() as session:
        other = seed_demo(session, utcnow().date())["merchants"][1]
        area = session.exec(select(ServiceArea).where(ServiceArea.code == "demo")).one()
        shifts = session.exec(select(Shift).where(Shift.area_id == area.id)).all()
        start = datetime.fromisoformat(window["start"])
        midnight = areas.local_midnight(area, start.astimezone(UTC).date())
        slot = (start, datetime.fromisoformat(window["end"]))
        van_hours = sum(
            quotes._hours(
                slot, (quotes._at(midnight, s.starts_at), quotes._at(midnight, s.ends_at))
            )
            for s in shifts
        )
    other_token = issue_access_token(
        client_id=other["client_id"], tenant_id=other["tenant_id"], scope="deliveries:write"
    )[0]
    booked = graphql(
        client, other_token, BOOK, {"input": booking_input("theirs", timeWindow=window)}
    )
    assert booked["data"]["bookDelivery"]["delivery"], booked
    monkeypatch.setattr(quotes, "STOPS_PER_VAN_HOUR", 1.5 / van_hours)  # room for 1.5
    offered = [w["start"] for w in _quote(client, token)["quote"]["timeWindows"]]
    assert window["start"] not in offered  # theirs plus one more would not fit
    monkeypatch.setattr(quotes, "STOPS_PER_VAN_HOUR", 2.5 / van_hours)
    assert window["start"] in [w["start"] for w in _quote(client, token)["quote"]["timeWindows"]]
