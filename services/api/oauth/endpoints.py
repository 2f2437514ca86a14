"""HTTP endpoints of the authorization server: token, RFC 8414 metadata, JWKS (the
user-facing ones, authorize, revoke and introspect, are in `user_endpoints`)."""

from __future__ import annotations

from typing import Any

from authlib.oauth2 import OAuth2Error
from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from services.api.deps import get_session
from services.api.oauth.clients import ALL_SCOPES
from services.api.oauth.keys import SIGNING_ALGORITHM, public_jwks
from services.api.oauth.server import (
    AUTH_METHOD,
    GRANT_TYPES,
    PUBLIC_AUTH_METHOD,
    AuthorizationServer,
    read_token_request,
)
from services.api.oauth.user_endpoints import AUTHORIZE_PATH, INTROSPECT_PATH, REVOKE_PATH
from services.api.oauth.user_grants import PKCE_METHOD
from services.core.settings import get_settings

router = APIRouter(tags=["oauth"])

TOKEN_PATH = "/oauth/token"
JWKS_PATH = "/oauth/jwks.json"
# Public documents: clients and resource servers may cache them briefly.
_PUBLIC_CACHE = {"Cache-Control": "public, max-age=300"}


@router.post(TOKEN_PATH)
async def issue_token(request: Request, session: Session = Depends(get_session)) -> Response:
    """RFC 6749 token endpoint (client credentials, HTTP Basic)."""
    server = AuthorizationServer(session)
    try:
        token_request = await read_token_request(request)
    except OAuth2Error as error:
        return server.handle_error_response(None, error)
    # Authlib and the database session are synchronous: keep them off the event loop.
    response: Response = await run_in_threadpool(server.create_token_response, token_request)
    return response


@router.get("/.well-known/oauth-authorization-server")
def authorization_server_metadata() -> JSONResponse:
    """RFC 8414 metadata, so clients discover the endpoints and verifiers find the keys."""
    issuer = get_settings().issuer
    metadata: dict[str, Any] = {
        "issuer": issuer,
        "authorization_endpoint": issuer + AUTHORIZE_PATH,
        "token_endpoint": issuer + TOKEN_PATH,
        "revocation_endpoint": issuer + REVOKE_PATH,
        "introspection_endpoint": issuer + INTROSPECT_PATH,
        "jwks_uri": issuer + JWKS_PATH,
        "scopes_supported": list(ALL_SCOPES),
        "response_types_supported": ["code"],
        "grant_types_supported": list(GRANT_TYPES),
        "code_challenge_methods_supported": [PKCE_METHOD],
        "token_endpoint_auth_methods_supported": [AUTH_METHOD, PUBLIC_AUTH_METHOD],
        "revocation_endpoint_auth_methods_supported": [AUTH_METHOD, PUBLIC_AUTH_METHOD],
        "introspection_endpoint_auth_methods_supported": [AUTH_METHOD],
        "access_token_signing_alg_values_supported": [SIGNING_ALGORITHM],
    }
    return JSONResponse(metadata, headers=_PUBLIC_CACHE)


@router.get(JWKS_PATH)
def jwks() -> JSONResponse:
    return JSONResponse(dict(public_jwks()), headers=_PUBLIC_CACHE)
