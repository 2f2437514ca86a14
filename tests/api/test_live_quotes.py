"""createQuote offers, once the day's routes are out, only what they can still take."""

from __future__ import annotations

from datetime import datetime

from services.core import areas
from services.core.db import transaction
from services.deliveries.validation import Dropoff, Parcel
from services.planner.live import servable_windows
from tests.factories import BOOK, booking_input, graphql, plan_demo_day

CREATE = """mutation($input: CreateQuoteInput!) { createQuote(input: $input) {
  quote { date timeWindows { start end } } userErrors { code } } }"""


def test_the_quote_offers_the_windows_the_live_plan_can_serve(client, merchant_token):
    graphql(client, merchant_token, BOOK, {"input": booking_input("planned")})
    asked = {"serviceArea": "demo", "dropoff": {"lat": 40.7, "lng": -73.95},
             "parcel": {"weightGrams": 2_000}}  # fmt: skip
    before = graphql(client, merchant_token, CREATE, {"input": asked})["data"]["createQuote"]
    day = datetime.fromisoformat(before["quote"]["date"]).date()
    plan_demo_day(day)

    after = graphql(client, merchant_token, CREATE, {"input": asked})["data"]["createQuote"]

    offered = [(w["start"], w["end"]) for w in after["quote"]["timeWindows"]]
    with transaction() as session:
        area = areas.get_area(session, "demo")
        candidates = [
            (datetime.fromisoformat(w["start"]), datetime.fromisoformat(w["end"]))
            for w in before["quote"]["timeWindows"]
        ]
        live = servable_windows(
            session, area, day, Dropoff(40.7, -73.95), Parcel(2_000), candidates
        )
    assert live is not None and len(live) < len(candidates)  # one route: not all day
    assert offered == [(a.isoformat(), b.isoformat()) for a, b in live]
