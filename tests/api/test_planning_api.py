"""The operator plans an area over GraphQL; a real worker solves; progress is visible."""

from __future__ import annotations

import time

import pytest
from celery.contrib.testing.worker import start_worker

from services.api.oauth.tokens import issue_access_token
from services.api.seed import seed_demo
from services.core.celery_app import celery_app
from services.core.db import transaction, utcnow
from tests.factories import BOOK, booking_input, graphql

PLAN = """mutation($input: PlanAreaInput!) {
  planArea(input: $input) { planRun { id status } userErrors { field code } } }"""
RUN = """query($id: ID!) { planRun(id: $id) {
  status deliveriesConsidered deliveriesPlanned routes costMinor bestCostMinor error } }"""


@pytest.fixture
def tokens(db):
    with transaction() as session:
        merchant = seed_demo(session, utcnow().date())["merchants"][0]
    operator = issue_access_token(client_id="lm_demo_operator", tenant_id=None, scope="operator")
    shop = issue_access_token(
        client_id=merchant["client_id"],
        tenant_id=merchant["tenant_id"],
        scope="deliveries:read deliveries:write",
    )
    return operator[0], shop[0]


def test_a_plan_run_requested_over_graphql_is_solved_by_a_worker(client, tokens):
    operator, shop = tokens
    for i in range(5):
        graphql(client, shop, BOOK, {"input": booking_input(f"p-{i}")})
    celery_app.control.purge()
    with start_worker(
        celery_app, pool="threads", concurrency=1, perform_ping_check=False, queues=["planner"]
    ):
        queued = graphql(
            client, operator, PLAN, {"input": {"serviceArea": "demo", "timeLimitSeconds": 2}}
        )
        run = queued["data"]["planArea"]["planRun"]
        assert run["status"] == "QUEUED"
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            state = graphql(client, operator, RUN, {"id": run["id"]})["data"]["planRun"]
            if state["status"] in ("DONE", "FAILED"):
                break
            time.sleep(0.5)
    assert state["status"] == "DONE", state
    assert state["deliveriesConsidered"] == 5 and state["deliveriesPlanned"] == 5
    assert state["costMinor"] > 0 and state["bestCostMinor"] == state["costMinor"]


def test_planning_needs_the_operator_scope_and_a_real_area(client, tokens):
    operator, shop = tokens
    denied = graphql(client, shop, PLAN, {"input": {"serviceArea": "demo"}})
    assert denied["errors"][0]["extensions"]["code"] == "ACCESS_DENIED"
    unknown = graphql(client, operator, PLAN, {"input": {"serviceArea": "atlantis"}})
    assert unknown["data"]["planArea"]["userErrors"] == [
        {"field": ["serviceArea"], "code": "SERVICE_AREA_NOT_FOUND"}
    ]
