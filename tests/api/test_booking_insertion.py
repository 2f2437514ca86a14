"""A booking that arrives after its day's routes exist joins one at booking time."""

from __future__ import annotations

from services.core.db import transaction
from services.core.models import Delivery, DeliveryStatus
from services.planner import tasks
from tests.factories import BOOK, BOOK_MANY, booking_input, graphql, plan_demo_day


def _status(delivery_id: str) -> tuple[str, str | None]:
    with transaction() as session:
        row = session.get(Delivery, delivery_id)
        return row.status, row.unplanned_reason


def test_a_booking_after_the_wave_is_inserted_once_it_commits(client, merchant_token, monkeypatch):
    sent: list[tuple[str, str]] = []

    def run_now(area_id: str, day: str) -> None:  # the worker, without the broker
        sent.append((area_id, day))
        tasks.insert_bookings(area_id, day)

    monkeypatch.setattr(tasks.insert_bookings, "delay", run_now)
    first = graphql(client, merchant_token, BOOK, {"input": booking_input("early")})
    booked = first["data"]["bookDelivery"]["delivery"]
    # The day has no routes yet: nothing to insert into, the wave plans it.
    assert len(sent) == 1 and _status(booked["id"]) == (DeliveryStatus.BOOKED, None)
    with transaction() as session:
        day = session.get(Delivery, booked["id"]).date
    plan_demo_day(day)
    assert _status(booked["id"])[0] == DeliveryStatus.PLANNED

    late = graphql(client, merchant_token, BOOK, {"input": booking_input("late")})
    late_id = late["data"]["bookDelivery"]["delivery"]["id"]
    assert late["data"]["bookDelivery"]["delivery"]["status"] == "BOOKED"

    assert len(sent) == 2 and sent[-1][1] == day.isoformat()
    assert _status(late_id)[0] == DeliveryStatus.PLANNED


def test_bulk_bookings_ask_once_per_area_day(client, merchant_token, monkeypatch):
    sent: list[tuple[str, str]] = []
    monkeypatch.setattr(tasks.insert_bookings, "delay", lambda *args: sent.append(args))
    inputs = [booking_input(f"bulk-{k}") for k in range(3)]
    graphql(client, merchant_token, BOOK_MANY, {"inputs": inputs})
    assert len(sent) == 1
