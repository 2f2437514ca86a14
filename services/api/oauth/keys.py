"""The RSA key that signs access tokens, and the public JWKS that verifies them.

Every API process must sign with the same key, or tokens from one are refused by
another. A configured PEM wins; otherwise the first process to start generates one
into var_dir and every later (or concurrent) process reads that same file.
"""

from __future__ import annotations

import contextlib
import os
from functools import cache
from pathlib import Path

from joserfc.jwk import KeySet, KeySetSerialization, RSAKey

from services.core.settings import get_settings

SIGNING_ALGORITHM = "RS256"
KEY_FILE_NAME = "jwt-signing-key.pem"
_KEY_BITS = 2048


@cache
def get_signing_key() -> RSAKey:
    """The private signing key, loaded once per process (it is on every request's path)."""
    settings = get_settings()
    pem = settings.jwt_private_key or _load_or_create_key_file(settings.var_dir / KEY_FILE_NAME)
    return _import_private_key(pem)


@cache
def get_public_key_set() -> KeySet:
    """The public half only: what verifiers need, and all the JWKS endpoint may show."""
    return KeySet.import_key_set(public_jwks())


def public_jwks() -> KeySetSerialization:
    key = get_signing_key()
    public = key.as_dict(private=False, use="sig", alg=SIGNING_ALGORITHM)
    return {"keys": [public]}


def _import_private_key(pem: str | bytes) -> RSAKey:
    key = RSAKey.import_key(pem)
    if not key.is_private:
        raise ValueError("the JWT signing key must be an RSA *private* key (PEM)")
    if key.private_key is not None and key.private_key.key_size < _KEY_BITS:
        raise ValueError(f"the JWT signing key must have at least {_KEY_BITS} bits")
    # RFC 7638 thumbprint: a stable kid that changes exactly when the key does.
    return RSAKey.import_key(key.as_dict(private=True, kid=key.thumbprint()))


def _load_or_create_key_file(path: Path) -> bytes:
    """Read the key file, creating it first if absent.

    The new key is written to a private temporary file, then hard-linked into place:
    os.link never overwrites, so when two processes race the first link wins and the
    loser discards its key and reads the winner's.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        pem = RSAKey.generate_key(_KEY_BITS, private=True).as_pem(private=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(descriptor, "wb") as file:
                file.write(pem)
                file.flush()
                os.fsync(file.fileno())
            with contextlib.suppress(FileExistsError):
                os.link(temporary, path)
        finally:
            temporary.unlink()
    return path.read_bytes()
