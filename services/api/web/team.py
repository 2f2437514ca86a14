"""Team and settings: members and their roles, invitations, company profile, default
service area and which notifications recipients get. Everyone sees the team; owners
and admins change it."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from services.accounts import merchant, team
from services.accounts.roles import DESCRIPTIONS, Capability, Role
from services.api.web.client import Viewer, viewer
from services.api.web.layout import page
from services.api.web.session import check_csrf
from services.core import areas
from services.core.errors import UserErrors

router = APIRouter()


def _team(request: Request, me: Viewer, status_code: int = 200, **extra: object) -> HTMLResponse:
    me.require(Capability.VIEW_TEAM)
    settings = merchant.settings_of(me.platform, me.tenant_id)
    return page(
        me, request, "team.html", "Team", status_code=status_code,
        members=team.members(me.platform, me.tenant_id),
        invitations=team.pending_invitations(me.platform, me.tenant_id, me.now),
        roles=list(Role), descriptions=DESCRIPTIONS, settings=settings,
        areas=areas.all_areas(me.db),
        can_manage=me.can(Capability.MANAGE_TEAM),
        **{"errors": {}, **extra},
    )  # fmt: skip


def _done(message: str) -> RedirectResponse:
    return RedirectResponse(f"/dashboard/team?{urlencode({'done': message})}", status_code=303)


def _manage(me: Viewer, csrf_token: str) -> None:
    check_csrf(csrf_token, me.csrf_token)
    me.require(Capability.MANAGE_TEAM)


@router.get("/dashboard/team", response_class=HTMLResponse)
def team_page(request: Request, me: Viewer = Depends(viewer)) -> HTMLResponse:
    return _team(request, me)


@router.post("/dashboard/team/invitations", response_class=HTMLResponse)
def invite(
    request: Request,
    csrf_token: str = Form(""),
    email: str = Form(""),
    role: str = Form(""),
    me: Viewer = Depends(viewer),
) -> Response:
    _manage(me, csrf_token)
    try:
        team.invite(me.platform, me.tenant_id, me.user, email, role, me.now)
    except UserErrors as rejected:
        errors = {e.field[-1]: e.message for e in rejected.errors}
        return _team(request, me, status_code=422, errors=errors, invite_email=email)
    return _done(f"Invitation sent to {email}.")


@router.post("/dashboard/team/invitations/{invitation_id}/revoke")
def revoke_invitation(
    invitation_id: str, csrf_token: str = Form(""), me: Viewer = Depends(viewer)
) -> Response:
    _manage(me, csrf_token)
    return _attempt(
        lambda: team.revoke_invitation(me.platform, me.tenant_id, invitation_id, me.now),
        "Invitation revoked.",
    )


@router.post("/dashboard/team/members/{membership_id}/role")
def change_role(
    membership_id: str,
    csrf_token: str = Form(""),
    role: str = Form(""),
    me: Viewer = Depends(viewer),
) -> Response:
    _manage(me, csrf_token)
    return _attempt(lambda: team.change_role(me.platform, me.tenant_id, membership_id, role),
                    f"Role changed to {role}.")  # fmt: skip


@router.post("/dashboard/team/members/{membership_id}/remove")
def remove_member(
    membership_id: str, csrf_token: str = Form(""), me: Viewer = Depends(viewer)
) -> Response:
    _manage(me, csrf_token)
    return _attempt(lambda: team.remove(me.platform, me.tenant_id, membership_id),
                    "Member removed.")  # fmt: skip


def _attempt(change: Callable[[], object], done: str) -> RedirectResponse:
    try:
        change()
    except UserErrors as rejected:
        return _done(" ".join(e.message for e in rejected.errors))
    return _done(done)


@router.post("/dashboard/team/profile", response_class=HTMLResponse)
def profile(
    request: Request,
    csrf_token: str = Form(""),
    name: str = Form(""),
    legal_name: str = Form(""),
    address: str = Form(""),
    support_email: str = Form(""),
    support_phone: str = Form(""),
    default_service_area: str = Form(""),
    me: Viewer = Depends(viewer),
) -> Response:
    _manage(me, csrf_token)
    details = merchant.Profile(
        name=name, legal_name=legal_name, address=address, support_email=support_email,
        support_phone=support_phone, default_service_area=default_service_area,
    )  # fmt: skip
    try:
        merchant.update_profile(me.platform, me.tenant_id, details, me.now)
    except UserErrors as rejected:
        errors = {e.field[-1]: e.message for e in rejected.errors}
        return _team(request, me, status_code=422, errors=errors)
    return _done("Company profile saved.")
