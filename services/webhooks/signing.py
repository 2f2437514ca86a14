"""Signing and verifying webhooks as the Standard Webhooks specification prescribes.

Every request carries three headers:

    webhook-id: msg_...           the message id, the same on every retry (deduplicate on it)
    webhook-timestamp: 1732300000 seconds since the epoch when this attempt was signed
    webhook-signature: v1,<sig>   space-separated; two signatures while a rotated secret overlaps

where `<sig>` is base64(HMAC-SHA256(key, "{webhook-id}.{webhook-timestamp}.{body}")) and
`key` is the base64-decoded part of the endpoint secret after its `whsec_` prefix.
Receivers call `verify` with their secret, the request headers and the raw body bytes
(before any JSON parsing, which would change them).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable, Mapping

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
DEFAULT_TOLERANCE_SECONDS = 300


class WebhookVerificationError(ValueError):
    """The request is not a genuine, fresh webhook from Lastmile."""


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def _key(secret: str) -> bytes:
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError(f"A webhook secret starts with {SECRET_PREFIX!r}.")
    try:
        return base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except binascii.Error as error:
        raise ValueError("A webhook secret is base64 after its prefix.") from error


def _as_bytes(body: bytes | str) -> bytes:
    return body.encode() if isinstance(body, str) else body


def sign(secret: str, msg_id: str, timestamp: int, body: bytes | str) -> str:
    """One signature, `v1,<base64 HMAC-SHA256>`, over the id, timestamp and raw body."""
    content = f"{msg_id}.{timestamp}.".encode() + _as_bytes(body)
    digest = hmac.new(_key(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_header(
    signing_secrets: Iterable[str], msg_id: str, timestamp: int, body: bytes | str
) -> str:
    """The `webhook-signature` value: one signature per secret currently valid."""
    return " ".join(sign(secret, msg_id, timestamp, body) for secret in signing_secrets)


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes | str,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> None:
    """Check a received webhook; raise WebhookVerificationError unless it is genuine.

    The timestamp must be within `tolerance` seconds of `now` (default: the current
    time), which stops an intercepted request from being replayed later. Any one of the
    signatures in the header matching is enough, so a receiver holding either the old or
    the new secret accepts deliveries while a rotation overlaps.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    try:
        msg_id = lowered["webhook-id"]
        timestamp_text = lowered["webhook-timestamp"]
        signatures = lowered["webhook-signature"]
    except KeyError as missing:
        raise WebhookVerificationError(f"Missing header {missing.args[0]}.") from None
    try:
        timestamp = int(timestamp_text)
    except ValueError:
        raise WebhookVerificationError("webhook-timestamp is not an integer.") from None
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise WebhookVerificationError(
            f"webhook-timestamp is more than {tolerance} s away from now (replayed or stale)."
        )
    expected = sign(secret, msg_id, timestamp, body)
    if not any(hmac.compare_digest(expected, given) for given in signatures.split()):
        raise WebhookVerificationError("No signature matches this secret.")
