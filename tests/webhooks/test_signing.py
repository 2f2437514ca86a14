"""Webhook signatures: the Standard Webhooks scheme, freshness, and secret rotation."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest

from services.core.models import WebhookEndpoint
from services.webhooks.delivery import signing_secrets
from services.webhooks.signing import (
    WebhookVerificationError,
    new_secret,
    sign,
    signature_header,
    verify,
)

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
MSG_ID = "msg_2c8fhq0000000000000000000"
TIMESTAMP = 1_795_000_000
BODY = b'{"id":"obx_1","type":"delivery.booked","data":{"delivery_id":"dlv_1"}}'


def _headers(signature: str, timestamp: int = TIMESTAMP) -> dict[str, str]:
    return {
        "webhook-id": MSG_ID,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature,
    }


def test_the_signature_is_hmac_sha256_of_id_timestamp_and_body_under_the_decoded_secret():
    digest = hmac.new(
        b"0123456789abcdef0123456789abcdef",
        f"{MSG_ID}.{TIMESTAMP}.".encode() + BODY,
        hashlib.sha256,
    ).digest()
    assert sign(SECRET, MSG_ID, TIMESTAMP, BODY) == "v1," + base64.b64encode(digest).decode()


def test_the_standard_webhooks_reference_vector():
    assert (
        sign(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            '{"test": 2432232314}',
        )
        == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    )


def test_a_genuine_request_verifies_whatever_the_header_case():
    headers = {k.title(): v for k, v in _headers(sign(SECRET, MSG_ID, TIMESTAMP, BODY)).items()}
    verify(SECRET, headers, BODY, now=TIMESTAMP + 10)


def test_a_tampered_body_is_rejected():
    headers = _headers(sign(SECRET, MSG_ID, TIMESTAMP, BODY))
    with pytest.raises(WebhookVerificationError, match="No signature matches"):
        verify(SECRET, headers, BODY.replace(b"dlv_1", b"dlv_2"), now=TIMESTAMP)


def test_another_secret_is_rejected():
    headers = _headers(sign(new_secret(), MSG_ID, TIMESTAMP, BODY))
    with pytest.raises(WebhookVerificationError):
        verify(SECRET, headers, BODY, now=TIMESTAMP)


@pytest.mark.parametrize("offset", [-301, 301])
def test_a_stale_or_future_timestamp_is_rejected_even_when_signed(offset):
    headers = _headers(sign(SECRET, MSG_ID, TIMESTAMP, BODY))
    with pytest.raises(WebhookVerificationError, match="300 s"):
        verify(SECRET, headers, BODY, now=TIMESTAMP + offset)
    verify(SECRET, headers, BODY, now=TIMESTAMP + offset, tolerance=600)


def test_missing_headers_are_named():
    headers = _headers(sign(SECRET, MSG_ID, TIMESTAMP, BODY))
    del headers["webhook-timestamp"]
    with pytest.raises(WebhookVerificationError, match="webhook-timestamp"):
        verify(SECRET, headers, BODY, now=TIMESTAMP)


def test_a_rotated_secret_signs_alongside_the_new_one_until_the_overlap_ends():
    rotated_at = datetime(2026, 11, 22, 12, tzinfo=UTC)
    old, new = new_secret(), new_secret()
    endpoint = WebhookEndpoint(
        tenant_id="ten_1",
        url="https://example.com/hooks",
        event_types=["delivery.booked"],
        secret=new,
        previous_secret=old,
        previous_secret_expires_at=rotated_at + timedelta(hours=24),
    )

    during = rotated_at + timedelta(hours=23)
    header = signature_header(signing_secrets(endpoint, during), MSG_ID, TIMESTAMP, BODY)
    assert len(header.split()) == 2
    for secret in (old, new):  # a receiver on either secret accepts the delivery
        verify(secret, _headers(header), BODY, now=TIMESTAMP)

    after = rotated_at + timedelta(hours=24)
    header = signature_header(signing_secrets(endpoint, after), MSG_ID, TIMESTAMP, BODY)
    verify(new, _headers(header), BODY, now=TIMESTAMP)
    with pytest.raises(WebhookVerificationError):
        verify(old, _headers(header), BODY, now=TIMESTAMP)


def test_secrets_are_prefixed_base64_of_32_random_bytes():
    secret = new_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    assert secret != new_secret()
