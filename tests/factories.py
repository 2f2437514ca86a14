"""Builders for test data and API calls, so each test reads as a small story."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fastapi.testclient import TestClient

BOOK = """
mutation Book($input: BookDeliveryInput!) {
  bookDelivery(input: $input) {
    delivery { id reference status eta timeWindow { start end } }
    userErrors { field message code }
  }
}"""

DELIVERY = """
query Delivery($id: ID!) {
  delivery(id: $id) {
    id reference status eta
    timeWindow { start end }
    route { id stopNumber }
    events { status at }
  }
}"""

DELIVERIES = """
query Deliveries($first: Int, $after: String) {
  deliveries(first: $first, after: $after) {
    edges { cursor node { id reference status } }
    pageInfo { hasNextPage endCursor }
  }
}"""

INVOICE_PREVIEW = (
    "query InvoicePreview { invoicePreview { period currency lines { meter quantity amount } "
    "total } }"
)

BOOK_MANY = """
mutation BookMany($inputs: [BookDeliveryInput!]!) {
  bookDeliveries(inputs: $inputs) {
    results { delivery { id reference status } userErrors { field message code } }
    userErrors { field message code }
  }
}"""


MERCHANT_SCOPES = "deliveries:read deliveries:write billing:read"

# The demo area's time zone: "today" for a booking is the area's local day, never UTC's.
DEMO_ZONE = ZoneInfo("America/New_York")


def local_today(zone: ZoneInfo = DEMO_ZONE) -> date:
    """Today in `zone` by the product's clock. No test names a fixed date that the product
    compares with today (bookable days, plan runs, waves): it derives it from this."""
    from services.core.db import utcnow

    return utcnow().astimezone(zone).date()


def days_ahead(days: int, zone: ZoneInfo = DEMO_ZONE) -> date:
    """The local day `days` after today in `zone` (1: tomorrow, the default delivery day)."""
    return local_today(zone) + timedelta(days=days)


def merchant_access_token(
    demo: dict[str, Any], index: int = 0, scope: str = MERCHANT_SCOPES, sandbox: bool = False
) -> str:
    """A token for one of the seeded merchants, signed as /oauth/token would sign it."""
    from services.api.oauth.tokens import issue_access_token

    merchant = demo["merchants"][index]
    client_id = merchant["sandbox_client_id"] if sandbox else merchant["client_id"]
    return issue_access_token(
        client_id=client_id, tenant_id=merchant["tenant_id"], scope=scope, sandbox=sandbox
    )[0]


def operator_access_token() -> str:
    from services.api.oauth.tokens import issue_access_token

    return issue_access_token(client_id="lm_demo_operator", tenant_id=None, scope="operator")[0]


def plan_demo_day(day: date) -> Any:
    """Plan the demo area's day and return the finished plan run.

    3 s: the solver uses all of it, and with 1 s a stall of this shared machine once
    left a one-delivery plan without its first solution, the delivery unplanned.
    """
    from services.core.db import transaction
    from services.planner import runs

    with transaction() as session:
        run = runs.request_plan(session, "demo", day, "test", 3)
    return runs.execute(run.id)


def token(client: TestClient, client_id: str, secret: str, scope: str | None = None) -> str:
    data = {"grant_type": "client_credentials"}
    if scope:
        data["scope"] = scope
    response = client.post("https://testserver/oauth/token", data=data, auth=(client_id, secret))
    assert response.status_code == 200, response.text
    access_token: str = response.json()["access_token"]
    return access_token


def graphql(
    client: TestClient, access_token: str, query: str, variables: dict[str, Any] | None = None
) -> dict[str, Any]:
    response = client.post(
        "/graphql",
        json={"query": query, "variables": variables or {}},
        headers={"Authorization": f"Bearer {access_token}"},
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def booking_input(reference: str, rng: random.Random | None = None, **overrides: Any) -> dict:
    """A valid booking in the demo area; any field can be overridden."""
    rng = rng or random.Random(reference)
    value: dict[str, Any] = {
        "reference": reference,
        "serviceArea": "demo",
        "dropoff": {
            "lat": round(rng.uniform(40.64, 40.82), 5),
            "lng": round(rng.uniform(-74.07, -73.90), 5),
            "line1": "1 Main St",
            "city": "Jersey City",
            "postalCode": "07302",
            "country": "US",
        },
        "recipient": {"name": f"Recipient {reference}", "phone": "+1 201 555 0100"},
        "parcel": {"weightGrams": 1500, "lengthCm": 30, "widthCm": 20, "heightCm": 10},
    }
    value.update(overrides)
    return value


@contextmanager
def worker_on_own_queue(service: str) -> Iterator[Any]:
    """A real Celery worker for `service`'s tasks (`<service>.*`), routed to a queue of this
    test run's own, so concurrent runs sharing the Redis broker never take each other's
    tasks; the queue starts empty and the routes are restored afterwards."""
    from celery.contrib.testing.worker import start_worker

    from services.core.celery_app import celery_app

    queue = f"{service}-test-{os.getpid()}"
    routes = celery_app.conf.task_routes
    celery_app.conf.task_routes = {**routes, f"{service}.*": {"queue": queue}}
    celery_app.amqp.flush_routes()
    del celery_app.amqp.router
    with celery_app.connection_for_write() as connection:
        connection.default_channel.queue_purge(queue)
    try:
        with start_worker(
            celery_app, pool="threads", concurrency=2, perform_ping_check=False, queues=[queue]
        ) as running:
            yield running
    finally:
        celery_app.conf.task_routes = routes
        celery_app.amqp.flush_routes()
        del celery_app.amqp.router


@contextmanager
def statements_sent() -> Iterator[list[str]]:
    """The SQL statements sent to PostgreSQL meanwhile, whether through SQLAlchemy or
    straight on the driver's cursor (services.core.db.driver_cursor), in order."""
    import psycopg

    sent: list[str] = []
    originals = {name: getattr(psycopg.Cursor, name) for name in ("execute", "executemany", "copy")}

    def recording(name: str) -> Any:
        def method(cursor: Any, statement: Any, *args: Any, **kwargs: Any) -> Any:
            sent.append(statement if isinstance(statement, str) else str(statement))
            return originals[name](cursor, statement, *args, **kwargs)

        return method

    try:
        for name in originals:
            setattr(psycopg.Cursor, name, recording(name))
        yield sent
    finally:
        for name, original in originals.items():
            setattr(psycopg.Cursor, name, original)
