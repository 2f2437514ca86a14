"""RFC 9068 JWT access tokens: issued by the token endpoint, checked on every API call.

Tokens are self-contained (nothing is stored), so they are kept short-lived and every
check is strict: one algorithm, our key only, the access-token `typ`, our issuer and
our audience. A token that fails says exactly why.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache

from joserfc import jwt
from joserfc.errors import (
    BadSignatureError,
    ClaimError,
    ExpiredTokenError,
    InvalidKeyIdError,
    JoseError,
    MissingClaimError,
    UnsupportedAlgorithmError,
)

from services.api.oauth.keys import SIGNING_ALGORITHM, get_public_key_set, get_signing_key
from services.core.settings import get_settings

ACCESS_TOKEN_TYPE = "at+jwt"
# RFC 9068 section 4: resource servers accept the short form and the full media type.
_ACCEPTED_TYPES = {ACCESS_TOKEN_TYPE, "application/at+jwt"}
# Tolerated clock skew between the API processes that issue and check tokens.
LEEWAY_SECONDS = 30


def _clock() -> float:
    """What "now" is for a token's expiry."""
    return time.time()


class InvalidTokenError(Exception):
    """The bearer token cannot be accepted; the message says why, for the 401 body."""


@dataclass(frozen=True)
class AccessToken:
    """What a verified token grants: who is calling, for which tenant, to do what."""

    client_id: str
    tenant_id: str | None  # None for the operator
    scopes: frozenset[str]
    jti: str
    expires_at: datetime
    sandbox: bool = False  # test-mode credentials: simulated deliveries only


def audience() -> str:
    """The API the tokens are for: the GraphQL endpoint of this issuer."""
    return f"{get_settings().issuer}/graphql"


def issue_access_token(
    *, client_id: str, tenant_id: str | None, scope: str, sandbox: bool = False
) -> tuple[str, int]:
    """Sign an access token for a client; returns the token and its lifetime in seconds."""
    settings = get_settings()
    key = get_signing_key()
    now = int(time.time())
    claims: dict[str, object] = {
        "iss": settings.issuer,
        "aud": audience(),
        "sub": client_id,
        "client_id": client_id,
        "scope": scope,
        "iat": now,
        "exp": now + settings.access_token_ttl_seconds,
        "jti": secrets.token_urlsafe(16),
    }
    if tenant_id is not None:
        claims["tenant_id"] = tenant_id
    if sandbox:
        claims["sandbox"] = True
    header = {"alg": SIGNING_ALGORITHM, "typ": ACCESS_TOKEN_TYPE, "kid": key.kid}
    token = jwt.encode(header, claims, key, algorithms=[SIGNING_ALGORITHM])
    return token, settings.access_token_ttl_seconds


# Integrations send the same token on every call until it expires. A token's signature
# and claims never change, so a verdict of "valid" is remembered (only expiry can change
# it, and that is checked on every use); refusals are never remembered.
_VERIFIED_CAPACITY = 10_000
_verified: dict[str, AccessToken] = {}


def verify_access_token(token: str) -> AccessToken:
    """Check a bearer token completely and return what it grants, or raise InvalidTokenError."""
    known = _verified.get(token)
    if known is not None:
        if still_valid(known):
            return known
        _verified.pop(token, None)
    access = _verify(token)
    if len(_verified) >= _VERIFIED_CAPACITY:
        _verified.clear()  # tokens are short-lived: starting over is cheaper than LRU upkeep
    _verified[token] = access
    return access


def still_valid(access: AccessToken) -> bool:
    """Whether a token verified earlier may still be used: it has not expired. A
    long-lived use of one token (a subscription) asks again as it goes."""
    return _clock() < access.expires_at.timestamp() + LEEWAY_SECONDS


def _verify(token: str) -> AccessToken:
    try:
        decoded = jwt.decode(token, get_public_key_set(), algorithms=[SIGNING_ALGORITHM])
    except BadSignatureError as error:
        raise InvalidTokenError("bad signature") from error
    except UnsupportedAlgorithmError as error:
        raise InvalidTokenError(f"algorithm not accepted (only {SIGNING_ALGORITHM})") from error
    except InvalidKeyIdError as error:
        raise InvalidTokenError("signed by an unknown key") from error
    except (JoseError, ValueError) as error:
        raise InvalidTokenError("malformed token") from error

    if decoded.header.get("typ") not in _ACCEPTED_TYPES:
        raise InvalidTokenError(f"not an access token (typ must be {ACCESS_TOKEN_TYPE!r})")
    claims = decoded.claims
    try:
        _claims_registry().validate(claims)
    except ExpiredTokenError as error:
        raise InvalidTokenError("token expired") from error
    except MissingClaimError as error:
        raise InvalidTokenError(f"missing claim(s): {error.claim}") from error
    except ClaimError as error:
        reason = {"aud": "wrong audience", "iss": "wrong issuer"}.get(error.claim)
        raise InvalidTokenError(reason or f"invalid claim: {error.claim}") from error

    tenant_id = claims.get("tenant_id")
    scope = claims.get("scope", "")
    if not isinstance(claims["client_id"], str) or not isinstance(scope, str):
        raise InvalidTokenError("malformed claims")
    if tenant_id is not None and not isinstance(tenant_id, str):
        raise InvalidTokenError("malformed claims")
    return AccessToken(
        client_id=claims["client_id"],
        tenant_id=tenant_id,
        scopes=frozenset(scope.split()),
        jti=claims["jti"],
        expires_at=datetime.fromtimestamp(claims["exp"], UTC),
        sandbox=claims.get("sandbox") is True,
    )


@cache
def _claims_registry() -> jwt.JWTClaimsRegistry:
    essential: jwt.ClaimsOption = {"essential": True}
    return jwt.JWTClaimsRegistry(
        leeway=LEEWAY_SECONDS,
        iss={"essential": True, "value": get_settings().issuer},
        aud={"essential": True, "value": audience()},
        sub=essential,
        client_id=essential,
        iat=essential,
        exp=essential,
        jti=essential,
    )
