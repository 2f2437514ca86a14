"""The OAuth 2.0 authorization server: Authlib's rules over Starlette requests.

Authlib ships no FastAPI integration, so this module supplies what its Flask and
Django integrations do: a request adapter, a response builder and a client model.
Programs use client credentials, authenticated with HTTP Basic alone; people's apps
use the authorization code and refresh token grants (`user_grants`), public apps
(no secret) identified by their client_id and PKCE.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote_plus

from authlib.oauth2 import AuthorizationServer as _AuthorizationServer
from authlib.oauth2.rfc6749 import (
    ClientMixin,
    InvalidClientError,
    InvalidRequestError,
    InvalidScopeError,
    OAuth2Error,
    OAuth2Payload,
    OAuth2Request,
    UnsupportedGrantTypeError,
    grants,
    scope_to_list,
)
from sqlmodel import Session
from starlette.datastructures import FormData, QueryParams
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from services.api.oauth.clients import ALL_SCOPES, find_client, verify_secret
from services.api.oauth.token_management import IntrospectionEndpoint, RevocationEndpoint
from services.api.oauth.tokens import issue_access_token
from services.api.oauth.user_grants import (
    AuthorizationCodeGrant,
    RefreshTokenGrant,
    S256CodeChallenge,
    generate_user_token,
)
from services.core.models import OAuthClient

logger = logging.getLogger(__name__)

AUTH_METHOD = "client_secret_basic"
PUBLIC_AUTH_METHOD = "none"  # public apps: client_id only, their codes bound by PKCE
_FORM_TYPE = "application/x-www-form-urlencoded"


class Client(ClientMixin):
    """Authlib's view of an OAuthClient row: its grant types, redirect URIs and how it
    authenticates (a secret by HTTP Basic, or none for a public app)."""

    def __init__(self, row: OAuthClient) -> None:
        self.row = row

    @property
    def scopes(self) -> frozenset[str]:
        return frozenset(self.row.scope.split())

    def get_client_id(self) -> str:
        return self.row.client_id

    def get_default_redirect_uri(self) -> None:
        return None

    def get_allowed_scope(self, scope: str | None) -> str:
        """What to grant: the requested scopes the client holds; all of them if none was asked."""
        requested = set(scope_to_list(scope) or []) or self.scopes
        return " ".join(held for held in self.row.scope.split() if held in requested)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.row.redirect_uris  # exactly, never by prefix

    def check_client_secret(self, client_secret: str) -> bool:
        return verify_secret(self.row, client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if self.row.public:
            return method == PUBLIC_AUTH_METHOD and endpoint in ("token", "revocation")
        return method == AUTH_METHOD

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and self.check_grant_type("authorization_code")

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.row.grant_types


class ClientCredentialsGrant(grants.ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = [AUTH_METHOD]

    def validate_requested_scope(self) -> None:
        """A client may narrow its scope but never widen it (RFC 6749 section 3.3)."""
        requested = set(scope_to_list(self.request.payload.scope) or [])
        refused = requested - self.client.scopes
        if refused:
            raise InvalidScopeError(f"The client may not request: {' '.join(sorted(refused))}")


class _FormPayload(OAuth2Payload):
    """A form's or a query's parameters (repeats are refused before any grant runs)."""

    def __init__(self, form: FormData | QueryParams) -> None:
        self._form = form

    @property
    def data(self) -> FormData | QueryParams:
        return self._form

    @property
    def datalist(self) -> dict[str, list[Any]]:
        return {key: self._form.getlist(key) for key in self._form}


class TokenRequest(OAuth2Request):
    """A token request whose form was already read (Starlette reads bodies asynchronously)."""

    def __init__(self, request: Request, form: FormData | QueryParams) -> None:
        super().__init__(method=request.method, uri=str(request.url), headers=request.headers)
        self.payload = _FormPayload(form)

    @property
    def form(self) -> FormData | QueryParams:
        return self.payload.data


GRANT_TYPES = (
    ClientCredentialsGrant.GRANT_TYPE,
    AuthorizationCodeGrant.GRANT_TYPE,
    RefreshTokenGrant.GRANT_TYPE,
)


async def read_token_request(request: Request) -> TokenRequest:
    """Parse the token request, refusing what RFC 6749 calls malformed before any grant runs.

    Authlib would call a missing grant_type "unsupported", explains no unsupported
    one, and ignores repeated parameters, so those checks happen here.
    """
    token_request = await read_form_request(request)
    grant_type = token_request.form.get("grant_type")
    if not grant_type:
        raise InvalidRequestError("Missing 'grant_type' parameter.")
    if grant_type not in GRANT_TYPES:
        raise OAuth2Error(
            error=UnsupportedGrantTypeError.error,
            description=f"Supported grant types: {', '.join(GRANT_TYPES)}.",
        )
    return token_request


async def read_form_request(request: Request) -> TokenRequest:
    """A form POST to the token, revocation or introspection endpoint: form-encoded, no
    parameter repeated, no secret in the body (HTTP Basic only)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != _FORM_TYPE:
        raise InvalidRequestError(f"The token request body must be {_FORM_TYPE}.")
    form = await request.form()
    token_request = TokenRequest(request, form)
    repeated = sorted(key for key in form if len(form.getlist(key)) > 1)
    if repeated:
        raise InvalidRequestError(f"Parameters must not be repeated: {', '.join(repeated)}.")
    if "client_secret" in form:
        raise InvalidClientError(
            status_code=401,
            description="client_secret_post is not supported: send credentials with HTTP Basic.",
        )
    return token_request


class AuthorizationServer(_AuthorizationServer):
    """One per request: it reads clients through the request's database session."""

    def __init__(self, session: Session) -> None:
        super().__init__(scopes_supported=list(ALL_SCOPES))
        self._session = session
        self.register_grant(ClientCredentialsGrant)
        self.register_grant(AuthorizationCodeGrant, [S256CodeChallenge(required=True)])
        self.register_grant(RefreshTokenGrant)
        self.register_endpoint(RevocationEndpoint)
        self.register_endpoint(IntrospectionEndpoint)
        self.register_client_auth_method(AUTH_METHOD, self._authenticate_with_basic)
        self.register_token_generator(ClientCredentialsGrant.GRANT_TYPE, self._generate_token)
        for grant in (AuthorizationCodeGrant, RefreshTokenGrant):
            self.register_token_generator(grant.GRANT_TYPE, self._generate_user_token)

    @property
    def session(self) -> Session:
        return self._session

    def query_client(self, client_id: str) -> Client | None:
        row = find_client(self._session, client_id)
        return Client(row) if row and row.revoked_at is None else None

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        """Access tokens are self-contained JWTs: there is nothing to store."""

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        if name == "after_authenticate_client":
            logger.info("oauth client authenticated: %s", kwargs["client"].get_client_id())

    def create_oauth2_request(self, request: TokenRequest) -> TokenRequest:
        """The endpoint has already turned the Starlette request into a TokenRequest."""
        return request

    def handle_response(
        self, status: int, body: dict[str, Any], headers: list[tuple[str, str]]
    ) -> Response:
        if status == 302:  # the authorization endpoint's answer: back to the client
            location = dict(headers)["Location"]
            return RedirectResponse(location, status_code=302)
        return JSONResponse(body, status_code=status, headers=dict(headers))

    def _authenticate_with_basic(
        self, query_client: Callable[[str], Client | None], request: OAuth2Request
    ) -> Client | None:
        """HTTP Basic, decoded strictly; an unknown id and a wrong secret fail alike."""
        credentials = _basic_credentials(request.headers.get("authorization"))
        if credentials is None:
            return None
        client_id, secret = credentials
        client = query_client(client_id)
        return client if client and client.check_client_secret(secret) else None

    def _generate_token(
        self, grant_type: str, client: Client, scope: str | None = None, **_: Any
    ) -> dict[str, Any]:
        """An RFC 9068 JWT, and no refresh token for client credentials (RFC 6749 4.4.3)."""
        granted = client.get_allowed_scope(scope)
        access_token, expires_in = issue_access_token(
            client_id=client.row.client_id,
            tenant_id=client.row.tenant_id,
            scope=granted,
            sandbox=client.row.sandbox,
        )
        return {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": expires_in,
            "scope": granted,
        }

    def _generate_user_token(
        self, grant_type: str, client: Client, user: Any = None, scope: str | None = None, **_: Any
    ) -> dict[str, Any]:
        return generate_user_token(self._session, client.row.client_id, user, scope)


def _basic_credentials(header: str | None) -> tuple[str, str] | None:
    """(client_id, secret) from an HTTP Basic header, form-decoded per RFC 6749 section 2.3.1."""
    scheme, _, encoded = (header or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, separator, secret = decoded.partition(":")
    if not separator or not client_id or not secret:
        return None
    return unquote_plus(client_id), unquote_plus(secret)
