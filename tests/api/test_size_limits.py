"""Size limits: a request body has a ceiling, and every text a merchant stores has a
length cap, so no request can store megabytes that every later page must carry."""

from __future__ import annotations

import pytest

from tests.factories import BOOK, booking_input, graphql

MIB = 1024 * 1024
CANCEL = """mutation($input: CancelDeliveryInput!) {
  cancelDelivery(input: $input) { delivery { id } userErrors { field code } } }"""
UPDATE_RECIPIENT = """mutation($input: UpdateDeliveryRecipientInput!) {
  updateDeliveryRecipient(input: $input) { delivery { id } userErrors { field code } } }"""


@pytest.mark.parametrize("path", ["/graphql", "/oauth/token"])
def test_a_body_over_a_mebibyte_is_refused_unread(client, live, path):
    body = b'{"query": "' + b"x" * (10 * MIB) + b'"}'
    response = client.post(
        path,
        content=body,
        headers={"Authorization": f"Bearer {live}", "content-type": "application/json"},
    )
    assert response.status_code == 413, response.text


def test_a_body_without_a_length_is_cut_off_at_the_ceiling(client, live):
    def chunks():
        for _ in range(20):
            yield b" " * (MIB // 4)

    response = client.post(
        "/graphql",
        content=chunks(),
        headers={"Authorization": f"Bearer {live}", "content-type": "application/json"},
    )
    assert response.status_code == 413


@pytest.mark.parametrize(
    ("field", "where", "length"),
    [
        (("recipient", "name"), lambda i, v: i["recipient"].update(name=v), 201),
        (("recipient", "email"), lambda i, v: i["recipient"].update(email=v + "@x.example"), 250),
        (("dropoff", "line1"), lambda i, v: i["dropoff"].update(line1=v), 201),
        (("dropoff", "city"), lambda i, v: i["dropoff"].update(city=v), 101),
        (("dropoff", "postalCode"), lambda i, v: i["dropoff"].update(postalCode=v), 21),
        (("dropoff", "country"), lambda i, v: i["dropoff"].update(country=v), 101),
    ],
)
def test_every_text_of_a_booking_has_a_cap(client, live, field, where, length):
    order = booking_input("capped")
    where(order, "a" * length)
    payload = graphql(client, live, BOOK, {"input": order})["data"]["bookDelivery"]
    assert payload["delivery"] is None
    assert {"field": list(field), "code": "TOO_LONG"} in [
        {"field": e["field"], "code": e["code"]} for e in payload["userErrors"]
    ]


def test_texts_given_after_booking_have_caps_too(client, live):
    booked = graphql(client, live, BOOK, {"input": booking_input("later")})
    delivery_id = booked["data"]["bookDelivery"]["delivery"]["id"]
    recipient = {"name": "n" * 5000}
    updated = graphql(
        client, live, UPDATE_RECIPIENT, {"input": {"id": delivery_id, "recipient": recipient}}
    )["data"]["updateDeliveryRecipient"]
    assert updated["userErrors"] == [{"field": ["recipient", "name"], "code": "TOO_LONG"}]
    cancelled = graphql(client, live, CANCEL, {"input": {"id": delivery_id, "reason": "r" * 5000}})[
        "data"
    ]["cancelDelivery"]
    assert cancelled["userErrors"] == [{"field": ["reason"], "code": "TOO_LONG"}]
