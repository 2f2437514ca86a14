"""Webhooks over GraphQL: endpoints, validation, scopes, tenant isolation, the log, replays."""

from __future__ import annotations

import pytest

from services.api.oauth.tokens import issue_access_token
from services.webhooks import delivery, tasks
from services.webhooks.signing import verify
from tests.factories import BOOK, booking_input, graphql
from tests.webhooks.receiver import Receiver

ENDPOINT_FIELDS = "id url eventTypes enabled disabledReason previousSecretExpiresAt"
CREATE = f"""
mutation Create($input: CreateWebhookEndpointInput!) {{
  createWebhookEndpoint(input: $input) {{
    webhookEndpoint {{ {ENDPOINT_FIELDS} }} secret userErrors {{ field message code }}
  }}
}}"""
UPDATE = f"""
mutation Update($input: UpdateWebhookEndpointInput!) {{
  updateWebhookEndpoint(input: $input) {{
    webhookEndpoint {{ {ENDPOINT_FIELDS} }} userErrors {{ field message code }}
  }}
}}"""
DELETE = """
mutation Delete($id: ID!) {
  deleteWebhookEndpoint(id: $id) { deletedWebhookEndpointId userErrors { field code } }
}"""
DISABLE = f"""
mutation Disable($id: ID!) {{
  disableWebhookEndpoint(id: $id) {{
    webhookEndpoint {{ {ENDPOINT_FIELDS} }} userErrors {{ code }}
  }}
}}"""
ENABLE = f"""
mutation Enable($id: ID!) {{
  enableWebhookEndpoint(id: $id) {{
    webhookEndpoint {{ {ENDPOINT_FIELDS} }} userErrors {{ code }}
  }}
}}"""
ROTATE = f"""
mutation Rotate($id: ID!, $overlapHours: Int) {{
  rotateWebhookSecret(id: $id, overlapHours: $overlapHours) {{
    webhookEndpoint {{ {ENDPOINT_FIELDS} }} secret userErrors {{ field code }}
  }}
}}"""
REPLAY = """
mutation Replay($id: ID!) {
  replayWebhookMessage(id: $id) {
    webhookMessage { id status attemptCount } userErrors { field code }
  }
}"""
ENDPOINTS = f"""
query Endpoints($first: Int, $after: String) {{
  webhookEndpoints(first: $first, after: $after) {{
    edges {{ cursor node {{ {ENDPOINT_FIELDS} }} }} pageInfo {{ hasNextPage endCursor }}
  }}
}}"""
ENDPOINT = f"query Endpoint($id: ID!) {{ webhookEndpoint(id: $id) {{ {ENDPOINT_FIELDS} }} }}"
MESSAGES = """
query Messages($endpointId: ID, $status: WebhookMessageStatus) {
  webhookMessages(endpointId: $endpointId, status: $status) {
    edges { node {
      id eventType status attemptCount payload
      attempts { statusCode responseExcerpt error durationMs }
    } }
  }
}"""


@pytest.fixture
def target():
    """A webhook receiver on 127.0.0.1 that answers 200."""
    receiver = Receiver()
    yield receiver
    receiver.close()


def _token(demo, index: int = 0, scope: str = "deliveries:read deliveries:write") -> str:
    merchant = demo["merchants"][index]
    access_token, _ = issue_access_token(
        client_id=merchant["client_id"], tenant_id=merchant["tenant_id"], scope=scope
    )
    return access_token


def _create(client, token: str, url: str, *event_types: str) -> dict:
    event_types = event_types or ("delivery.booked",)
    body = graphql(client, token, CREATE, {"input": {"url": url, "eventTypes": list(event_types)}})
    return body["data"]["createWebhookEndpoint"]


def test_an_endpoint_is_created_with_a_secret_shown_once(client, demo):
    token = _token(demo)
    created = _create(client, token, "https://acme.example/hooks", "delivery.booked")
    assert created["userErrors"] == []
    assert created["secret"].startswith("whsec_")
    endpoint = created["webhookEndpoint"]
    assert endpoint["eventTypes"] == ["delivery.booked"] and endpoint["enabled"]

    listed = graphql(client, token, ENDPOINTS)["data"]["webhookEndpoints"]
    assert [edge["node"] for edge in listed["edges"]] == [endpoint]
    assert "secret" not in ENDPOINT_FIELDS  # nothing reads a secret back


def test_plain_http_is_accepted_for_local_development_only(client, demo):
    token = _token(demo)
    assert _create(client, token, "http://localhost:3000/hooks")["userErrors"] == []
    assert _create(client, token, "http://127.0.0.1:3000/hooks")["userErrors"] == []
    (error,) = _create(client, token, "http://acme.example/hooks")["userErrors"]
    assert (error["field"], error["code"]) == (["url"], "INVALID_URL")


def test_every_problem_with_an_endpoint_is_reported_and_nothing_is_written(client, demo):
    token = _token(demo)
    created = _create(client, token, "ftp://acme.example", "delivery.booked", "delivery.teleported")
    assert created["webhookEndpoint"] is None and created["secret"] is None
    assert {(tuple(e["field"]), e["code"]) for e in created["userErrors"]} == {
        (("url",), "INVALID_URL"),
        (("eventTypes", "1"), "UNKNOWN_EVENT_TYPE"),
    }
    body = graphql(client, token, CREATE, {"input": {"url": "https://a.example", "eventTypes": []}})
    (error,) = body["data"]["createWebhookEndpoint"]["userErrors"]
    assert (error["field"], error["code"]) == (["eventTypes"], "REQUIRED")
    assert graphql(client, token, ENDPOINTS)["data"]["webhookEndpoints"]["edges"] == []


def test_an_endpoint_is_updated_paused_resumed_and_deleted(client, demo):
    token = _token(demo)
    endpoint_id = _create(client, token, "https://acme.example/v1")["webhookEndpoint"]["id"]

    updated = graphql(
        client,
        token,
        UPDATE,
        {"input": {"id": endpoint_id, "eventTypes": ["delivery.delivered", "delivery.failed"]}},
    )["data"]["updateWebhookEndpoint"]["webhookEndpoint"]
    assert updated["url"] == "https://acme.example/v1"
    assert updated["eventTypes"] == ["delivery.delivered", "delivery.failed"]

    paused = graphql(client, token, DISABLE, {"id": endpoint_id})["data"]
    assert paused["disableWebhookEndpoint"]["webhookEndpoint"]["enabled"] is False
    resumed = graphql(client, token, ENABLE, {"id": endpoint_id})["data"]
    assert resumed["enableWebhookEndpoint"]["webhookEndpoint"]["enabled"] is True

    deleted = graphql(client, token, DELETE, {"id": endpoint_id})["data"]["deleteWebhookEndpoint"]
    assert deleted == {"deletedWebhookEndpointId": endpoint_id, "userErrors": []}
    assert graphql(client, token, ENDPOINT, {"id": endpoint_id})["data"]["webhookEndpoint"] is None
    again = graphql(client, token, DELETE, {"id": endpoint_id})["data"]["deleteWebhookEndpoint"]
    assert again["userErrors"] == [{"field": ["id"], "code": "NOT_FOUND"}]


def test_another_tenants_endpoint_is_indistinguishable_from_a_missing_one(client, demo):
    acme, bluebird = _token(demo, 0), _token(demo, 1)
    endpoint_id = _create(client, acme, "https://acme.example/hooks")["webhookEndpoint"]["id"]

    assert (
        graphql(client, bluebird, ENDPOINT, {"id": endpoint_id})["data"]["webhookEndpoint"] is None
    )
    assert graphql(client, bluebird, ENDPOINTS)["data"]["webhookEndpoints"]["edges"] == []
    for mutation, variables, name in (
        (
            UPDATE,
            {"input": {"id": endpoint_id, "url": "https://evil.example"}},
            "updateWebhookEndpoint",
        ),
        (DELETE, {"id": endpoint_id}, "deleteWebhookEndpoint"),
        (DISABLE, {"id": endpoint_id}, "disableWebhookEndpoint"),
        (ROTATE, {"id": endpoint_id}, "rotateWebhookSecret"),
    ):
        payload = graphql(client, bluebird, mutation, variables)["data"][name]
        assert [e["code"] for e in payload["userErrors"]] == ["NOT_FOUND"]
    missing = graphql(client, bluebird, DELETE, {"id": "whe_doesnotexist"})["data"]
    assert [e["code"] for e in missing["deleteWebhookEndpoint"]["userErrors"]] == ["NOT_FOUND"]
    mine = graphql(client, acme, ENDPOINT, {"id": endpoint_id})["data"]["webhookEndpoint"]
    assert mine["url"] == "https://acme.example/hooks" and mine["enabled"]


def test_reading_is_not_enough_to_change_webhooks(client, demo):
    body = graphql(
        client,
        _token(demo, scope="deliveries:read"),
        CREATE,
        {"input": {"url": "https://acme.example/hooks", "eventTypes": ["delivery.booked"]}},
    )
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "ACCESS_DENIED"


def test_a_booking_is_delivered_logged_and_replayed_only_for_its_merchant(client, demo, target):
    acme, bluebird = _token(demo, 0), _token(demo, 1)
    endpoint_id = _create(client, acme, target.url, "delivery.booked")["webhookEndpoint"]["id"]
    _create(client, bluebird, "https://bluebird.example/hooks", "delivery.booked")

    booked = graphql(client, acme, BOOK, {"input": booking_input("o-1")})
    delivery_id = booked["data"]["bookDelivery"]["delivery"]["id"]
    assert tasks.dispatch_outbox() >= 1  # what the beat (or the commit's kick) runs

    messages = graphql(client, acme, MESSAGES, {"endpointId": endpoint_id})["data"]
    (edge,) = messages["webhookMessages"]["edges"]
    message = edge["node"]
    assert message["payload"]["data"]["delivery_id"] == delivery_id
    assert delivery.deliver(message["id"]).status == "DELIVERED"

    delivered = graphql(client, acme, MESSAGES, {"status": "DELIVERED"})["data"]
    (edge,) = delivered["webhookMessages"]["edges"]
    assert [a["statusCode"] for a in edge["node"]["attempts"]] == [200]
    assert (
        graphql(client, bluebird, MESSAGES, {"status": "DELIVERED"})["data"]["webhookMessages"][
            "edges"
        ]
        == []
    )
    refused = graphql(client, bluebird, REPLAY, {"id": message["id"]})["data"]
    assert refused["replayWebhookMessage"]["userErrors"] == [{"field": ["id"], "code": "NOT_FOUND"}]

    replayed = graphql(client, acme, REPLAY, {"id": message["id"]})["data"]["replayWebhookMessage"]
    assert replayed["webhookMessage"]["status"] == "PENDING"
    assert delivery.deliver(message["id"]).status == "DELIVERED"
    log = graphql(client, acme, MESSAGES, {"endpointId": endpoint_id})["data"]
    assert len(log["webhookMessages"]["edges"][0]["node"]["attempts"]) == 2
    assert len(target.requests) == 2


def test_a_rotated_secret_overlaps_with_the_old_one(client, demo, target):
    acme = _token(demo)
    created = _create(client, acme, target.url, "delivery.booked")
    endpoint_id, old_secret = created["webhookEndpoint"]["id"], created["secret"]

    rotated = graphql(client, acme, ROTATE, {"id": endpoint_id, "overlapHours": 24})["data"]
    new_secret = rotated["rotateWebhookSecret"]["secret"]
    assert new_secret.startswith("whsec_") and new_secret != old_secret
    assert rotated["rotateWebhookSecret"]["webhookEndpoint"]["previousSecretExpiresAt"]

    graphql(client, acme, BOOK, {"input": booking_input("o-2")})
    tasks.dispatch_outbox()
    (message,) = graphql(client, acme, MESSAGES, {"endpointId": endpoint_id})["data"][
        "webhookMessages"
    ]["edges"]
    delivery.deliver(message["node"]["id"])
    ((headers, body),) = target.requests
    assert len(headers["webhook-signature"].split()) == 2
    verify(old_secret, headers, body)
    verify(new_secret, headers, body)

    too_long = graphql(client, acme, ROTATE, {"id": endpoint_id, "overlapHours": 1000})["data"]
    assert too_long["rotateWebhookSecret"]["userErrors"] == [
        {"field": ["overlapHours"], "code": "INVALID"}
    ]
