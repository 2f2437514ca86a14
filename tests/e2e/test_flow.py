"""The whole flow over HTTP: tokens, bookings, a shared plan, isolation, the invoice."""

from __future__ import annotations

from datetime import datetime, time, timedelta

from sqlalchemy import func
from sqlmodel import select

from services.api.seed import seed_demo
from services.core.db import transaction, utcnow
from services.core.models import Delivery, OutboxEvent, PlanRunStatus, UsageEvent
from services.planner import runs
from tests.factories import (
    BOOK,
    DELIVERIES,
    DELIVERY,
    DEMO_ZONE,
    INVOICE_PREVIEW,
    booking_input,
    days_ahead,
    graphql,
    token,
)


def _counts(engine) -> tuple[int, int, int]:
    with transaction(engine) as session:
        return tuple(  # type: ignore[return-value]
            session.exec(select(func.count()).select_from(table)).one()
            for table in (Delivery, UsageEvent, OutboxEvent)
        )


def test_two_merchants_book_share_routes_and_see_only_their_own(client, db):
    with transaction() as session:
        demo = seed_demo(session, utcnow().date())
    acme, bluebird = demo["merchants"]
    acme_token = token(client, acme["client_id"], acme["client_secret"])
    bluebird_token = token(client, bluebird["client_id"], bluebird["client_secret"])
    tomorrow = days_ahead(1)

    def at(hour: int) -> str:  # an hour of tomorrow, New York time
        return datetime.combine(tomorrow, time(hour), DEMO_ZONE).isoformat()

    # Each merchant books twelve deliveries for tomorrow, some with a two-hour window.
    booked: dict[str, list[str]] = {"acme": [], "bluebird": []}
    for name, access_token in (("acme", acme_token), ("bluebird", bluebird_token)):
        for i in range(12):
            extra = {"idempotencyKey": f"{name}-{i}"}
            if i % 3 == 0:
                start = datetime.combine(tomorrow, datetime.min.time(), DEMO_ZONE) + timedelta(
                    hours=10 + i // 3
                )
                extra["timeWindow"] = {
                    "start": start.isoformat(),
                    "end": (start + timedelta(hours=2)).isoformat(),
                }
            body = graphql(
                client, access_token, BOOK, {"input": booking_input(f"{name}-{i}", **extra)}
            )
            payload = body["data"]["bookDelivery"]
            assert payload["userErrors"] == []
            assert payload["delivery"]["status"] == "BOOKED"
            booked[name].append(payload["delivery"]["id"])

    # A retried booking with the same key and input returns the same delivery.
    retry = graphql(
        client, acme_token, BOOK, {"input": booking_input("acme-1", idempotencyKey="acme-1")}
    )
    assert retry["data"]["bookDelivery"]["delivery"]["id"] == booked["acme"][1]
    # The same key with different input is a conflict, and writes nothing.
    before = _counts(db)
    conflict = graphql(
        client,
        acme_token,
        BOOK,
        {"input": booking_input("acme-1-changed", idempotencyKey="acme-1")},
    )
    assert conflict["data"]["bookDelivery"]["delivery"] is None
    assert [e["code"] for e in conflict["data"]["bookDelivery"]["userErrors"]] == [
        "IDEMPOTENCY_CONFLICT"
    ]
    # Bad inputs get specific userErrors and write nothing.
    bad_inputs = {
        "SERVICE_AREA_NOT_FOUND": booking_input("bad-1", serviceArea="atlantis"),
        "OUTSIDE_SERVICE_AREA": booking_input("bad-2", dropoff={"lat": 41.5, "lng": -74.0}),
        "PARCEL_TOO_HEAVY": booking_input("bad-3", parcel={"weightGrams": 95_000}),
        "INVALID_TIME_WINDOW": booking_input(
            "bad-4",
            timeWindow={"start": at(15), "end": at(14)},
        ),
        "TIME_WINDOW_OUTSIDE_SERVICE_HOURS": booking_input(
            "bad-5",
            timeWindow={"start": at(5), "end": at(7)},
        ),
        "DATE_NOT_BOOKABLE": booking_input("bad-6", date="2020-01-01"),
        "REQUIRED": booking_input("   "),
    }
    for code, bad in bad_inputs.items():
        body = graphql(client, bluebird_token, BOOK, {"input": bad})
        payload = body["data"]["bookDelivery"]
        assert payload["delivery"] is None, code
        assert code in [e["code"] for e in payload["userErrors"]], payload
    assert _counts(db) == before

    # The area is planned: both merchants' parcels ride the same vans.
    with transaction() as session:
        run = runs.request_plan(session, "demo", tomorrow, "test", time_limit=3)
    result = runs.execute(run.id)
    assert result.status == PlanRunStatus.DONE
    assert result.deliveries_planned == 24 and result.deliveries_unplanned == 0

    routes_by_merchant: dict[str, set[str]] = {"acme": set(), "bluebird": set()}
    for name, access_token in (("acme", acme_token), ("bluebird", bluebird_token)):
        for delivery_id in booked[name]:
            delivery = graphql(client, access_token, DELIVERY, {"id": delivery_id})["data"][
                "delivery"
            ]
            assert delivery["status"] == "PLANNED"
            eta = datetime.fromisoformat(delivery["eta"])
            window = delivery["timeWindow"]
            assert (
                datetime.fromisoformat(window["start"])
                <= eta
                <= datetime.fromisoformat(window["end"])
            )
            assert delivery["route"]["stopNumber"] >= 1
            assert [e["status"] for e in delivery["events"]] == ["BOOKED", "PLANNED"]
            routes_by_merchant[name].add(delivery["route"]["id"])
    assert routes_by_merchant["acme"] & routes_by_merchant["bluebird"], "no shared route"

    # Neither merchant can see the other's deliveries, one by one or in the list.
    assert graphql(client, bluebird_token, DELIVERY, {"id": booked["acme"][0]})["data"] == {
        "delivery": None
    }
    listed = graphql(client, bluebird_token, DELIVERIES, {"first": 100})["data"]["deliveries"]
    assert {edge["node"]["id"] for edge in listed["edges"]} == set(booked["bluebird"])

    # The invoice preview prices the bookings: 12 deliveries at 2.50 on the growth plan.
    preview = graphql(client, acme_token, INVOICE_PREVIEW)["data"]["invoicePreview"]
    lines = {line["meter"]: line for line in preview["lines"]}
    assert lines["deliveries"] == {"meter": "deliveries", "quantity": "12", "amount": "30.00"}
    assert lines["parcel_kg"]["quantity"] == "18"
    assert preview["total"] == "100.00"  # the plan's minimum commitment
    assert preview["lines"][-1]["meter"] == "minimum_commitment"
