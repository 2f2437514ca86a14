"""Per-request GraphQL context: who is calling (from the token only) and the request's session."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from fastapi import Request, WebSocket
from sqlmodel import Session
from starlette.requests import HTTPConnection
from strawberry.fastapi import BaseContext

from services.api.auth import bearer_token
from services.api.oauth.tokens import AccessToken
from services.core.db import get_engine, merchant_session, utcnow
from services.core.principal import Merchant


@dataclass
class Context(BaseContext):
    token: AccessToken
    now: datetime = field(default_factory=utcnow)
    # What a WebSocket client sent in connection_init (carries its bearer token).
    connection_params: dict[str, Any] | None = None
    _session: Session | None = None

    def __post_init__(self) -> None:
        super().__init__()

    @property
    def session(self) -> Session:
        """The request's session, opened on first use (in the thread that executes the
        operation); the RequestTransaction extension commits or rolls back, then closes it."""
        if self._session is None:
            if self.token.tenant_id is not None:
                self._session = merchant_session(self.merchant)
            else:  # the operator acts on every tenant's rows
                self._session = Session(get_engine(), expire_on_commit=False)
        return self._session

    def close_session(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    @property
    def tenant_id(self) -> str:
        """The caller's tenant. Only merchant tokens reach resolvers that ask for it."""
        if self.token.tenant_id is None:
            raise PermissionError("This operation needs a merchant token.")
        return self.token.tenant_id

    @property
    def merchant(self) -> Merchant:
        """The caller's tenant in the mode of its credentials (live or sandbox)."""
        return Merchant(self.tenant_id, self.token.sandbox)


# Loading the GraphiQL page (a GET without a query) executes nothing, so needs no token.
_NOBODY = AccessToken(
    client_id="",
    tenant_id=None,
    scopes=frozenset(),
    jti="",
    expires_at=datetime.min.replace(tzinfo=UTC),
)


async def get_context(connection: HTTPConnection) -> Context:
    if isinstance(connection, WebSocket):
        return Context(token=_NOBODY)  # authenticated at connection_init
    request = cast(Request, connection)
    if request.method == "GET" and "query" not in request.query_params:
        return Context(token=_NOBODY)
    return Context(token=bearer_token(request.headers.get("authorization", "")))


def context_of(info: Any) -> Context:
    context: Context = info.context
    return context
