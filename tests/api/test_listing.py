"""Listing deliveries: filters, sort orders, and cursors that keep their order."""

from __future__ import annotations

from tests.factories import BOOK_MANY, booking_input, days_ahead, graphql

LIST = """query($first: Int, $after: String, $status: [DeliveryStatus!], $date: Date,
  $reference: String, $sortKey: DeliverySortKey, $reverse: Boolean) {
  deliveries(first: $first, after: $after, status: $status, date: $date, reference: $reference,
             sortKey: $sortKey, reverse: $reverse) {
    edges { cursor node { reference date status } }
    pageInfo { hasNextPage endCursor }
  }
}"""

CANCEL = """mutation($id: ID!) { cancelDelivery(input: {id: $id}) { userErrors { code } } }"""


def _all(client, token, **variables) -> list[dict]:
    nodes, after = [], None
    while True:
        page = graphql(client, token, LIST, {**variables, "first": 2, "after": after})["data"][
            "deliveries"
        ]
        nodes += [edge["node"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            return nodes
        after = page["pageInfo"]["endCursor"]


def _book(client, token, demo) -> list[str]:
    inputs = [
        booking_input(reference, date=days_ahead(d).isoformat())
        for reference, d in (("c", 3), ("a", 1), ("e", 2), ("b", 3), ("d", 1))
    ]
    body = graphql(client, token, BOOK_MANY, {"inputs": inputs})
    return [r["delivery"]["id"] for r in body["data"]["bookDeliveries"]["results"]]


def test_each_sort_order_pages_through_everything_once(client, demo, merchant_token):
    _book(client, merchant_token, demo)
    by_creation = [n["reference"] for n in _all(client, merchant_token)]
    assert by_creation == ["c", "a", "e", "b", "d"]
    by_reference = [n["reference"] for n in _all(client, merchant_token, sortKey="REFERENCE")]
    assert by_reference == ["a", "b", "c", "d", "e"]
    newest_first = [n["reference"] for n in _all(client, merchant_token, reverse=True)]
    assert newest_first == ["d", "b", "e", "a", "c"]
    by_date = [(n["date"], n["reference"]) for n in _all(client, merchant_token, sortKey="DATE")]
    assert [d for d, _ in by_date] == sorted(d for d, _ in by_date)
    assert {r for _, r in by_date} == {"a", "b", "c", "d", "e"}


def test_filters_narrow_the_list(client, demo, merchant_token):
    ids = _book(client, merchant_token, demo)
    graphql(client, merchant_token, CANCEL, {"id": ids[0]})
    assert [n["reference"] for n in _all(client, merchant_token, status=["CANCELLED"])] == ["c"]
    tomorrow = days_ahead(1).isoformat()
    assert [n["reference"] for n in _all(client, merchant_token, date=tomorrow)] == ["a", "d"]
    assert [n["reference"] for n in _all(client, merchant_token, reference="e")] == ["e"]


def test_a_cursor_from_another_order_is_refused(client, demo, merchant_token):
    _book(client, merchant_token, demo)
    cursor = graphql(client, merchant_token, LIST, {"first": 1})["data"]["deliveries"]["pageInfo"][
        "endCursor"
    ]
    body = graphql(client, merchant_token, LIST, {"first": 1, "after": cursor, "sortKey": "DATE"})
    assert body["data"] is None
    assert "another sort order" in body["errors"][0]["message"]
