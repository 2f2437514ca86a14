"""API client credentials: created with a secret shown once, stored only as a hash.

Secrets are 256 random bits, so a single fast SHA-256 is enough to make a leaked
table useless; slow password hashes exist for low-entropy, human-chosen secrets.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from sqlmodel import Session, select

from services.core.db import utcnow
from services.core.models import OAuthClient

MERCHANT_SCOPES = "deliveries:read deliveries:write billing:read"
OPERATOR_SCOPE = "operator"
ALL_SCOPES = (*MERCHANT_SCOPES.split(), OPERATOR_SCOPE)

CLIENT_ID_PREFIX = "lm_"
# A recognisable prefix lets secret scanners spot a leaked secret.
SECRET_PREFIX = "lms_"
_HASH_SCHEME = "sha256$"


def create_client(
    session: Session,
    *,
    name: str,
    scope: str,
    tenant_id: str | None,
    client_id: str | None = None,
    sandbox: bool = False,
) -> tuple[OAuthClient, str]:
    """Add a client to the session and return it with its plaintext secret.

    A client either belongs to a tenant and holds merchant scopes, or belongs to
    no tenant and holds the operator scope: a tenantless merchant token would
    otherwise reach every tenant's data.
    """
    _check_scope(scope, tenant_id)
    secret = _new_secret()
    client = OAuthClient(
        client_id=client_id or CLIENT_ID_PREFIX + secrets.token_hex(16),
        secret_hash=_hash_secret(secret),
        tenant_id=tenant_id,
        name=name,
        scope=" ".join(scope.split()),
        sandbox=sandbox,
    )
    session.add(client)
    return client, secret


def rotate_secret(session: Session, client: OAuthClient) -> str:
    """Replace the client's secret (the old one stops working) and return the new one."""
    secret = _new_secret()
    client.secret_hash = _hash_secret(secret)
    client.secret_rotated_at = utcnow()
    session.add(client)
    return secret


def authenticate_client(session: Session, client_id: str, secret: str) -> OAuthClient | None:
    """The client these credentials prove, or None; unknown ids and wrong secrets look alike."""
    client = find_client(session, client_id)
    if client is None or not verify_secret(client, secret):
        return None
    return client


def find_client(session: Session, client_id: str) -> OAuthClient | None:
    return session.exec(select(OAuthClient).where(OAuthClient.client_id == client_id)).first()


def verify_secret(client: OAuthClient, secret: str) -> bool:
    return hmac.compare_digest(_hash_secret(secret), client.secret_hash)


def _hash_secret(secret: str) -> str:
    return _HASH_SCHEME + hashlib.sha256(secret.encode()).hexdigest()


def _new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def _check_scope(scope: str, tenant_id: str | None) -> None:
    scopes = set(scope.split())
    if not scopes:
        raise ValueError("a client needs at least one scope")
    if tenant_id is None:
        if scopes != {OPERATOR_SCOPE}:
            raise ValueError(f"a client without a tenant must have scope {OPERATOR_SCOPE!r} only")
    elif not scopes <= set(MERCHANT_SCOPES.split()):
        raise ValueError(f"a tenant's client may only have scopes among {MERCHANT_SCOPES!r}")
