"""Booking over GraphQL: validation, idempotency under concurrency, pagination, bulk, scopes."""

from __future__ import annotations

import hashlib
import json
import random
import threading
from dataclasses import asdict, replace
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from services.core import db
from services.core.db import transaction, utcnow
from services.core.errors import UserErrors
from services.core.models import (
    Delivery,
    DeliveryEvent,
    DeliveryStatus,
    OutboxEvent,
    UsageEvent,
)
from services.deliveries import booking, validation
from tests.factories import (
    BOOK,
    BOOK_MANY,
    DELIVERIES,
    booking_input,
    days_ahead,
    graphql,
    merchant_access_token,
    operator_access_token,
    statements_sent,
)


def _count(model) -> int:
    with transaction() as session:
        return session.exec(select(func.count()).select_from(model)).one()


def _meters() -> dict[str, int]:
    with transaction() as session:
        rows = session.exec(select(UsageEvent.meter, func.count()).group_by(UsageEvent.meter)).all()
    return dict(rows)


def test_a_booking_writes_delivery_event_usage_and_outbox_together(client, demo):
    body = graphql(client, merchant_access_token(demo), BOOK, {"input": booking_input("o-1")})
    delivery_id = body["data"]["bookDelivery"]["delivery"]["id"]
    with transaction() as session:
        assert session.get(Delivery, delivery_id).reference == "o-1"
        assert session.exec(
            select(DeliveryEvent.status).where(DeliveryEvent.delivery_id == delivery_id)
        ).all() == ["BOOKED"]
        meters = session.exec(
            select(UsageEvent.meter).where(UsageEvent.id.startswith(delivery_id))
        ).all()
        assert sorted(meters) == ["active_recipients", "deliveries", "parcel_kg"]
        assert session.exec(select(OutboxEvent.topic)).all() == ["delivery.booked"]


def test_a_tracking_event_must_name_a_delivery_of_its_own_tenant(client, demo):
    body = graphql(client, merchant_access_token(demo), BOOK, {"input": booking_input("o-1")})
    delivery_id = body["data"]["bookDelivery"]["delivery"]["id"]
    owner, other = (merchant["tenant_id"] for merchant in demo["merchants"][:2])
    for tenant_id, target in ((other, delivery_id), (owner, "dlv_missing")):
        with pytest.raises(IntegrityError), transaction() as session:
            session.add(
                DeliveryEvent(tenant_id=tenant_id, delivery_id=target, status=DeliveryStatus.BOOKED)
            )
    assert _count(DeliveryEvent) == 1


def test_every_validation_problem_is_reported_at_once(client, demo):
    bad = booking_input(
        "o-2",
        recipient={"name": " ", "email": "not-an-email", "phone": "call me"},
        parcel={"weightGrams": 0, "lengthCm": 400},
    )
    errors = graphql(client, merchant_access_token(demo), BOOK, {"input": bad})["data"][
        "bookDelivery"
    ]["userErrors"]
    assert {(tuple(e["field"]), e["code"]) for e in errors} == {
        (("recipient", "name"), "REQUIRED"),
        (("recipient", "email"), "INVALID"),
        (("recipient", "phone"), "INVALID"),
        (("parcel", "weightGrams"), "INVALID"),
        (("parcel", "lengthCm"), "PARCEL_TOO_LARGE"),
    }
    assert _count(Delivery) == 0


def test_concurrent_bookings_with_one_key_create_one_delivery(demo):
    tenant_id = demo["merchants"][0]["tenant_id"]
    request = booking.BookingRequest(
        reference="race",
        service_area="demo",
        dropoff=validation.Dropoff(lat=40.7, lng=-74.0),
        recipient=validation.Recipient(name="Racer"),
        parcel=validation.Parcel(weight_grams=500),
        idempotency_key="same-key",
    )
    barrier = threading.Barrier(6)
    results: list[str] = []

    def book() -> None:
        barrier.wait()
        with transaction() as session:
            results.append(booking.book(session, tenant_id, request, utcnow()).id)

    threads = [threading.Thread(target=book) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 6 and len(set(results)) == 1
    assert _count(Delivery) == 1
    assert _count(UsageEvent) == 3


def test_a_conflicting_replay_raises_and_writes_nothing(demo):
    tenant_id = demo["merchants"][0]["tenant_id"]
    base = dict(
        service_area="demo",
        dropoff=validation.Dropoff(lat=40.7, lng=-74.0),
        recipient=validation.Recipient(name="A"),
        parcel=validation.Parcel(weight_grams=500),
        idempotency_key="k",
    )
    with transaction() as session:
        booking.book(session, tenant_id, booking.BookingRequest(reference="a", **base), utcnow())
    with pytest.raises(UserErrors) as rejected, transaction() as session:
        booking.book(session, tenant_id, booking.BookingRequest(reference="b", **base), utcnow())
    assert rejected.value.errors[0].code == "IDEMPOTENCY_CONFLICT"
    assert _count(Delivery) == 1


def test_the_fingerprint_is_the_input_without_its_key_hashed_as_stored_keys_expect():
    """Keys are kept a week: the fingerprint of an input must not change across releases."""
    request = booking.BookingRequest(
        reference="r-1",
        service_area="demo",
        dropoff=validation.Dropoff(lat=40.7, lng=-74.0, line1="1 Main St", country="US"),
        recipient=validation.Recipient(name="A", phone="+1 201 555 0100"),
        parcel=validation.Parcel(weight_grams=500, length_cm=20),
        date=date(2026, 11, 24),
        time_window=(datetime(2026, 11, 24, 9, tzinfo=UTC), datetime(2026, 11, 24, 11, tzinfo=UTC)),
        idempotency_key="k-1",
    )
    content = asdict(request)
    del content["idempotency_key"]
    stored_form = json.dumps(content, sort_keys=True, default=str).encode()
    assert request.fingerprint() == hashlib.sha256(stored_form).hexdigest()
    assert replace(request, idempotency_key="k-2").fingerprint() == request.fingerprint()
    changed = replace(request, parcel=validation.Parcel(weight_grams=501, length_cm=20))
    assert changed.fingerprint() != request.fingerprint()


def test_keys_are_per_tenant(client, demo):
    first = graphql(
        client,
        merchant_access_token(demo, 0),
        BOOK,
        {"input": booking_input("a", idempotencyKey="k")},
    )
    second = graphql(
        client,
        merchant_access_token(demo, 1),
        BOOK,
        {"input": booking_input("a", idempotencyKey="k")},
    )
    assert (
        first["data"]["bookDelivery"]["delivery"]["id"]
        != second["data"]["bookDelivery"]["delivery"]["id"]
    )


def test_deliveries_paginate_with_opaque_cursors(client, demo):
    access_token = merchant_access_token(demo)
    inputs = [booking_input(f"p-{i}") for i in range(7)]
    graphql(client, access_token, BOOK_MANY, {"inputs": inputs})
    seen: list[str] = []
    after = None
    while True:
        page = graphql(client, access_token, DELIVERIES, {"first": 3, "after": after})["data"][
            "deliveries"
        ]
        seen += [edge["node"]["reference"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == [f"p-{i}" for i in range(7)]


@pytest.mark.parametrize(
    ("variables", "message"),
    [({"first": 101}, "between 0 and 100"), ({"after": "garbage!"}, "Invalid cursor")],
)
def test_bad_pagination_arguments_are_errors(client, demo, variables, message):
    body = graphql(client, merchant_access_token(demo), DELIVERIES, variables)
    assert body["data"] is None
    assert message in body["errors"][0]["message"]


def test_bulk_booking_returns_results_in_order_and_keeps_the_valid_ones(client, demo):
    inputs = [
        booking_input("ok-1"),
        booking_input("bad", parcel={"weightGrams": -5}),
        booking_input("ok-2"),
    ]
    body = graphql(client, merchant_access_token(demo), BOOK_MANY, {"inputs": inputs})
    results = body["data"]["bookDeliveries"]["results"]
    assert [r["delivery"] and r["delivery"]["reference"] for r in results] == ["ok-1", None, "ok-2"]
    assert results[1]["userErrors"][0]["field"] == ["inputs", "1", "parcel", "weightGrams"]
    assert _count(Delivery) == 2


def test_a_big_bulk_booking_stores_what_single_bookings_store(client, demo):
    """From BULK_MIN_ROWS rows a table is written from one JSON document: the rows must
    not differ."""
    access_token = merchant_access_token(demo)
    count = db.BULK_MIN_ROWS + 5
    bulk = [booking_input(f"bulk-{i}", rng=random.Random(i)) for i in range(count)]
    body = graphql(client, access_token, BOOK_MANY, {"inputs": bulk})
    assert all(r["delivery"] for r in body["data"]["bookDeliveries"]["results"])
    for i in range(3):
        single = booking_input(f"single-{i}", rng=random.Random(i))
        assert graphql(client, access_token, BOOK, {"input": single})["data"]["bookDelivery"]
    with transaction() as session:
        stored = {d.reference: d for d in session.exec(select(Delivery)).all()}
        events = session.exec(select(DeliveryEvent)).all()
        announced = session.exec(select(OutboxEvent)).all()
    assert len(stored) == count + 3
    varying = {
        "id", "reference", "recipient_name", "tracking_token", "created_at", "updated_at",
        "request_id",  # each request has its own
    }  # fmt: skip
    for i in range(3):
        bulk_row, single_row = stored[f"bulk-{i}"], stored[f"single-{i}"]
        assert bulk_row.model_dump(exclude=varying) == single_row.model_dump(exclude=varying)
        assert bulk_row.status is DeliveryStatus.BOOKED and bulk_row.window_start.tzinfo
    assert sorted(e.delivery_id for e in events) == sorted(d.id for d in stored.values())
    assert {e.status for e in events} == {DeliveryStatus.BOOKED}
    booked = {e.payload["delivery_id"]: e.payload for e in announced}
    assert booked[stored["bulk-7"].id] == {
        "delivery_id": stored["bulk-7"].id,
        "reference": "bulk-7",
        "status": "BOOKED",
    }
    assert len(booked) == count + 3


@pytest.mark.parametrize("count", [1, db.BULK_MIN_ROWS])
def test_a_booking_is_six_statements_whatever_the_count(client, demo, engine, count):
    """Set the transaction's tenant and mode (row-level security), claim the keys, write
    deliveries, tracking events, usage (with the request's own api_requests event) and
    outbox events: one statement each, for 1 or 50 bookings."""
    if engine.dialect.name != "postgresql":
        pytest.skip("counts the statements sent to PostgreSQL")
    access_token = merchant_access_token(demo)
    graphql(client, access_token, BOOK, {"input": booking_input("warm")})  # areas, token
    inputs = [booking_input(f"n-{i}", idempotencyKey=f"n-{i}") for i in range(count)]
    with statements_sent() as sent:
        body = graphql(client, access_token, BOOK_MANY, {"inputs": inputs})
    assert all(r["delivery"] for r in body["data"]["bookDeliveries"]["results"])
    verbs = [" ".join(statement.split()[:3]) for statement in sent]
    assert verbs == [
        "SELECT set_config('lastmile.tenant_id', %s,",
        "INSERT INTO idempotency_record",
        "INSERT INTO delivery",
        "INSERT INTO delivery_event",
        "WITH account AS",
        "INSERT INTO outbox_event",
    ]


def test_bulk_booking_is_capped(client, demo):
    inputs = [booking_input(f"x-{i}") for i in range(251)]
    body = graphql(client, merchant_access_token(demo), BOOK_MANY, {"inputs": inputs})
    assert body["data"]["bookDeliveries"]["userErrors"][0]["code"] == "TOO_MANY_INPUTS"
    assert _count(Delivery) == 0


@pytest.mark.parametrize(
    ("where", "path"),
    [
        ("reference", "$.variables.inputs[1].reference"),
        ("recipient", "$.variables.inputs[1].recipient.name"),
        ("idempotencyKey", "$.variables.inputs[1].idempotencyKey"),
    ],
)
def test_a_nul_character_in_any_text_is_refused_saying_where(client, demo, where, path):
    """PostgreSQL text cannot hold U+0000: refused on the way in, not by the database."""
    inputs = [booking_input("ok"), booking_input("bad")]
    if where == "recipient":
        inputs[1]["recipient"]["name"] = "Ada\u0000"
    else:
        inputs[1][where] = "bad\u0000"
    headers = {"Authorization": f"Bearer {merchant_access_token(demo)}"}
    response = client.post(
        "/graphql", json={"query": BOOK_MANY, "variables": {"inputs": inputs}}, headers=headers
    )
    assert response.status_code == 400
    assert response.text == f"Text values cannot contain the NUL character (U+0000): {path}."
    by_get = client.get(
        "/graphql",
        params={"query": DELIVERIES, "variables": json.dumps({"after": "x\u0000"})},
        headers=headers,
    )
    assert by_get.status_code == 400
    assert by_get.text.endswith("): $.after.")
    assert _count(Delivery) == 0


def test_a_nul_in_a_document_literal_is_refused_and_an_escaped_backslash_is_text(client, demo):
    access_token = merchant_access_token(demo)
    body = graphql(
        client, access_token, '{ deliveries(reference: "a\\u0000") { edges { cursor } } }'
    )
    assert body["errors"][0]["extensions"]["code"] == "INVALID_TEXT"
    # A backslash followed by "u0000" is six ordinary characters, not a NUL.
    text = "back\\u0000slash"
    body = graphql(client, access_token, BOOK, {"input": booking_input(text)})
    assert body["data"]["bookDelivery"]["delivery"]["reference"] == text


def test_a_read_only_token_cannot_book(client, demo):
    access_token = merchant_access_token(demo, scope="deliveries:read")
    body = graphql(client, access_token, BOOK, {"input": booking_input("o")})
    assert body["errors"][0]["extensions"]["code"] == "ACCESS_DENIED"
    assert _count(Delivery) == 0


def test_the_operator_token_sees_no_merchant_data(client, demo):
    access_token = operator_access_token()
    body = graphql(client, access_token, DELIVERIES)
    assert body["errors"][0]["extensions"]["code"] == "ACCESS_DENIED"


@pytest.mark.parametrize("header", [None, "Bearer not-a-jwt", "Basic abc"])
def test_requests_without_a_valid_token_are_refused(client, demo, header):
    headers = {"Authorization": header} if header else {}
    response = client.post(
        "/graphql", json={"query": "{ deliveries { edges { cursor } } }"}, headers=headers
    )
    assert response.status_code == 401
    assert "Bearer" in response.headers["www-authenticate"]


def test_idempotency_keys_are_kept_a_week_then_forgotten(client, demo):
    from datetime import timedelta

    from services.api.tasks import purge_idempotency_keys
    from services.core import idempotency
    from services.core.models import IdempotencyRecord

    token = merchant_access_token(demo)
    graphql(client, token, BOOK, {"input": booking_input("kept", idempotencyKey="kept")})
    graphql(client, token, BOOK, {"input": booking_input("old", idempotencyKey="old")})
    with transaction() as session:
        old = session.exec(select(IdempotencyRecord).where(IdempotencyRecord.key == "old")).one()
        old.created_at = utcnow() - idempotency.RETENTION - timedelta(minutes=1)
    assert purge_idempotency_keys() == 1
    with transaction() as session:
        assert session.exec(select(IdempotencyRecord.key)).all() == ["kept"]


def test_a_bulk_call_repeating_a_key_books_once(client, demo):
    same = booking_input("twice", idempotencyKey="dup")
    body = graphql(client, merchant_access_token(demo), BOOK_MANY, {"inputs": [same, same]})
    first, second = body["data"]["bookDeliveries"]["results"]
    assert first["delivery"]["id"] == second["delivery"]["id"]
    assert _count(Delivery) == 1
    assert _meters() == {"deliveries": 1, "parcel_kg": 1, "active_recipients": 1, "api_requests": 1}


def test_a_bulk_call_reusing_a_key_for_other_input_conflicts_on_the_later_one(client, demo):
    first = booking_input("one", idempotencyKey="shared")
    other = booking_input("two", idempotencyKey="shared")
    body = graphql(client, merchant_access_token(demo), BOOK_MANY, {"inputs": [first, other]})
    booked, refused = body["data"]["bookDeliveries"]["results"]
    assert booked["userErrors"] == [] and booked["delivery"]["id"]
    assert refused["delivery"] is None
    assert [e["code"] for e in refused["userErrors"]] == ["IDEMPOTENCY_CONFLICT"]
    assert _count(Delivery) == 1


def test_a_retry_replays_even_when_the_input_would_now_be_refused(demo):
    """Stripe's rule: the same key and input give the same result, whenever retried."""
    from datetime import timedelta

    tenant_id = demo["merchants"][0]["tenant_id"]
    now = utcnow()
    request = booking.BookingRequest(
        reference="retried",
        service_area="demo",
        dropoff=validation.Dropoff(lat=40.7, lng=-74.0),
        recipient=validation.Recipient(name="Late Retrier"),
        parcel=validation.Parcel(weight_grams=500),
        date=days_ahead(1),
        idempotency_key="retry-later",
    )
    with transaction() as session:
        booked = booking.book(session, tenant_id, request, now).id
    later = now + timedelta(days=3)  # the delivery day has passed: a new booking is refused
    with pytest.raises(UserErrors) as refused, transaction() as session:
        booking.book(
            session,
            tenant_id,
            booking.BookingRequest(**{**request.__dict__, "idempotency_key": None}),
            later,
        )
    assert refused.value.errors[0].code == "DATE_NOT_BOOKABLE"
    with transaction() as session:
        assert booking.book(session, tenant_id, request, later).id == booked
    assert _count(Delivery) == 1


def test_an_area_change_applies_to_the_next_booking(client, demo):
    from services.core.models import ServiceArea

    token = merchant_access_token(demo)
    inside = booking_input("before", dropoff={"lat": 40.70, "lng": -74.0})
    assert graphql(client, token, BOOK, {"input": inside})["data"]["bookDelivery"]["delivery"]
    with transaction() as session:  # the operator shrinks the area south of the drop-off
        area = session.exec(select(ServiceArea).where(ServiceArea.code == "demo")).one()
        area.north = 40.69
    again = graphql(client, token, BOOK, {"input": {**inside, "reference": "after"}})
    codes = [e["code"] for e in again["data"]["bookDelivery"]["userErrors"]]
    assert codes == ["OUTSIDE_SERVICE_AREA"]


def test_each_merchant_operation_is_metered_as_one_api_request(client, demo):
    token = merchant_access_token(demo)
    graphql(client, token, BOOK, {"input": booking_input("metered")})
    graphql(client, token, DELIVERIES, {"first": 5})
    refused = graphql(client, token, BOOK, {"input": booking_input("", idempotencyKey="x")})
    assert refused["data"]["bookDelivery"]["userErrors"]  # refused: nothing changes
    graphql(client, merchant_access_token(demo, sandbox=True), DELIVERIES, {"first": 5})
    graphql(client, operator_access_token(), "{ __typename }")
    assert _meters()["api_requests"] == 2  # the booking and the merchant's own listing
    with transaction() as session:
        tenants = session.exec(
            select(UsageEvent.tenant_id).where(UsageEvent.meter == "api_requests")
        ).all()
    assert set(tenants) == {demo["merchants"][0]["tenant_id"]}
