"""A shared route shows each merchant its own stops only: their order among its own
parcels, never a number that counts other merchants' stops before or between them."""

from __future__ import annotations

from sqlmodel import select

from services.core.db import transaction, utcnow
from services.core.models import DeliveryEvent, OutboxEvent
from tests.billing.world import book, plan_by_hand
from tests.factories import DELIVERY, graphql, merchant_access_token


def test_a_merchant_sees_its_own_stops_order_and_no_one_elses(client, demo):
    acme, bluebird = (m["tenant_id"] for m in demo["merchants"])
    with transaction() as session:
        first, second = book(session, acme, 2, utcnow())
        (theirs,) = book(session, bluebird, 1, utcnow(), offset=0.01)
        plan_by_hand(session, [[theirs, first, second]], cost_minor=10_000)
        ids = (first.id, second.id, theirs.id)

    def stop_number(delivery_id: str, merchant: int) -> int:
        token = merchant_access_token(demo, merchant)
        body = graphql(client, token, DELIVERY, {"id": delivery_id})
        return int(body["data"]["delivery"]["route"]["stopNumber"])

    numbers = {ids[0]: stop_number(ids[0], 0), ids[1]: stop_number(ids[1], 0)}
    numbers[ids[2]] = stop_number(ids[2], 1)
    assert numbers == {ids[0]: 1, ids[1]: 2, ids[2]: 1}
    with transaction() as session:
        details = session.exec(select(DeliveryEvent.detail).where(DeliveryEvent.detail != None))  # noqa: E711
        assert not any("stop" in detail for detail in details)
        payloads = session.exec(
            select(OutboxEvent.payload).where(OutboxEvent.topic == "delivery.planned")
        ).all()
    assert payloads and all("stop_number" not in payload for payload in payloads)
