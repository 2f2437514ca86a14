"""Passwords: argon2id (memory-hard), through argon2-cffi with its recommended parameters.

A hash carries its parameters, so raising them later upgrades each user's hash at
their next sign-in (`needs_rehash`).
"""

from __future__ import annotations

from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_LENGTH = 10
MAX_LENGTH = 256


@cache
def _hasher() -> PasswordHasher:
    return PasswordHasher()


def hash_password(password: str) -> str:
    return _hasher().hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher().verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _hasher().check_needs_rehash(password_hash)


@cache
def _dummy_hash() -> str:
    return hash_password("no account has this password")


def burn_time(password: str) -> None:
    """Cost what checking a password costs: unknown e-mail addresses take as long to
    refuse as wrong passwords, so timing does not tell which addresses have accounts."""
    verify_password(_dummy_hash(), password)


def problem(password: str) -> str | None:
    """What is wrong with a new password, or None."""
    if len(password) < MIN_LENGTH:
        return f"Use at least {MIN_LENGTH} characters."
    if len(password) > MAX_LENGTH:
        return f"Use at most {MAX_LENGTH} characters."
    if password.strip() != password or not password.strip():
        return "A password may not start or end with spaces."
    return None
