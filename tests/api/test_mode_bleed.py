"""What a sandbox booking must not touch of live: its webhooks (and they say their mode),
its quotes, its query-cost budget."""

from __future__ import annotations

from services.api.graphql.limits.throttle import LocalBucket
from services.webhooks import tasks
from tests.api.test_modes import CREATE_ENDPOINT, MESSAGES, _book
from tests.factories import BOOK, booking_input, graphql


def _endpoint(client, token: str, url: str) -> str:
    body = graphql(
        client, token, CREATE_ENDPOINT, {"input": {"url": url, "eventTypes": ["delivery.booked"]}}
    )
    return str(body["data"]["createWebhookEndpoint"]["webhookEndpoint"]["id"])


def _messages(client, token: str) -> list[dict]:
    edges = graphql(client, token, MESSAGES)["data"]["webhookMessages"]["edges"]
    return [edge["node"]["payload"] for edge in edges]


def test_each_booking_goes_to_its_own_modes_endpoints_and_says_which(client, live, sandbox):
    _endpoint(client, live, "https://acme.example/live")
    _endpoint(client, sandbox, "https://acme.example/test")
    test_order = _book(client, sandbox, "test-order")
    real_order = _book(client, live, "real-order")
    tasks.dispatch_outbox()

    [live_payload] = _messages(client, live)
    [sandbox_payload] = _messages(client, sandbox)
    assert (live_payload["data"]["delivery_id"], live_payload["mode"]) == (real_order, "live")
    assert (sandbox_payload["data"]["delivery_id"], sandbox_payload["mode"]) == (
        test_order,
        "sandbox",
    )


QUOTE = """mutation($input: CreateQuoteInput!) {
  createQuote(input: $input) { quote { id } userErrors { code } } }"""


def test_a_quote_is_spent_only_in_the_mode_that_asked_for_it(client, live, sandbox):
    order = booking_input("quoted")
    body = graphql(
        client,
        live,
        QUOTE,
        {"input": {key: order[key] for key in ("serviceArea", "dropoff", "parcel")}},
    )
    quote_id = body["data"]["createQuote"]["quote"]["id"]

    refused = graphql(client, sandbox, BOOK, {"input": {**order, "quoteId": quote_id}})
    assert refused["data"]["bookDelivery"]["userErrors"][0]["code"] == "NOT_FOUND"
    assert _book(client, live, "quoted", quoteId=quote_id)


def test_live_and_sandbox_drain_separate_budgets(app, client, live, sandbox):
    app.state.graphql_bucket = LocalBucket(20, 0.001)
    _book(client, live, "spends-13-of-20")
    throttled = graphql(client, live, BOOK, {"input": booking_input("over")})
    assert throttled["errors"][0]["extensions"]["code"] == "THROTTLED"
    assert _book(client, sandbox, "own-budget")
