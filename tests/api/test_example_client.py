"""The integration guide's example client works against the real API, signatures included."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from services.api.seed import seed_demo
from services.core.db import transaction, utcnow
from services.webhooks.signing import new_secret, signature_header

PATH = Path(__file__).resolve().parents[2] / "docs" / "example_client.py"


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("example_client", PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_example_quotes_books_safely_and_registers_a_webhook(client, db, example):
    with transaction() as session:
        merchant = seed_demo(session, utcnow().date())["merchants"][0]
    client.base_url = "https://testserver"
    api = example.Lastmile(client, merchant["client_id"], merchant["client_secret"])
    secret = example.register_webhook(api, "http://127.0.0.1:9/hooks")
    assert secret.startswith("whsec_")
    quote, delivery = example.quote_and_book(api, "order-example")
    assert delivery["status"] == "BOOKED"
    assert delivery["timeWindow"] == quote["timeWindows"][0]


def test_the_examples_verifier_accepts_our_signatures_and_nothing_else(example):
    import time

    secret, body, msg_id, now = (
        new_secret(),
        b'{"type": "delivery.booked"}',
        "msg_1",
        int(time.time()),
    )
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(now),
        "webhook-signature": signature_header([secret], msg_id, now, body),
    }
    example.verify_webhook(secret, headers, body)
    with pytest.raises(ValueError):
        example.verify_webhook(secret, headers, body + b" ")
    with pytest.raises(ValueError):
        example.verify_webhook(new_secret(), headers, body)
    with pytest.raises(ValueError):
        example.verify_webhook(secret, {**headers, "webhook-timestamp": str(now - 3600)}, body)
