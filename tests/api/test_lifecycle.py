"""A delivery's life after booking: merchant changes, driver execution, sandbox, tracking."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import pytest
from sqlmodel import select

from services.core.db import transaction
from services.core.models import Delivery, DeliveryEvent, Stop, UsageEvent
from tests.factories import (
    BOOK,
    DELIVERY,
    DEMO_ZONE,
    booking_input,
    graphql,
    merchant_access_token,
    operator_access_token,
    plan_demo_day,
)

PAYLOAD = (
    "delivery { id status attempt date route { id stopNumber } } userErrors { field code message }"
)


def _mutation(name: str, input_type: str) -> str:
    return f"mutation($input: {input_type}!) {{ {name}(input: $input) {{ {PAYLOAD} }} }}"


CANCEL = _mutation("cancelDelivery", "CancelDeliveryInput")
RESCHEDULE = _mutation("rescheduleDelivery", "RescheduleDeliveryInput")
UPDATE_RECIPIENT = _mutation("updateDeliveryRecipient", "UpdateDeliveryRecipientInput")
START = _mutation("startDelivery", "StartDeliveryInput")
COMPLETE = _mutation("completeDelivery", "CompleteDeliveryInput")
FAIL = _mutation("failDeliveryAttempt", "FailDeliveryAttemptInput")
RETURN = _mutation("returnDelivery", "ReturnDeliveryInput")
SIMULATE = _mutation("simulateDelivery", "SimulateDeliveryInput")


@pytest.fixture
def merchant(demo):
    return merchant_access_token(demo)


@pytest.fixture
def other_merchant(demo):
    return merchant_access_token(demo, 1)


@pytest.fixture
def sandbox(demo):
    return merchant_access_token(demo, sandbox=True)


@pytest.fixture
def operator(demo):
    return operator_access_token()


def _book(client, access_token, reference="o-1", **overrides) -> dict:
    body = graphql(client, access_token, BOOK, {"input": booking_input(reference, **overrides)})
    return body["data"]["bookDelivery"]["delivery"]


def _plan(delivery_date: str) -> None:
    """Plan the demo area's day; every open delivery must be on a route after it."""
    done = plan_demo_day(date.fromisoformat(delivery_date))
    assert (done.status, done.error, done.deliveries_unplanned) == ("DONE", None, 0), done


def _result(body: dict, name: str) -> dict:
    assert "errors" not in body, body
    return body["data"][name]


def _codes(payload: dict) -> list[str]:
    return [e["code"] for e in payload["userErrors"]]


def _usage(delivery_id: str) -> list[str]:
    with transaction() as session:
        return sorted(
            session.exec(select(UsageEvent.id).where(UsageEvent.id.startswith(delivery_id))).all()
        )


def test_cancelling_a_booked_delivery_is_free(client, merchant):
    delivery = _book(client, merchant)
    payload = _result(
        graphql(client, merchant, CANCEL, {"input": {"id": delivery["id"]}}), "cancelDelivery"
    )
    assert payload["delivery"]["status"] == "CANCELLED"
    usage = _usage(delivery["id"])
    assert f"{delivery['id']}:cancelled" in usage
    assert f"{delivery['id']}:cancelled_late" not in usage


def test_cancelling_a_planned_delivery_takes_it_off_its_route_and_is_charged(client, merchant):
    delivery = _book(client, merchant)
    _plan(delivery_date(client, merchant, delivery["id"]))
    payload = _result(
        graphql(
            client, merchant, CANCEL, {"input": {"id": delivery["id"], "reason": "customer asked"}}
        ),
        "cancelDelivery",
    )
    assert payload["delivery"]["status"] == "CANCELLED"
    assert payload["delivery"]["route"] is None
    with transaction() as session:
        assert session.exec(select(Stop).where(Stop.delivery_id == delivery["id"])).first() is None
    assert f"{delivery['id']}:cancelled_late" in _usage(delivery["id"])


def delivery_date(client, access_token, delivery_id: str) -> str:
    query = "query($id: ID!) { delivery(id: $id) { date } }"
    return graphql(client, access_token, query, {"id": delivery_id})["data"]["delivery"]["date"]


def test_the_driver_flow_with_proof_and_locations(client, merchant, operator):
    delivery = _book(client, merchant)
    _plan(delivery_date(client, merchant, delivery["id"]))
    here = {"lat": 40.71, "lng": -74.01}
    started = _result(
        graphql(client, operator, START, {"input": {"id": delivery["id"], "location": here}}),
        "startDelivery",
    )
    assert started["delivery"]["status"] == "OUT_FOR_DELIVERY"
    # Cancelling is no longer possible once the van has left.
    refused = _result(
        graphql(client, merchant, CANCEL, {"input": {"id": delivery["id"]}}), "cancelDelivery"
    )
    assert _codes(refused) == ["INVALID_TRANSITION"]
    no_proof = _result(
        graphql(client, operator, COMPLETE, {"input": {"id": delivery["id"], "proof": {}}}),
        "completeDelivery",
    )
    assert _codes(no_proof) == ["REQUIRED"]
    done = _result(
        graphql(
            client,
            operator,
            COMPLETE,
            {
                "input": {
                    "id": delivery["id"],
                    "proof": {"signatureName": "J. Doe", "pin": "4821"},
                    "location": here,
                }
            },
        ),
        "completeDelivery",
    )
    assert done["delivery"]["status"] == "DELIVERED"
    events = graphql(
        client,
        merchant,
        "query($id: ID!) { delivery(id: $id) { events { status location { lat lng } } } }",
        {"id": delivery["id"]},
    )["data"]["delivery"]["events"]
    assert [e["status"] for e in events] == ["BOOKED", "PLANNED", "OUT_FOR_DELIVERY", "DELIVERED"]
    assert events[-1]["location"] == here
    with transaction() as session:
        proof = session.exec(
            select(DeliveryEvent.proof).where(
                DeliveryEvent.delivery_id == delivery["id"], DeliveryEvent.status == "DELIVERED"
            )
        ).one()
    assert proof == {"signature_name": "J. Doe", "photo_reference": None, "pin": "4821"}
    assert f"{delivery['id']}:delivered" in _usage(delivery["id"])


def test_failed_attempts_are_retried_then_returned(client, merchant, operator):
    delivery = _book(client, merchant)
    first_day = delivery_date(client, merchant, delivery["id"])
    for attempt in (1, 2, 3):
        _plan(delivery_date(client, merchant, delivery["id"]))
        _result(
            graphql(client, operator, START, {"input": {"id": delivery["id"]}}), "startDelivery"
        )
        failed = _result(
            graphql(
                client,
                operator,
                FAIL,
                {
                    "input": {
                        "id": delivery["id"],
                        "reason": "RECIPIENT_ABSENT",
                        "note": "no answer",
                    }
                },
            ),
            "failDeliveryAttempt",
        )["delivery"]
        if attempt < 3:
            assert failed["status"] == "BOOKED" and failed["attempt"] == attempt + 1
        else:
            assert failed["status"] == "FAILED" and failed["attempt"] == 3
    assert date.fromisoformat(failed["date"]) == date.fromisoformat(first_day) + timedelta(days=2)
    returned = _result(
        graphql(client, operator, RETURN, {"input": {"id": delivery["id"]}}), "returnDelivery"
    )
    assert returned["delivery"]["status"] == "RETURNED"
    failures = [i for i in _usage(delivery["id"]) if ":failed:" in i]
    assert failures == [f"{delivery['id']}:failed:{n}" for n in (1, 2, 3)]


def test_rescheduling_moves_a_planned_delivery_back_to_booked(client, merchant):
    delivery = _book(client, merchant)
    day = delivery_date(client, merchant, delivery["id"])
    _plan(day)
    moved_to = date.fromisoformat(day) + timedelta(days=2)
    later = moved_to.isoformat()
    start = datetime.combine(moved_to, time(14), DEMO_ZONE)
    window = {"start": start.isoformat(), "end": (start + timedelta(hours=2)).isoformat()}
    moved = _result(
        graphql(
            client,
            merchant,
            RESCHEDULE,
            {"input": {"id": delivery["id"], "date": later, "timeWindow": window}},
        ),
        "rescheduleDelivery",
    )["delivery"]
    assert moved["status"] == "BOOKED" and moved["date"] == later and moved["route"] is None
    bad = _result(
        graphql(
            client, merchant, RESCHEDULE, {"input": {"id": delivery["id"], "date": "2020-01-01"}}
        ),
        "rescheduleDelivery",
    )
    assert _codes(bad) == ["DATE_NOT_BOOKABLE"]


def test_recipient_updates_are_validated(client, merchant):
    delivery = _book(client, merchant)
    bad = _result(
        graphql(
            client,
            merchant,
            UPDATE_RECIPIENT,
            {"input": {"id": delivery["id"], "recipient": {"name": "Ann", "email": "nope"}}},
        ),
        "updateDeliveryRecipient",
    )
    assert _codes(bad) == ["INVALID"]
    good = _result(
        graphql(
            client,
            merchant,
            UPDATE_RECIPIENT,
            {
                "input": {
                    "id": delivery["id"],
                    "recipient": {"name": "Ann", "email": "ann@example.com"},
                }
            },
        ),
        "updateDeliveryRecipient",
    )
    assert good["userErrors"] == []
    with transaction() as session:
        assert session.get(Delivery, delivery["id"]).recipient_email == "ann@example.com"


def test_another_merchants_delivery_cannot_be_changed(client, merchant, other_merchant):
    delivery = _book(client, merchant)
    payload = _result(
        graphql(client, other_merchant, CANCEL, {"input": {"id": delivery["id"]}}), "cancelDelivery"
    )
    assert _codes(payload) == ["NOT_FOUND"]
    with transaction() as session:
        assert session.get(Delivery, delivery["id"]).status == "BOOKED"


def test_merchants_cannot_report_execution(client, merchant):
    delivery = _book(client, merchant)
    body = graphql(client, merchant, START, {"input": {"id": delivery["id"]}})
    assert body["errors"][0]["extensions"]["code"] == "ACCESS_DENIED"


def test_a_retried_change_with_its_key_acts_once(client, merchant):
    delivery = _book(client, merchant)
    change = {"id": delivery["id"], "idempotencyKey": "cancel-1"}
    first = _result(graphql(client, merchant, CANCEL, {"input": change}), "cancelDelivery")
    again = _result(graphql(client, merchant, CANCEL, {"input": change}), "cancelDelivery")
    assert first == again
    with transaction() as session:
        cancellations = session.exec(
            select(DeliveryEvent).where(
                DeliveryEvent.delivery_id == delivery["id"], DeliveryEvent.status == "CANCELLED"
            )
        ).all()
    assert len(cancellations) == 1
    conflict = _result(
        graphql(client, merchant, CANCEL, {"input": {**change, "reason": "other"}}),
        "cancelDelivery",
    )
    assert _codes(conflict) == ["IDEMPOTENCY_CONFLICT"]


def test_sandbox_deliveries_are_simulated_never_routed_nor_billed(client, merchant, sandbox):
    test_delivery = _book(client, sandbox, "sandbox-1")
    live_delivery = _book(client, merchant, "live-1")
    _plan(delivery_date(client, sandbox, test_delivery["id"]))
    with transaction() as session:
        assert session.get(Delivery, test_delivery["id"]).status == "BOOKED"
        assert session.get(Delivery, live_delivery["id"]).status == "PLANNED"
    assert _usage(test_delivery["id"]) == []

    simulated = _result(
        graphql(
            client,
            sandbox,
            SIMULATE,
            {"input": {"id": test_delivery["id"], "outcome": "DELIVERED"}},
        ),
        "simulateDelivery",
    )
    assert simulated["delivery"]["status"] == "DELIVERED"
    history = graphql(client, sandbox, DELIVERY, {"id": test_delivery["id"]})["data"]["delivery"][
        "events"
    ]
    assert [e["status"] for e in history] == ["BOOKED", "PLANNED", "OUT_FOR_DELIVERY", "DELIVERED"]

    live = _result(
        graphql(
            client, merchant, SIMULATE, {"input": {"id": live_delivery["id"], "outcome": "FAILED"}}
        ),
        "simulateDelivery",
    )
    assert _codes(live) == ["NOT_SANDBOX"]
    crossed = _result(
        graphql(client, sandbox, CANCEL, {"input": {"id": live_delivery["id"]}}), "cancelDelivery"
    )
    assert _codes(crossed) == ["NOT_FOUND"]


def test_public_tracking_shows_progress_and_no_merchant_data(client, merchant):
    delivery = _book(client, merchant, "secret-order-42")
    url = graphql(
        client,
        merchant,
        "query($id: ID!) { delivery(id: $id) { trackingUrl } }",
        {"id": delivery["id"]},
    )["data"]["delivery"]["trackingUrl"]
    page = client.get(url)
    assert page.status_code == 200
    body = page.json()
    assert body["status"] == "BOOKED"
    assert [e["status"] for e in body["events"]] == ["BOOKED"]
    assert "secret-order-42" not in page.text and delivery["id"] not in page.text
    assert client.get("/track/trk_doesnotexist").status_code == 404
