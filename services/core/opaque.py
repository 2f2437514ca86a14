"""Opaque secrets handed to people and clients (links, cookies, codes, refresh tokens),
kept only as hashes.

They are 256 random bits, so one fast SHA-256 makes a leaked table useless; slow
password hashes are for secrets people choose.
"""

from __future__ import annotations

import hashlib
import secrets


def new_secret(prefix: str = "") -> str:
    """A fresh secret: 256 random bits, URL-safe, after an optional recognisable prefix."""
    return prefix + secrets.token_urlsafe(32)


def digest(secret: str) -> str:
    """What is stored of a secret, and what a presented one is looked up by."""
    return hashlib.sha256(secret.encode()).hexdigest()
