"""Per-request GraphQL context: who is calling (from the token only) and the request's session."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from fastapi import Depends, HTTPException, Request, WebSocket
from sqlmodel import Session
from starlette.requests import HTTPConnection
from strawberry.fastapi import BaseContext

from services.api.oauth.tokens import AccessToken, InvalidTokenError, verify_access_token
from services.core.db import get_engine, utcnow


@dataclass
class Context(BaseContext):
    session: Session
    token: AccessToken
    now: datetime = field(default_factory=utcnow)
    # What a WebSocket client sent in connection_init (carries its bearer token).
    connection_params: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        super().__init__()

    @property
    def tenant_id(self) -> str:
        """The caller's tenant. Only merchant tokens reach resolvers that ask for it."""
        if self.token.tenant_id is None:
            raise PermissionError("This operation needs a merchant token.")
        return self.token.tenant_id


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


def _open_session() -> Iterator[Session]:
    """A session for the request; the transaction extension decides commit or rollback."""
    with Session(get_engine(), expire_on_commit=False) as session:
        yield session


# Loading the GraphiQL page (a GET without a query) executes nothing, so needs no token.
_NOBODY = AccessToken(
    client_id="",
    tenant_id=None,
    scopes=frozenset(),
    jti="",
    expires_at=datetime.min.replace(tzinfo=UTC),
)


async def get_context(
    connection: HTTPConnection, session: Session = Depends(_open_session)
) -> Context:
    if isinstance(connection, WebSocket):
        return Context(session=session, token=_NOBODY)  # authenticated at connection_init
    request = cast(Request, connection)
    if request.method == "GET" and "query" not in request.query_params:
        return Context(session=session, token=_NOBODY)
    return Context(session=session, token=bearer_token(request.headers.get("authorization", "")))


def context_of(info: Any) -> Context:
    context: Context = info.context
    return context
