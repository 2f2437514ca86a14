"""Who is calling: the bearer token of a request, for GraphQL and plain HTTP endpoints alike.

The caller's identity (client, tenant, scopes, mode) comes from the verified access
token only, never from the request's body or parameters.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import HTTPException, Request

from services.api.oauth.tokens import AccessToken, InvalidTokenError, verify_access_token


def bearer_token(authorization: str) -> AccessToken:
    """The verified token of an `Authorization: Bearer …` value, or HTTP 401."""
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() != "bearer" or not credentials:
        raise HTTPException(
            status_code=401,
            detail="Send an access token: Authorization: Bearer <token> (get one at /oauth/token).",
            headers={"WWW-Authenticate": 'Bearer realm="lastmile"'},
        )
    try:
        return verify_access_token(credentials.strip())
    except InvalidTokenError as error:
        raise HTTPException(
            status_code=401,
            detail=f"Invalid access token: {error}",
            headers={
                "WWW-Authenticate": f'Bearer error="invalid_token", error_description="{error}"'
            },
        ) from error


def merchant_with(scope: str, *, live: bool = False) -> Callable[[Request], AccessToken]:
    """A FastAPI dependency: the caller's token, which must be a merchant's holding `scope`,
    and with `live` a live one (HTTP 401 without a valid token, 403 otherwise)."""
    kind = "a live merchant token" if live else "a merchant token"

    def dependency(request: Request) -> AccessToken:
        token = bearer_token(request.headers.get("authorization", ""))
        if scope not in token.scopes or token.tenant_id is None or (live and token.sandbox):
            raise HTTPException(403, f"This needs {kind} with the {scope!r} scope.")
        return token

    return dependency
