"""Subscriptions end with their token, are bounded per merchant, and miss no event, even
one committed after a later one."""

from __future__ import annotations

import time

import pytest
from starlette.websockets import WebSocketDisconnect

from services.api.oauth import tokens
from services.core.db import transaction, utcnow
from services.core.models import DeliveryEvent, DeliveryStatus
from services.core.settings import get_settings
from tests.factories import BOOK, booking_input, graphql

SUBSCRIBE = "subscription { deliveryUpdates { deliveryId reference status detail } }"


def _connect(ws, token: str) -> None:
    ws.send_json({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}})
    assert ws.receive_json()["type"] == "connection_ack"


def _subscribe(ws, operation: str = "1") -> None:
    ws.send_json({"id": operation, "type": "subscribe", "payload": {"query": SUBSCRIBE}})


def _book(client, token: str, reference: str) -> str:
    body = graphql(client, token, BOOK, {"input": booking_input(reference)})
    return str(body["data"]["bookDelivery"]["delivery"]["id"])


def test_a_subscription_ends_when_its_token_expires(client, live, monkeypatch):
    with client.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as ws:
        _connect(ws, live)
        _subscribe(ws)
        _book(client, live, "before")
        assert ws.receive_json()["type"] == "next"
        later = time.time() + 2 * get_settings().access_token_ttl_seconds
        monkeypatch.setattr(tokens, "_clock", lambda: later)
        with pytest.raises(WebSocketDisconnect) as closed:
            for _ in range(5):  # the feed notices at its next poll
                ws.receive_json()
    assert closed.value.code == 4401


def test_a_merchant_holds_a_bounded_number_of_subscriptions(client, live, monkeypatch):
    monkeypatch.setattr(get_settings(), "subscriptions_per_merchant", 2)
    with client.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as ws:
        _connect(ws, live)
        _subscribe(ws, "1")
        _subscribe(ws, "2")
        _subscribe(ws, "3")
        refused = ws.receive_json()
        assert (refused["id"], refused["type"]) == ("3", "error")
        assert refused["payload"][0]["extensions"]["code"] == "TOO_MANY_SUBSCRIPTIONS"
        ws.send_json({"id": "1", "type": "complete"})
        _subscribe(ws, "4")  # a slot freed
        _book(client, live, "counted")
        received = {ws.receive_json()["id"] for _ in range(2)}
        assert received == {"2", "4"}


def test_an_event_committed_after_a_later_one_is_still_delivered(client, live, engine):
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time")
    with client.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as ws:
        _connect(ws, live)
        _subscribe(ws)
        first = _book(client, live, "first")
        assert ws.receive_json()["payload"]["data"]["deliveryUpdates"]["deliveryId"] == first
        with transaction() as late:  # its event's id is older than the next booking's
            with late.begin_nested():
                row = late.get(DeliveryEvent, _event_of(first))
                late.add(
                    DeliveryEvent(
                        tenant_id=row.tenant_id,
                        delivery_id=first,
                        status=DeliveryStatus.BOOKED,
                        at=utcnow(),
                        detail="committed late",
                    )
                )
            late.flush()
            second = _book(client, live, "second")
            assert ws.receive_json()["payload"]["data"]["deliveryUpdates"]["deliveryId"] == second
        third = _book(client, live, "third")
        updates = [ws.receive_json()["payload"]["data"]["deliveryUpdates"] for _ in range(2)]
        assert [(u["deliveryId"], u["detail"]) for u in updates] == [
            (first, "committed late"),
            (third, None),
        ]


def _event_of(delivery_id: str) -> str:
    from sqlmodel import select

    with transaction() as session:
        return session.exec(
            select(DeliveryEvent.id).where(DeliveryEvent.delivery_id == delivery_id)
        ).one()
