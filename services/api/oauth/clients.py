"""API client credentials: created with a secret shown once, stored only as a hash.

Secrets are 256 random bits, so a single fast SHA-256 is enough to make a leaked
table useless; slow password hashes exist for low-entropy, human-chosen secrets.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from services.core.db import utcnow
from services.core.models import OAuthClient

MERCHANT_SCOPES = "deliveries:read deliveries:write billing:read"
OPERATOR_SCOPE = "operator"
ALL_SCOPES = (*MERCHANT_SCOPES.split(), OPERATOR_SCOPE)

CLIENT_ID_PREFIX = "lm_"
# A recognisable prefix lets secret scanners spot a leaked secret.
SECRET_PREFIX = "lms_"
_HASH_SCHEME = "sha256$"


CLIENT_CREDENTIALS = "client_credentials"
USER_GRANTS = ["authorization_code", "refresh_token"]
MAX_OVERLAP = timedelta(days=7)


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


def create_app(
    session: Session,
    *,
    name: str,
    redirect_uris: list[str],
    public: bool,
    first_party: bool = False,
    client_id: str | None = None,
) -> tuple[OAuthClient, str | None]:
    """An app that people sign in to (authorization code + PKCE, refresh tokens), and
    its secret (None for a public app). It belongs to no tenant: each token acts for
    the merchant of the user who granted it, and it has no client credentials grant,
    so it never holds a tenantless token."""
    secret = None if public else _new_secret()
    client = OAuthClient(
        client_id=client_id or CLIENT_ID_PREFIX + secrets.token_hex(16),
        secret_hash=_hash_secret(secret or _new_secret()),  # a public app's is never shown
        tenant_id=None,
        name=name,
        scope=MERCHANT_SCOPES,
        grant_types=list(USER_GRANTS),
        redirect_uris=list(redirect_uris),
        public=public,
        first_party=first_party,
    )
    session.add(client)
    return client, secret


def rotate_secret(session: Session, client: OAuthClient, overlap: timedelta = timedelta(0)) -> str:
    """Replace the client's secret and return the new one; the old one keeps working for
    `overlap` (at most MAX_OVERLAP), so integrations can switch without an outage."""
    if not timedelta(0) <= overlap <= MAX_OVERLAP:
        raise ValueError(f"the overlap is between 0 and {MAX_OVERLAP.days} days")
    secret = _new_secret()
    now = utcnow()
    client.previous_secret_hash = client.secret_hash if overlap else None
    client.previous_secret_expires_at = now + overlap if overlap else None
    client.secret_hash = _hash_secret(secret)
    client.secret_rotated_at = now
    session.add(client)
    return secret


def revoke(session: Session, client: OAuthClient, now: datetime) -> None:
    """The client authenticates no more (its access tokens expire on their own)."""
    client.revoked_at = now
    session.add(client)


def authenticate_client(session: Session, client_id: str, secret: str) -> OAuthClient | None:
    """The client these credentials prove, or None; unknown ids and wrong secrets look alike."""
    client = find_client(session, client_id)
    if client is None or not verify_secret(client, secret):
        return None
    return client


def of_tenant(session: Session, tenant_id: str) -> list[OAuthClient]:
    """A merchant's API clients, live and sandbox, revoked ones last."""
    return list(
        session.exec(
            select(OAuthClient)
            .where(OAuthClient.tenant_id == tenant_id)
            .order_by(col(OAuthClient.revoked_at).is_not(None), col(OAuthClient.created_at))
        ).all()
    )


def client_of_tenant(session: Session, tenant_id: str, client_id: str) -> OAuthClient | None:
    """One of the merchant's API clients, by its client_id; another's looks missing."""
    return session.exec(
        select(OAuthClient).where(
            OAuthClient.tenant_id == tenant_id, OAuthClient.client_id == client_id
        )
    ).first()


def find_client(session: Session, client_id: str) -> OAuthClient | None:
    return session.exec(select(OAuthClient).where(OAuthClient.client_id == client_id)).first()


def verify_secret(client: OAuthClient, secret: str) -> bool:
    """The current secret, or the previous one during its overlap; never a revoked client's."""
    if client.revoked_at is not None:
        return False
    presented = _hash_secret(secret)
    if hmac.compare_digest(presented, client.secret_hash):
        return True
    previous, until = client.previous_secret_hash, client.previous_secret_expires_at
    return (
        previous is not None
        and until is not None
        and until > utcnow()
        and hmac.compare_digest(presented, previous)
    )


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
