"""A merchant's integration with Lastmile, end to end: token → quote → book → webhook.

Standalone on purpose (only httpx and the standard library), as your own code would be.
Against `make run`, with the demo credentials it wrote to var/demo-credentials.json:

    .venv/bin/python docs/example_client.py

It starts a small webhook receiver on 127.0.0.1, registers it, books a delivery on a
quote with an idempotency key (and retries the booking to show it is safe), then
waits for the signed `delivery.booked` webhook and verifies it.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import queue
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import httpx

QUOTE = """mutation Quote($input: CreateQuoteInput!) {
  createQuote(input: $input) {
    quote { id price { amount currency } date timeWindows { start end } expiresAt }
    userErrors { field message code }
  }
}"""

BOOK = """mutation Book($input: BookDeliveryInput!) {
  bookDelivery(input: $input) {
    delivery { id reference status timeWindow { start end } trackingUrl }
    userErrors { field message code }
  }
}"""

REGISTER = """mutation Register($input: CreateWebhookEndpointInput!) {
  createWebhookEndpoint(input: $input) {
    webhookEndpoint { id url eventTypes }
    secret
    userErrors { field message code }
  }
}"""


class Lastmile:
    """A thin GraphQL client that keeps its access token fresh."""

    def __init__(self, http: httpx.Client, client_id: str, client_secret: str):
        self.http = http
        self.credentials = (client_id, client_secret)
        self.token = ""
        self.expires = 0.0

    def _access_token(self) -> str:
        if time.time() > self.expires - 60:
            response = self.http.post(
                "/oauth/token", data={"grant_type": "client_credentials"}, auth=self.credentials
            )
            response.raise_for_status()
            body = response.json()
            self.token, self.expires = body["access_token"], time.time() + body["expires_in"]
        return self.token

    def graphql(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        response = self.http.post(
            "/graphql",
            json={"query": query, "variables": variables},
            headers={"Authorization": f"Bearer {self._access_token()}"},
        )
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        if body.get("errors"):
            raise RuntimeError(body["errors"])
        return body["data"]


def verify_webhook(secret: str, headers: dict[str, str], body: bytes, tolerance: int = 300) -> None:
    """Check a Standard Webhooks signature; raise ValueError unless it is genuine and fresh."""
    msg_id, timestamp = headers["webhook-id"], headers["webhook-timestamp"]
    if abs(time.time() - int(timestamp)) > tolerance:
        raise ValueError("stale webhook timestamp")
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{msg_id}.{timestamp}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    offered = [s.partition(",")[2] for s in headers["webhook-signature"].split()]
    if not any(hmac.compare_digest(expected, candidate) for candidate in offered):
        raise ValueError("bad webhook signature")


def quote_and_book(api: Lastmile, reference: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Quote a parcel, then book it in the first open window at the quoted price."""
    place = {"serviceArea": "demo", "dropoff": {"lat": 40.7265, "lng": -73.9815}}
    parcel = {"weightGrams": 1800, "lengthCm": 30, "widthCm": 20, "heightCm": 15}
    quoted = api.graphql(QUOTE, {"input": {**place, "parcel": parcel}})["createQuote"]
    if quoted["userErrors"]:
        raise RuntimeError(quoted["userErrors"])
    quote = quoted["quote"]
    booking = {
        **place,
        "parcel": parcel,
        "reference": reference,
        "idempotencyKey": f"book-{reference}",
        "date": quote["date"],
        "quoteId": quote["id"],
        "recipient": {"name": "Ada Lovelace", "phone": "+1 212 555 0199"},
    }
    if quote["timeWindows"]:
        booking["timeWindow"] = quote["timeWindows"][0]
    first = api.graphql(BOOK, {"input": booking})["bookDelivery"]
    retried = api.graphql(BOOK, {"input": booking})["bookDelivery"]  # e.g. after a timeout
    assert retried["delivery"]["id"] == first["delivery"]["id"], (
        "idempotency keys make retries safe"
    )
    if first["userErrors"]:
        raise RuntimeError(first["userErrors"])
    return quote, first["delivery"]


def register_webhook(api: Lastmile, url: str) -> str:
    """Register an endpoint for booking and outcome events; returns its signing secret."""
    events = ["delivery.booked", "delivery.planned", "delivery.delivered", "delivery.failed"]
    created = api.graphql(REGISTER, {"input": {"url": url, "eventTypes": events}})
    payload = created["createWebhookEndpoint"]
    if payload["userErrors"]:
        raise RuntimeError(payload["userErrors"])
    return str(payload["secret"])


def _receiver(inbox: queue.Queue[tuple[dict[str, str], bytes]]) -> HTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            inbox.put(({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            return

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", default="http://127.0.0.1:8000")
    parser.add_argument("--credentials", default="var/demo-credentials.json")
    args = parser.parse_args()
    with open(args.credentials) as credentials:
        merchant = json.load(credentials)["merchants"][0]

    inbox: queue.Queue[tuple[dict[str, str], bytes]] = queue.Queue()
    server = _receiver(inbox)
    with httpx.Client(base_url=args.base_url, timeout=30) as http:
        api = Lastmile(http, merchant["client_id"], merchant["client_secret"])
        secret = register_webhook(api, f"http://127.0.0.1:{server.server_port}/lastmile")
        quote, delivery = quote_and_book(api, f"order-{uuid.uuid4().hex[:8]}")
        print(
            f"quoted {quote['price']['amount']} {quote['price']['currency']}, "
            f"booked {delivery['id']} ({delivery['status']}); track: {delivery['trackingUrl']}"
        )
        headers, body = inbox.get(timeout=60)
        verify_webhook(secret, headers, body)
        event = json.loads(body)
        print(f"verified webhook {headers['webhook-id']}: {event['type']} {event['data']}")
    server.shutdown()


if __name__ == "__main__":
    main()
