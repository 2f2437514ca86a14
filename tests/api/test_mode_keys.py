"""Idempotency keys belong to one mode: the same key used by a merchant's sandbox and
live credentials names two unrelated requests."""

from __future__ import annotations

import pytest

from tests.factories import BOOK, booking_input, graphql, merchant_access_token

CANCEL = """
mutation Cancel($input: CancelDeliveryInput!) {
  cancelDelivery(input: $input) { delivery { id status sandbox } userErrors { code } }
}"""
SANDBOX_FLAG = """
query Delivery($id: ID!) { delivery(id: $id) { id sandbox } }"""


def _book(client, token: str, key: str) -> dict:
    body = graphql(client, token, BOOK, {"input": booking_input("order-1", idempotencyKey=key)})
    delivery = body["data"]["bookDelivery"]["delivery"]
    assert delivery, body
    return delivery


@pytest.mark.parametrize("first", ["sandbox", "live"])
def test_a_key_used_in_one_mode_books_afresh_in_the_other(client, demo, first):
    tokens = {
        "live": merchant_access_token(demo),
        "sandbox": merchant_access_token(demo, sandbox=True),
    }
    second = "live" if first == "sandbox" else "sandbox"
    earlier = _book(client, tokens[first], "key-1")
    later = _book(client, tokens[second], "key-1")

    assert later["id"] != earlier["id"]
    found = graphql(client, tokens[second], SANDBOX_FLAG, {"id": later["id"]})["data"]
    assert found["delivery"] == {"id": later["id"], "sandbox": second == "sandbox"}
    # Each mode still replays its own.
    assert _book(client, tokens[first], "key-1")["id"] == earlier["id"]
    assert _book(client, tokens[second], "key-1")["id"] == later["id"]


def test_a_change_keyed_in_sandbox_does_not_shadow_the_same_key_live(client, demo):
    live, sandbox = merchant_access_token(demo), merchant_access_token(demo, sandbox=True)
    test_order, real_order = _book(client, sandbox, "b-1")["id"], _book(client, live, "b-2")["id"]
    variables = {"input": {"id": test_order, "idempotencyKey": "cancel-1"}}
    assert graphql(client, sandbox, CANCEL, variables)["data"]["cancelDelivery"]["delivery"]

    variables = {"input": {"id": real_order, "idempotencyKey": "cancel-1"}}
    cancelled = graphql(client, live, CANCEL, variables)["data"]["cancelDelivery"]
    assert cancelled["userErrors"] == []
    assert cancelled["delivery"] == {"id": real_order, "status": "CANCELLED", "sandbox": False}
