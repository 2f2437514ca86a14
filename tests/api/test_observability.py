"""Metrics, and logs that follow a booking without ever holding a secret."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlmodel import select

from services.api import observability
from services.api.seed import seed_demo
from services.billing import tasks as billing_tasks
from services.core import logs
from services.core.db import transaction, utcnow
from services.core.models import Delivery, WebhookMessage
from services.webhooks import delivery as webhook_delivery
from services.webhooks import tasks as webhook_tasks
from tests.factories import booking_input, graphql, plan_demo_day, token
from tests.webhooks.receiver import Receiver

BOOK = """
mutation Book($input: BookDeliveryInput!) {
  bookDelivery(input: $input) {
    delivery { id status trackingUrl }
    userErrors { field message code }
  }
}"""
CREATE_ENDPOINT = """
mutation Create($input: CreateWebhookEndpointInput!) {
  createWebhookEndpoint(input: $input) { webhookEndpoint { id } secret userErrors { code } }
}"""


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


@pytest.fixture
def demo(db):
    with transaction() as session:
        return seed_demo(session, utcnow().date())


def test_metrics_count_operations_routes_bookings_and_read_the_backlog(client, demo, monkeypatch):
    monkeypatch.setattr(observability._BACKLOG, "max_age", 0.0)  # read at every scrape
    merchant = demo["merchants"][0]
    access = token(client, merchant["client_id"], merchant["client_secret"])
    before = _samples(client.get("/metrics").text)
    booked = graphql(client, access, BOOK, {"input": booking_input("m-1")})
    assert booked["data"]["bookDelivery"]["userErrors"] == []
    tracking = booked["data"]["bookDelivery"]["delivery"]["trackingUrl"]
    client.get(tracking.replace("http://testserver", ""))
    graphql(client, access, BOOK, {"input": booking_input("m-2", serviceArea="nowhere")})

    text = client.get("/metrics").text
    after = _samples(text)

    def grew(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert grew("lastmile_graphql_operations_total", operation="bookDelivery", outcome="ok") == 1
    assert (
        grew("lastmile_graphql_operations_total", operation="bookDelivery", outcome="user_error")
        == 1
    )
    assert grew("lastmile_errors_total", code="SERVICE_AREA_NOT_FOUND") == 1
    assert grew("lastmile_bookings_total", mode="live") == 1
    assert grew("lastmile_http_requests_total", route="/graphql", status="200") == 2
    assert grew("lastmile_http_requests_total", route="/track/{token}", status="200") == 1
    assert after[("lastmile_outbox_pending", ())] >= 1
    assert {q for (name, labels), _ in after.items() if name == "lastmile_celery_queue_depth"
            for _, q in labels} == {"planner", "billing", "webhooks"}  # fmt: skip
    assert tracking.rsplit("/", 1)[1] not in text  # routes are templates, never tokens


def test_several_processes_metrics_are_served_as_one(tmp_path):
    """Multi-process mode: what each process counted, summed by whichever serves it."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    count = "from services.core import metrics; metrics.BOOKINGS.labels('live').inc({})"
    for n in (2, 3):
        subprocess.run([sys.executable, "-c", count.format(n)], env=env, check=True)
    serve = "from services.core import metrics; print(metrics.exposition()[0].decode())"
    text = subprocess.run(
        [sys.executable, "-c", serve], env=env, check=True, capture_output=True, text=True
    ).stdout
    assert _samples(text)[("lastmile_bookings_total", (("mode", "live"),))] == 5


@pytest.fixture
def log_lines() -> Iterator[Callable[[], list[dict]]]:
    """The log lines written so far, at every level, as the JSON a process writes."""
    stream = io.StringIO()
    root = logging.getLogger()
    saved = root.level
    capture = logs.handler(stream, "test")
    root.addHandler(capture)
    root.setLevel(logging.DEBUG)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]
    root.removeHandler(capture)
    root.setLevel(saved)


def test_one_request_id_follows_a_booking_through_outbox_webhooks_planner_and_billing(
    client, demo, log_lines
):
    merchant = demo["merchants"][0]
    access = token(client, merchant["client_id"], merchant["client_secret"])
    receiver = Receiver()
    try:
        created = graphql(
            client,
            access,
            CREATE_ENDPOINT,
            {"input": {"url": receiver.url, "eventTypes": ["delivery.booked", "delivery.planned"]}},
        )["data"]["createWebhookEndpoint"]
        response = client.post(
            "/graphql",
            json={"query": BOOK, "variables": {"input": booking_input("trace-1")}},
            headers={"Authorization": f"Bearer {access}", "X-Request-Id": "req-trace-1"},
        )
        assert response.headers["x-request-id"] == "req-trace-1"
        delivery_id = response.json()["data"]["bookDelivery"]["delivery"]["id"]
        with transaction() as session:
            day = session.get(Delivery, delivery_id).date
        webhook_tasks.dispatch_outbox()
        assert plan_demo_day(day).status == "DONE"
        webhook_tasks.dispatch_outbox()
        with transaction() as session:
            messages = session.exec(select(WebhookMessage.id)).all()
        for message_id in messages:
            webhook_delivery.deliver(message_id)
        billing_tasks.allocate_route_shares()
    finally:
        receiver.close()
    lines = log_lines()
    events = [line for line in lines if line.get("request_id") == "req-trace-1"]
    said = {line["event"] for line in events}
    assert {
        "request",
        "delivery booked",
        "outbox event dispatched",
        "delivery planned",
        "webhook attempt",
    } <= said, said
    assert sum(line["event"] == "webhook attempt" for line in events) == 2  # booked, planned
    [share] = [line for line in lines if line["event"] == "route cost allocated"]
    assert share["request_ids"] == ["req-trace-1"]
    assert created["secret"]  # what must never be logged, below


def test_no_log_line_holds_a_secret_a_token_or_a_recipients_details(client, demo, log_lines):
    merchant = demo["merchants"][0]
    access = token(client, merchant["client_id"], merchant["client_secret"])
    client.post("https://testserver/oauth/token", data={"grant_type": "client_credentials"},
                auth=(merchant["client_id"], "wrong-" + merchant["client_secret"]))  # fmt: skip
    receiver = Receiver(failures=1)
    try:
        url = receiver.url + "?key=hook-key-123"
        created = graphql(
            client,
            access,
            CREATE_ENDPOINT,
            {"input": {"url": url, "eventTypes": ["delivery.booked"]}},
        )["data"]["createWebhookEndpoint"]
        recipient = {"name": "Zelda Quux", "phone": "+1 201 555 0199", "email": "zelda@example.org"}
        booked = graphql(
            client, access, BOOK, {"input": booking_input("secret-1", recipient=recipient)}
        )["data"]["bookDelivery"]["delivery"]
        client.get(booked["trackingUrl"].replace("http://testserver", ""))
        client.post("/graphql", json={"query": "{ deliveries { edges { cursor } } }"},
                    headers={"Authorization": f"Bearer {access}x"})  # fmt: skip
        webhook_tasks.dispatch_outbox()
        with transaction() as session:
            [message_id] = session.exec(select(WebhookMessage.id)).all()
        webhook_delivery.deliver(message_id)  # fails once: the 500 is logged
        [(headers, _)] = receiver.requests
    finally:
        receiver.close()
    lines = log_lines()
    assert len(lines) > 20
    text = "\n".join(json.dumps(line) for line in lines)
    secrets = {
        "client secret": merchant["client_secret"],
        "access token": access,
        "access token's signature": access.rsplit(".", 1)[1],
        "webhook secret": created["secret"],
        "webhook signature": headers["webhook-signature"].split(",", 1)[1],
        "tracking token": booked["trackingUrl"].rsplit("/", 1)[1],
        "recipient's name": "Zelda Quux",
        "recipient's phone": "555 0199",
        "recipient's email": "zelda@example.org",
        "address": "1 Main St",
        "endpoint's key": "hook-key-123",
    }
    leaked = {what for what, value in secrets.items() if value in text}
    assert leaked == set()


def test_redaction_masks_what_slipped_into_a_line():
    event = logs.redact(None, "info", {
        "event": "calling https://u:pw@h/x with Bearer abc.def.ghi",
        "client_secret": "s3cret",
        "recipient_phone": "+1 555",
        "detail": "token=eyJhbGciOi.eyJzdWIiOi.c2ln and whsec_abcdefghijkl",
    })  # fmt: skip
    assert event["client_secret"] == event["recipient_phone"] == "[redacted]"
    assert "pw@" not in event["event"] and "abc.def.ghi" not in event["event"]
    assert "eyJ" not in event["detail"] and "abcdefghijkl" not in event["detail"]
