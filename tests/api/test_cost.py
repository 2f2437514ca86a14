"""Query cost: the requested cost of a document by hand, the actual cost of a response."""

from __future__ import annotations

from typing import Any

import pytest
from graphql import get_introspection_query, parse

from services.api.graphql.limits.cost import OperationCost
from services.api.graphql.limits.throttle import LocalBucket
from services.api.graphql.schema import schema
from services.api.oauth.tokens import issue_access_token
from tests.factories import (
    BOOK,
    BOOK_MANY,
    DELIVERIES,
    DELIVERY,
    INVOICE_PREVIEW,
    booking_input,
    graphql,
)


def requested(query: str, variables: dict[str, Any] | None = None) -> int:
    return OperationCost(schema._schema, parse(query), None, variables).requested


def actual(query: str, data: dict[str, Any] | None, variables: dict[str, Any] | None = None) -> int:
    return OperationCost(schema._schema, parse(query), None, variables).actual(data)


@pytest.mark.parametrize(
    ("query", "variables", "cost"),
    [
        # mutation 10 + delivery 1 + timeWindow 1 + userErrors (a list, as one object) 1
        (BOOK, {"input": {}}, 13),
        # delivery 1 + timeWindow 1 + route 1 + events 1
        (DELIVERY, {"id": "d"}, 4),
        # connection 2 + 10 nodes x 1; pageInfo and cursors ride on the 2
        (DELIVERIES, {"first": 10}, 12),
        # no `first`: the default page of 50
        (DELIVERIES, {}, 52),
        (DELIVERIES, {"first": None}, 52),
        # invoicePreview 1 + lines 1
        (INVOICE_PREVIEW, None, 2),
        # mutation 10 + 3 inputs + results (1 + delivery 1 + userErrors 1) + userErrors 1
        (BOOK_MANY, {"inputs": [{}, {}, {}]}, 17),
        (BOOK_MANY, {"inputs": [{}] * 250}, 264),
    ],
)
def test_the_contract_operations_cost_what_the_rules_say(query, variables, cost):
    assert requested(query, variables) == cost


def test_fragments_inline_fragments_and_aliases_are_costed_as_they_execute():
    query = """
    query {
      a: delivery(id: "1") { ...Parts }
      b: delivery(id: "2") { id ... on Delivery { route { id } } }
      deliveries(first: 5) { edges { node { ...Parts } } }
    }
    fragment Parts on Delivery { id timeWindow { start } events { status } }
    """
    # a: 1 + timeWindow 1 + events 1; b: 1 + route 1; deliveries: 2 + 5 x (1 + 2)
    assert requested(query) == 3 + 2 + 17


def test_fields_merged_into_one_response_key_count_once():
    query = '{ delivery(id: "1") { id } delivery(id: "1") { timeWindow { start } } }'
    assert requested(query) == 2


def test_skipped_selections_cost_nothing():
    query = """
    query ($withRoute: Boolean!) {
      delivery(id: "1") {
        timeWindow @skip(if: true) { start }
        route @include(if: $withRoute) { id }
      }
    }"""
    assert requested(query, {"withRoute": False}) == 1
    assert requested(query, {"withRoute": True}) == 2


def test_a_parsed_document_is_priced_by_its_variables_each_time_it_is_reused():
    """Integrations repeat documents (parsed once, ParseOnce); what costing learns about a
    document is reused only where no variable decides it."""
    document = parse(
        """
        query ($withRoute: Boolean!, $n: Int) {
          delivery(id: "1") { timeWindow { start } route @include(if: $withRoute) { id } }
          deliveries(first: $n) { edges { node { id } } }
        }"""
    )

    def cost(variables: dict[str, Any]) -> int:
        return OperationCost(schema._schema, document, None, variables).requested

    assert cost({"withRoute": True, "n": 3}) == 3 + 5
    assert cost({"withRoute": False, "n": 3}) == 2 + 5
    assert cost({"withRoute": True, "n": 10}) == 3 + 12
    assert cost({"withRoute": False, "n": 1}) == 2 + 3


def test_variable_defaults_size_connections():
    query = "query ($n: Int = 7) { deliveries(first: $n) { edges { node { id } } } }"
    assert requested(query) == 9
    assert requested(query, {"n": 3}) == 5


def test_a_literal_list_argument_is_charged_per_element():
    inputs = ", ".join(
        '{reference: "r", serviceArea: "demo", dropoff: {lat: 1, lng: 2}, '
        'recipient: {name: "n"}, parcel: {weightGrams: 1}}'
        for _ in range(4)
    )
    query = f"mutation {{ bookDeliveries(inputs: [{inputs}]) {{ userErrors {{ code }} }} }}"
    assert requested(query) == 10 + 4 + 1


def test_a_connection_item_costs_at_least_one_even_without_its_node():
    assert requested("{ deliveries(first: 10) { edges { cursor } } }") == 2 + 10


def test_introspection_is_costed_too():
    assert requested(get_introspection_query()) > 0


def test_actual_counts_what_came_back_and_never_exceeds_requested():
    variables = {"first": 10}
    three = {
        "deliveries": {
            "edges": [{"cursor": "c", "node": {"id": str(i)}} for i in range(3)],
            "pageInfo": {"hasNextPage": False, "endCursor": "c"},
        }
    }
    assert actual(DELIVERIES, three, variables) == 2 + 3
    assert actual(DELIVERIES, {"deliveries": None}, variables) == 0
    assert actual(DELIVERIES, None, variables) == 0
    # A resolver that returned more than asked for is still charged what was requested.
    eleven = {"deliveries": {"edges": [{"node": {"id": "x"}}] * 11, "pageInfo": None}}
    assert actual(DELIVERIES, eleven, variables) == requested(DELIVERIES, variables)


def test_a_rejected_booking_costs_less_than_a_booked_one():
    booked = {"bookDelivery": {"delivery": {"timeWindow": {}}, "userErrors": []}}
    rejected = {"bookDelivery": {"delivery": None, "userErrors": [{"code": "REQUIRED"}]}}
    assert actual(BOOK, booked, {"input": {}}) == 13
    assert actual(BOOK, rejected, {"input": {}}) == 11


# Over HTTP: every response reports its cost, and the bucket is refunded the difference.


class FrozenClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def bucket(app) -> LocalBucket:
    """A bucket whose clock stands still, so levels are exact."""
    app.state.graphql_bucket = LocalBucket(1000, 50.0, clock=FrozenClock())
    return app.state.graphql_bucket


def test_every_response_carries_the_cost_and_refunds_the_difference(client, merchant_token, bucket):
    inputs = [booking_input(f"c-{i}") for i in range(3)]
    booked = graphql(client, merchant_token, BOOK_MANY, {"inputs": inputs})
    assert booked["extensions"]["cost"] == {
        "requestedQueryCost": 17,
        "actualQueryCost": 17,
        "throttleStatus": {
            "maximumAvailable": 1000.0,
            "currentlyAvailable": 1000 - 17,
            "restoreRate": 50.0,
        },
    }
    listed = graphql(client, merchant_token, DELIVERIES, {"first": 10})
    cost = listed["extensions"]["cost"]
    assert (cost["requestedQueryCost"], cost["actualQueryCost"]) == (12, 2 + 3)
    # Charged 12 up front, refunded 7 once three deliveries came back.
    assert cost["throttleStatus"]["currentlyAvailable"] == 1000 - 17 - 5


def test_errors_carry_the_cost_too(client, demo, merchant_token, bucket):
    missing = graphql(client, merchant_token, DELIVERY, {"id": "no-such-delivery"})
    assert missing["data"] == {"delivery": None}
    assert missing["extensions"]["cost"]["actualQueryCost"] == 0

    read_only, _ = issue_access_token(
        client_id=demo["merchants"][0]["client_id"],
        tenant_id=demo["merchants"][0]["tenant_id"],
        scope="deliveries:read",
    )
    denied = graphql(client, read_only, BOOK, {"input": booking_input("o")})
    assert denied["errors"][0]["extensions"]["code"] == "ACCESS_DENIED"
    assert denied["extensions"]["cost"]["requestedQueryCost"] == 13
    assert denied["extensions"]["cost"]["actualQueryCost"] == 0

    invalid = graphql(client, merchant_token, "{ deliveries { nope } }")
    assert invalid["errors"] and invalid["data"] is None
    assert invalid["extensions"]["cost"]["requestedQueryCost"] == 0
    assert invalid["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"] == 1000

    broken = graphql(client, merchant_token, "{ deliveries {")
    assert broken["errors"][0]["message"].startswith("Syntax Error")
    assert "cost" in broken["extensions"]
