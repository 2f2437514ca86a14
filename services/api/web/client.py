"""The dashboard as an app of the platform's own OAuth server.

It signs people in like any app would: authorization code with PKCE (S256) and a
`state` checked on return, against the first-party public client `lastmile-dashboard`
(no consent screen). The tokens it receives are sealed in the browser's session; each
page verifies the access token, refreshing it (rotation) when it is about to expire.
The token's scopes come from the user's role, so what a page may do is what the
token allows: a viewer's token cannot book, a developer's cannot read billing.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session
from starlette.datastructures import FormData

from services.accounts import roles, sessions, users
from services.accounts.roles import Capability, Role
from services.api.deps import get_session
from services.api.oauth import clients, revocations
from services.api.oauth.server import AuthorizationServer, TokenRequest
from services.api.oauth.token_management import RevocationEndpoint
from services.api.oauth.tokens import AccessToken, InvalidTokenError, verify_access_token
from services.api.web.session import browser, safe_next, secure
from services.core.db import merchant_transaction, utcnow
from services.core.models import Membership, OAuthClient, UserAccount, WebSession
from services.core.principal import Merchant
from services.core.settings import get_settings

router = APIRouter(include_in_schema=False)

CLIENT_ID = "lastmile-dashboard"
CALLBACK_PATH = "/dashboard/callback"
LOGIN_COOKIE = "lm_login"
REFRESH_MARGIN_SECONDS = 60


class Redirect(Exception):
    """Raised by page dependencies: send the browser elsewhere (to sign in, mostly)."""

    def __init__(self, location: str) -> None:
        super().__init__(location)
        self.location = location


def callback_uri() -> str:
    return get_settings().issuer + CALLBACK_PATH


def dashboard_client(db: Session) -> OAuthClient:
    """The dashboard's client, registered on first use, its redirect URI following the
    configured issuer."""
    client = clients.find_client(db, CLIENT_ID)
    if client is None:
        client, _ = clients.create_app(
            db,
            name="Lastmile dashboard",
            redirect_uris=[callback_uri()],
            public=True,
            first_party=True,
            client_id=CLIENT_ID,
        )
        db.flush()
    elif client.redirect_uris != [callback_uri()]:
        client.redirect_uris = [callback_uri()]
        db.add(client)
    return client


@router.get("/dashboard/login")
def login(
    request: Request, next: str = "/dashboard", db: Session = Depends(get_session)
) -> Response:
    """Start the authorization code flow: a fresh state and PKCE verifier, kept in a
    cookie only the callback reads."""
    dashboard_client(db)
    state = secrets.token_urlsafe(24)
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    query = urlencode(
        {
            "response_type": "code",
            "client_id": CLIENT_ID,
            "redirect_uri": callback_uri(),
            "scope": clients.MERCHANT_SCOPES,
            "state": state,
            "code_challenge": challenge.rstrip(b"=").decode(),
            "code_challenge_method": "S256",
        }
    )
    response = RedirectResponse(f"/oauth/authorize?{query}", status_code=303)
    pending = json.dumps({"state": state, "verifier": verifier, "next": safe_next(next)})
    response.set_cookie(
        LOGIN_COOKIE,
        base64.urlsafe_b64encode(pending.encode()).decode(),
        max_age=600,
        httponly=True,
        secure=secure(),
        samesite="lax",
        path=CALLBACK_PATH,
    )
    return response


@router.get(CALLBACK_PATH)
def callback(
    request: Request,
    code: str = "",
    state: str = "",
    error: str = "",
    db: Session = Depends(get_session),
) -> Response:
    """The authorization server sent the browser back: check `state`, swap the code (and
    the PKCE verifier) for tokens, and keep them sealed in the session."""
    pending = _pending(request)
    if pending is None or not state or not secrets.compare_digest(state, pending["state"]):
        raise HTTPException(400, "The sign-in answer does not match the request (state).")
    if error or not code:
        raise HTTPException(403, f"Sign-in was not granted ({error or 'no code'}).")
    current = browser(request, db)
    if current.row is None or current.secret is None:
        raise Redirect("/signin")
    tokens = token_call(
        db,
        request,
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": callback_uri(),
            "client_id": CLIENT_ID,
            "code_verifier": pending["verifier"],
        },
    )
    if "access_token" not in tokens:
        raise HTTPException(
            400, f"Sign-in failed: {tokens.get('error')} {tokens.get('error_description', '')}"
        )
    _keep(current.row, current.secret, tokens)
    db.add(current.row)
    response = RedirectResponse(pending["next"], status_code=303)
    response.delete_cookie(LOGIN_COOKIE, path=CALLBACK_PATH)
    return response


def token_call(db: Session, request: Request, form: dict[str, str]) -> dict[str, Any]:
    """The token endpoint, called in-process (same rules, same code path as over HTTP)."""
    token_request = TokenRequest(request, FormData(list(form.items())))
    token_request.method = "POST"  # what it would be over HTTP
    response = AuthorizationServer(db).create_token_response(token_request)
    answer: dict[str, Any] = json.loads(response.body)
    return answer


def revoke_session_tokens(db: Session, row: WebSession, secret: str) -> None:
    """Signing out: the session's refresh token family is revoked (RFC 7009)."""
    tokens = sessions.unseal(row, secret)
    if not tokens:
        return
    endpoint = RevocationEndpoint(AuthorizationServer(db))
    found = endpoint.query_token(tokens["refresh_token"], "refresh_token")
    if found is not None:
        endpoint.revoke_token(found, None)


@dataclass
class Viewer:
    """Who is looking at a dashboard page, and for which merchant.

    `db` is confined to the merchant's live rows (the merchant engine, row-level
    security); `platform` is the authorization server's own (people, sessions, API
    clients), which the accounts and OAuth code filters by tenant itself.
    """

    user: UserAccount
    membership: Membership
    token: AccessToken
    csrf_token: str
    db: Session
    platform: Session
    session_row: WebSession
    now: datetime = field(default_factory=utcnow)

    @property
    def tenant_id(self) -> str:
        assert self.token.tenant_id is not None
        return self.token.tenant_id

    @property
    def merchant(self) -> Merchant:
        """The dashboard acts in live mode; the sandbox is for API credentials."""
        return Merchant(self.tenant_id, sandbox=False)

    @property
    def role(self) -> Role:
        return Role(self.membership.role)

    def can(self, capability: Capability) -> bool:
        return roles.allows(self.role, capability)

    def has_scope(self, scope: str) -> bool:
        return scope in self.token.scopes

    def require(self, capability: Capability, scope: str | None = None) -> None:
        """HTTP 403 unless both the role and the token allow it."""
        if not self.can(capability) or (scope is not None and not self.has_scope(scope)):
            raise HTTPException(403, "Your role does not allow this.")


def viewer(request: Request, db: Session = Depends(get_session)) -> Iterator[Viewer]:
    """The signed-in user of a dashboard page, and a transaction confined to their
    merchant's rows, committed when the page succeeds."""
    path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    current = browser(request, db)
    if current.row is None or current.secret is None:
        raise Redirect("/signin?" + urlencode({"next": path}))
    tokens = sessions.unseal(current.row, current.secret)
    access = _verified(tokens)
    if tokens is not None and access is None:
        tokens = token_call(
            db,
            request,
            {
                "grant_type": "refresh_token",
                "refresh_token": tokens["refresh_token"],
                "client_id": CLIENT_ID,
            },
        )
        if "access_token" in tokens:
            _keep(current.row, current.secret, tokens)
            db.add(current.row)
            access = _verified(tokens)
    if access is None or access.tenant_id is None:
        raise Redirect("/dashboard/login?" + urlencode({"next": path}))
    user = users.get(db, current.row.user_id)
    membership = users.membership_of(db, current.row.user_id)
    if user is None or membership is None or membership.tenant_id != access.tenant_id:
        raise HTTPException(403, "You are no longer a member of this merchant.")
    with merchant_transaction(Merchant(access.tenant_id)) as confined:
        yield Viewer(
            user=user,
            membership=membership,
            token=access,
            csrf_token=sessions.csrf_token(current.secret),
            db=confined,
            platform=db,
            session_row=current.row,
        )


def _verified(tokens: dict[str, Any] | None) -> AccessToken | None:
    """The session's access token if valid for a while yet (and not revoked)."""
    if not tokens:
        return None
    try:
        access = verify_access_token(tokens["access_token"])
    except InvalidTokenError:
        return None
    if access.expires_at.timestamp() - time.time() < REFRESH_MARGIN_SECONDS:
        return None
    return None if revocations.is_revoked(access.jti) else access


def _keep(row: WebSession, secret: str, tokens: dict[str, Any]) -> None:
    sessions.seal(
        row,
        secret,
        {"access_token": tokens["access_token"], "refresh_token": tokens["refresh_token"]},
    )
    row.last_seen_at = utcnow()


def _pending(request: Request) -> dict[str, str] | None:
    raw = request.cookies.get(LOGIN_COOKIE)
    if not raw:
        return None
    try:
        value: dict[str, str] = json.loads(base64.urlsafe_b64decode(raw.encode()))
    except ValueError:
        return None
    return value
