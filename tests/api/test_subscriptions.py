"""Live delivery updates over WebSocket (graphql-transport-ws)."""

from __future__ import annotations

import pytest
from starlette.websockets import WebSocketDisconnect

from services.api.oauth.tokens import issue_access_token
from services.api.seed import seed_demo
from services.core.db import transaction, utcnow
from services.deliveries import booking, validation

SUBSCRIBE = "subscription { deliveryUpdates { deliveryId reference status } }"


@pytest.fixture
def merchants(db):
    with transaction() as session:
        return seed_demo(session, utcnow().date())["merchants"]


def _token(merchant) -> str:
    return issue_access_token(
        client_id=merchant["client_id"],
        tenant_id=merchant["tenant_id"],
        scope="deliveries:read deliveries:write billing:read",
    )[0]


def _book(tenant_id: str, reference: str) -> str:
    request = booking.BookingRequest(
        reference=reference,
        service_area="demo",
        dropoff=validation.Dropoff(lat=40.7, lng=-74.0),
        recipient=validation.Recipient(name="Ada"),
        parcel=validation.Parcel(weight_grams=900),
    )
    with transaction() as session:
        return booking.book(session, tenant_id, request, utcnow()).id


def test_a_merchant_receives_its_own_updates_only(client, merchants):
    acme, bluebird = merchants
    with client.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as ws:
        ws.send_json(
            {"type": "connection_init", "payload": {"Authorization": f"Bearer {_token(acme)}"}}
        )
        assert ws.receive_json()["type"] == "connection_ack"
        ws.send_json({"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIBE}})
        _book(bluebird["tenant_id"], "not-yours")
        mine = _book(acme["tenant_id"], "yours")
        message = ws.receive_json()
        assert message["type"] == "next", message
        assert message["payload"]["data"]["deliveryUpdates"] == {
            "deliveryId": mine,
            "reference": "yours",
            "status": "BOOKED",
        }
        ws.send_json({"id": "1", "type": "complete"})


def test_a_websocket_without_a_valid_token_is_rejected(client, merchants):
    with client.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as ws:
        ws.send_json({"type": "connection_init", "payload": {"Authorization": "Bearer forged"}})
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
    assert closed.value.code == 4403
