"""Live and sandbox never see each other: a merchant's sandbox credentials reach none of
its live data or controls, and the reverse (docs/integration.md, "The sandbox")."""

from __future__ import annotations

import pytest

from services.webhooks import tasks
from tests.factories import (
    BOOK,
    DELIVERIES,
    DELIVERY,
    INVOICE_PREVIEW,
    booking_input,
    graphql,
)

SUBSCRIBE = "subscription { deliveryUpdates { deliveryId reference status } }"
CREATE_ENDPOINT = """
mutation Create($input: CreateWebhookEndpointInput!) {
  createWebhookEndpoint(input: $input) { webhookEndpoint { id } userErrors { code } }
}"""
ENDPOINT = "query Endpoint($id: ID!) { webhookEndpoint(id: $id) { id url } }"
ENDPOINTS = "{ webhookEndpoints { edges { node { id } } } }"
MESSAGES = "{ webhookMessages { edges { node { id payload } } } }"
ENDPOINT_CHANGES = {
    "updateWebhookEndpoint": """mutation M($id: ID!) {
        updateWebhookEndpoint(input: {id: $id, url: "https://evil.example/hooks"}) {
          userErrors { code } } }""",
    "rotateWebhookSecret": """mutation M($id: ID!) {
        rotateWebhookSecret(id: $id) { secret userErrors { code } } }""",
    "disableWebhookEndpoint": """mutation M($id: ID!) {
        disableWebhookEndpoint(id: $id) { userErrors { code } } }""",
    "enableWebhookEndpoint": """mutation M($id: ID!) {
        enableWebhookEndpoint(id: $id) { userErrors { code } } }""",
    "deleteWebhookEndpoint": """mutation M($id: ID!) {
        deleteWebhookEndpoint(id: $id) { userErrors { code } } }""",
}


def _book(client, token: str, reference: str, **overrides) -> str:
    body = graphql(client, token, BOOK, {"input": booking_input(reference, **overrides)})
    delivery = body["data"]["bookDelivery"]["delivery"]
    assert delivery, body
    return str(delivery["id"])


@pytest.mark.parametrize("reader", ["live", "sandbox"])
def test_a_delivery_of_the_other_mode_is_as_absent_as_a_missing_one(client, live, sandbox, reader):
    tokens = {"live": live, "sandbox": sandbox}
    other = tokens["sandbox" if reader == "live" else "live"]
    theirs = _book(client, other, "other-mode")
    mine = _book(client, tokens[reader], "same-mode")

    assert graphql(client, tokens[reader], DELIVERY, {"id": theirs})["data"]["delivery"] is None
    listed = graphql(client, tokens[reader], DELIVERIES)["data"]["deliveries"]["edges"]
    assert [edge["node"]["id"] for edge in listed] == [mine]


def test_a_sandbox_subscription_receives_sandbox_updates_only(client, live, sandbox):
    with client.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as ws:
        ws.send_json({"type": "connection_init", "payload": {"Authorization": f"Bearer {sandbox}"}})
        assert ws.receive_json()["type"] == "connection_ack"
        ws.send_json({"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIBE}})
        _book(client, live, "live-order")
        mine = _book(client, sandbox, "test-order")
        message = ws.receive_json()
        assert message["payload"]["data"]["deliveryUpdates"] == {
            "deliveryId": mine,
            "reference": "test-order",
            "status": "BOOKED",
        }
        ws.send_json({"id": "1", "type": "complete"})


def test_sandbox_credentials_cannot_read_billing(client, live, sandbox):
    _book(client, live, "billed")
    body = graphql(client, sandbox, INVOICE_PREVIEW)
    assert body["data"] == {"invoicePreview": None}
    assert body["errors"][0]["extensions"]["code"] == "ACCESS_DENIED"
    for export in ("usage.csv?from=2026-01-01&to=2026-02-01", "invoices.csv"):
        response = client.get(
            f"/billing/export/{export}", headers={"Authorization": f"Bearer {sandbox}"}
        )
        assert response.status_code == 403, response.text


def test_sandbox_credentials_neither_read_nor_change_live_webhooks(client, live, sandbox):
    created = graphql(
        client,
        live,
        CREATE_ENDPOINT,
        {"input": {"url": "https://acme.example/hooks", "eventTypes": ["delivery.booked"]}},
    )
    endpoint_id = created["data"]["createWebhookEndpoint"]["webhookEndpoint"]["id"]
    _book(client, live, "live-order")
    tasks.dispatch_outbox()
    assert graphql(client, live, MESSAGES)["data"]["webhookMessages"]["edges"]

    assert (
        graphql(client, sandbox, ENDPOINT, {"id": endpoint_id})["data"]["webhookEndpoint"] is None
    )
    assert graphql(client, sandbox, ENDPOINTS)["data"]["webhookEndpoints"]["edges"] == []
    assert graphql(client, sandbox, MESSAGES)["data"]["webhookMessages"]["edges"] == []
    for name, mutation in ENDPOINT_CHANGES.items():
        payload = graphql(client, sandbox, mutation, {"id": endpoint_id})["data"][name]
        assert [e["code"] for e in payload["userErrors"]] == ["NOT_FOUND"], name
    mine = graphql(client, live, ENDPOINT, {"id": endpoint_id})["data"]["webhookEndpoint"]
    assert mine["url"] == "https://acme.example/hooks"
