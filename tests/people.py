"""Builders for merchants' people (users with roles) and their browser sessions."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from typing import Any
from urllib.parse import parse_qs, urlsplit

from fastapi.testclient import TestClient

PASSWORD = "correct horse battery"


def make_user(tenant_id: str, email: str, role: str = "owner", name: str = "Test Person") -> Any:
    """A verified user of the tenant with `role` (committed)."""
    from services.accounts.passwords import hash_password
    from services.core.db import transaction, utcnow
    from services.core.models import Membership, UserAccount

    with transaction() as session:
        user = UserAccount(
            email=email,
            name=name,
            password_hash=hash_password(PASSWORD),
            email_verified_at=utcnow(),
        )
        session.add(user)
        session.flush()
        session.add(Membership(tenant_id=tenant_id, user_id=user.id, role=role))
    return user


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, html[:2000]
    return match.group(1)


def sign_in(
    client: TestClient, email: str, password: str = PASSWORD, next: str = "/dashboard"
) -> Any:
    """Sign in through the sign-in page; returns the response after following redirects."""
    page = client.get("/signin")
    return client.post(
        "/signin",
        data={"csrf_token": csrf_of(page.text), "email": email, "password": password, "next": next},
    )


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge.rstrip(b"=").decode()


def query_of(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
