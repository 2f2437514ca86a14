"""HTTP endpoints of the user-facing grants: authorization (RFC 6749 3.1, with the
consent screen), revocation (RFC 7009) and introspection (RFC 7662).

The authorization endpoint knows the person by their browser session (the sign-in
pages in services/api/web start it). The platform's own apps are approved without
asking; any other app acting for a merchant gets a consent screen, whose answer is a
CSRF-protected form. Errors about the client or its redirect URI are shown here,
never sent to an unverified URI.
"""

from __future__ import annotations

from urllib.parse import urlencode

from authlib.oauth2 import OAuth2Error
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from services.accounts import merchant, roles, users
from services.api.deps import get_session
from services.api.oauth.server import AuthorizationServer, TokenRequest, read_form_request
from services.api.oauth.user_grants import GrantedUser
from services.api.web.rendering import render
from services.api.web.session import browser, check_csrf

router = APIRouter(tags=["oauth"])

AUTHORIZE_PATH = "/oauth/authorize"
REVOKE_PATH = "/oauth/revoke"
INTROSPECT_PATH = "/oauth/introspect"

SCOPE_MEANINGS = {
    "deliveries:read": "see your deliveries, their tracking and your webhook endpoints",
    "deliveries:write": "book, change and cancel deliveries, and manage webhooks",
    "billing:read": "see your usage and invoices",
}


@router.get(AUTHORIZE_PATH, include_in_schema=False)
def authorize(request: Request, db: Session = Depends(get_session)) -> Response:
    return _authorize(request, db, decision=None)


@router.post(AUTHORIZE_PATH, include_in_schema=False)
def decide(
    request: Request,
    csrf_token: str = Form(""),
    decision: str = Form(""),
    db: Session = Depends(get_session),
) -> Response:
    check_csrf(csrf_token, browser(request, db).csrf_token)
    return _authorize(request, db, decision=decision == "allow")


def _authorize(request: Request, db: Session, decision: bool | None) -> Response:
    current = browser(request, db)
    if current.row is None:
        query = urlencode({"next": f"{AUTHORIZE_PATH}?{request.url.query}"})
        return RedirectResponse(f"/signin?{query}", status_code=303)
    user = users.get(db, current.row.user_id)
    membership = users.membership_of(db, current.row.user_id)
    if user is None or membership is None:
        return _problem(request, "You are not a member of any merchant.")
    grant_user = GrantedUser(
        user_id=user.id,
        tenant_id=membership.tenant_id,
        allowed=roles.scopes_for(membership.role),
    )
    server = AuthorizationServer(db)
    oauth_request = TokenRequest(request, request.query_params)
    try:
        grant = server.get_consent_grant(oauth_request, end_user=grant_user)
    except OAuth2Error as error:
        if error.redirect_uri:  # the client and its URI are verified: tell the client
            return server.handle_error_response(oauth_request, error)
        return _problem(request, f"{error.error}: {error.description or ''}".strip(": "))
    client = grant.client
    if decision is None and not client.row.first_party:
        scopes = [s for s in (oauth_request.scope or "").split() if s in grant_user.allowed]
        return render(
            request,
            "consent.html",
            app_name=client.row.name,
            company=merchant.company_name(db, membership.tenant_id),
            user=user,
            scopes=[(scope, SCOPE_MEANINGS.get(scope, scope)) for scope in scopes],
            redirect_uri=oauth_request.payload.redirect_uri,
            query=request.url.query,
            csrf_token=current.csrf_token,
        )
    approved = decision is not False
    response: Response = server.create_authorization_response(
        oauth_request, grant_user=grant_user if approved else None, grant=grant
    )
    return response


def _problem(request: Request, message: str) -> Response:
    return render(
        request,
        "error.html",
        status_code=400,
        title="This sign-in request cannot be completed",
        message=message,
        back="/dashboard",
    )


@router.post(REVOKE_PATH)
async def revoke(request: Request, session: Session = Depends(get_session)) -> Response:
    """RFC 7009: revoke an access or refresh token issued to the calling client."""
    return await _endpoint("revocation", request, session)


@router.post(INTROSPECT_PATH)
async def introspect(request: Request, session: Session = Depends(get_session)) -> Response:
    """RFC 7662: what a token grants, for an authenticated client."""
    return await _endpoint("introspection", request, session)


async def _endpoint(name: str, request: Request, session: Session) -> Response:
    server = AuthorizationServer(session)
    try:
        form_request = await read_form_request(request)
    except OAuth2Error as error:
        return server.handle_error_response(None, error)
    response: Response = await run_in_threadpool(
        server.create_endpoint_response, name, form_request
    )
    return response
