"""Developers: API clients (create with chosen scopes, secret shown once, rotate with an
overlap, revoke), sandbox credentials, webhook endpoints (create, test event, delivery
log, replay, rotate secret) and GraphiQL signed in as the merchant in sandbox mode.

Clients live with the authorization server (`services.api.oauth.clients`), webhooks in
`services.webhooks.service`: the same functions GraphQL's mutations call.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from services.accounts import roles
from services.accounts.roles import Capability
from services.api.oauth import clients
from services.api.oauth.tokens import issue_access_token
from services.api.web.client import CLIENT_ID as DASHBOARD_CLIENT_ID
from services.api.web.client import Viewer, viewer
from services.api.web.layout import page
from services.api.web.session import check_csrf
from services.core.errors import UserErrors
from services.core.models import OAuthClient, WebhookEndpoint
from services.webhooks import service as webhooks
from services.webhooks.events import EVENT_TYPES

router = APIRouter()

WRITE = "deliveries:write"
MAX_LOG = 50


def _can_manage(me: Viewer) -> bool:
    return me.can(Capability.MANAGE_DEVELOPERS) and me.has_scope(WRITE)


def _require_manage(me: Viewer, csrf_token: str) -> None:
    check_csrf(csrf_token, me.csrf_token)
    me.require(Capability.MANAGE_DEVELOPERS, WRITE)


def _overview(request: Request, me: Viewer, status_code: int = 200, **extra: Any) -> HTMLResponse:
    me.require(Capability.VIEW_DEVELOPERS)
    endpoints = list(webhooks.endpoints_page(me.db, me.merchant, None, 100))
    return page(
        me,
        request,
        "developers.html",
        "Developers",
        status_code=status_code,
        api_clients=[
            c
            for c in clients.of_tenant(me.platform, me.tenant_id)
            if c.client_id != DASHBOARD_CLIENT_ID
        ],
        endpoints=endpoints,
        event_types=EVENT_TYPES,
        grantable=sorted(roles.scopes_for(me.role)),
        can_manage=_can_manage(me),
        **{"secret": None, "errors": {}, **extra},
    )


@router.get("/dashboard/developers", response_class=HTMLResponse)
def developers(request: Request, me: Viewer = Depends(viewer)) -> HTMLResponse:
    return _overview(request, me)


@router.post("/dashboard/developers/clients", response_class=HTMLResponse)
async def create_client(request: Request, me: Viewer = Depends(viewer)) -> HTMLResponse:
    form = await request.form()
    _require_manage(me, str(form.get("csrf_token", "")))
    name = str(form.get("name", "")).strip()
    chosen = [str(s) for s in form.getlist("scope")]
    sandbox = form.get("sandbox") == "on"
    refused = set(chosen) - roles.scopes_for(me.role)
    if not name or not chosen or refused:
        problem = (
            "Name the client."
            if not name
            else "Choose at least one scope."
            if not chosen
            else f"Your role cannot grant: {', '.join(sorted(refused))}."
        )
        return _overview(request, me, status_code=422, errors={"client": problem})
    row, secret = clients.create_client(
        me.platform,
        name=name[:200],
        scope=" ".join(chosen),
        tenant_id=me.tenant_id,
        sandbox=sandbox,
    )
    me.platform.flush()
    return _overview(request, me, secret={"what": f"API client {row.name}", "id": row.client_id,
                                          "value": secret})  # fmt: skip


def _client(me: Viewer, client_id: str) -> OAuthClient:
    row = clients.client_of_tenant(me.platform, me.tenant_id, client_id)
    if row is None or row.revoked_at is not None:
        raise HTTPException(404, "No such API client.")
    return row


@router.post("/dashboard/developers/clients/{client_id}/rotate", response_class=HTMLResponse)
def rotate_client_secret(
    request: Request,
    client_id: str,
    csrf_token: str = Form(""),
    overlap_hours: int = Form(24),
    me: Viewer = Depends(viewer),
) -> HTMLResponse:
    _require_manage(me, csrf_token)
    row = _client(me, client_id)
    try:
        secret = clients.rotate_secret(me.platform, row, timedelta(hours=overlap_hours))
    except ValueError as error:
        return _overview(request, me, status_code=422, errors={"client": str(error)})
    note = f" The old secret works for {overlap_hours} more hours." if overlap_hours else ""
    return _overview(
        request, me,
        secret={"what": f"new secret of {row.name}.{note}", "id": row.client_id, "value": secret},
    )  # fmt: skip


@router.post("/dashboard/developers/clients/{client_id}/revoke")
def revoke_client(
    client_id: str, csrf_token: str = Form(""), me: Viewer = Depends(viewer)
) -> Response:
    _require_manage(me, csrf_token)
    clients.revoke(me.platform, _client(me, client_id), me.now)
    return RedirectResponse("/dashboard/developers?done=Client+revoked.", status_code=303)


@router.post("/dashboard/developers/webhooks", response_class=HTMLResponse)
async def create_endpoint(request: Request, me: Viewer = Depends(viewer)) -> HTMLResponse:
    form = await request.form()
    _require_manage(me, str(form.get("csrf_token", "")))
    url = str(form.get("url", ""))
    types = [str(t) for t in form.getlist("event_type")]
    try:
        row = webhooks.create_endpoint(me.db, me.merchant, url, types, me.now)
    except UserErrors as rejected:
        errors = {"webhook": " ".join(e.message for e in rejected.errors)}
        return _overview(request, me, status_code=422, errors=errors, webhook_url=url)
    return _overview(
        request, me, secret={"what": f"signing secret of {row.url}", "id": row.id,
                             "value": row.secret},
    )  # fmt: skip


@router.get("/dashboard/developers/webhooks/{endpoint_id}", response_class=HTMLResponse)
def endpoint_page(request: Request, endpoint_id: str, me: Viewer = Depends(viewer)) -> HTMLResponse:
    me.require(Capability.VIEW_DEVELOPERS)
    endpoint = webhooks.find_endpoint(me.db, me.merchant, endpoint_id)
    if endpoint is None:
        raise HTTPException(404, "No such webhook endpoint.")
    return _endpoint(request, me, endpoint, None)


def _endpoint(
    request: Request, me: Viewer, endpoint: WebhookEndpoint, secret: dict[str, str] | None
) -> HTMLResponse:
    """An endpoint and its delivery log: each message's payload and every attempt."""
    messages = list(webhooks.messages_page(me.db, me.merchant, endpoint.id, None, None, MAX_LOG))
    log = [(m, webhooks.attempts_of(me.db, me.merchant, m.id)) for m in messages[:MAX_LOG]]
    return page(
        me, request, "webhook.html", "Developers",
        endpoint=endpoint, log=log, can_manage=_can_manage(me), secret=secret,
    )  # fmt: skip


@router.post("/dashboard/developers/webhooks/{endpoint_id}/test")
def send_test(
    endpoint_id: str, csrf_token: str = Form(""), me: Viewer = Depends(viewer)
) -> Response:
    _require_manage(me, csrf_token)
    try:
        webhooks.send_test(me.db, me.merchant, endpoint_id, me.now)
    except UserErrors as rejected:
        return _to_endpoint(endpoint_id, " ".join(e.message for e in rejected.errors))
    return _to_endpoint(endpoint_id, "Test event sent; its attempt shows below in a moment.")


@router.post("/dashboard/developers/webhooks/{endpoint_id}/rotate", response_class=HTMLResponse)
def rotate_endpoint_secret(
    request: Request,
    endpoint_id: str,
    csrf_token: str = Form(""),
    overlap_hours: int = Form(24),
    me: Viewer = Depends(viewer),
) -> Response:
    _require_manage(me, csrf_token)
    try:
        row = webhooks.rotate_secret(
            me.db, me.merchant, endpoint_id, timedelta(hours=overlap_hours), me.now
        )
    except UserErrors as rejected:
        return _to_endpoint(endpoint_id, " ".join(e.message for e in rejected.errors))
    note = f" The old one signs too for {overlap_hours} hours." if overlap_hours else ""
    return _endpoint(
        request, me, row, {"what": f"new signing secret.{note}", "id": row.id, "value": row.secret}
    )


@router.post("/dashboard/developers/messages/{message_id}/replay")
def replay(message_id: str, csrf_token: str = Form(""), me: Viewer = Depends(viewer)) -> Response:
    _require_manage(me, csrf_token)
    try:
        message = webhooks.replay_message(me.db, me.merchant, message_id, me.now)
    except UserErrors as rejected:
        done = urlencode({"done": " ".join(e.message for e in rejected.errors)})
        return RedirectResponse(f"/dashboard/developers?{done}", status_code=303)
    return _to_endpoint(message.endpoint_id, "Replayed: it is sent again now.")


def _to_endpoint(endpoint_id: str, message: str) -> RedirectResponse:
    return RedirectResponse(
        f"/dashboard/developers/webhooks/{endpoint_id}?{urlencode({'done': message})}",
        status_code=303,
    )


@router.get("/dashboard/developers/graphiql", response_class=HTMLResponse)
def graphiql(request: Request, me: Viewer = Depends(viewer)) -> HTMLResponse:
    """GraphiQL with a sandbox token of the merchant's (test mode: nothing is routed or
    billed), within what the user's role may do."""
    me.require(Capability.VIEW_DEVELOPERS)
    scope = " ".join(sorted(roles.scopes_for(me.role) & me.token.scopes))
    token, _ = issue_access_token(
        client_id=DASHBOARD_CLIENT_ID,
        tenant_id=me.tenant_id,
        scope=scope,
        sandbox=True,
        subject=me.user.id,
    )
    return page(me, request, "graphiql.html", "Developers", token=token, scope=scope)
