"""Signing up, verifying an address, signing in and out, and joining by invitation.

These pages belong to the authorization server: the session they start is what
`/oauth/authorize` recognises; the dashboard then signs in through it like any app.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session

from services.accounts import merchant, sessions, team, users
from services.api.deps import get_session
from services.api.oauth.user_grants import revoke_user
from services.api.web.client import revoke_session_tokens
from services.api.web.rendering import render
from services.api.web.session import (
    anonymous_csrf,
    browser,
    check_csrf,
    clear_session_cookie,
    client_address,
    remember_csrf,
    safe_next,
    set_session_cookie,
)
from services.billing.plans import subscribe_new_merchant
from services.core.db import utcnow
from services.core.errors import UserErrors

router = APIRouter(include_in_schema=False)
DEFAULT_NEXT = "/dashboard"


def _errors(rejected: UserErrors) -> dict[str, str]:
    return {error.field[-1] if error.field else "": error.message for error in rejected.errors}


@router.get("/")
def home() -> RedirectResponse:
    return RedirectResponse("/dashboard", status_code=303)


@router.get("/signup")
def signup_page(request: Request) -> Response:
    page = render(request, "signup.html", csrf_token=anonymous_csrf(request), form={}, errors={})
    return remember_csrf(request, page)


@router.post("/signup")
def signup(
    request: Request,
    csrf_token: str = Form(""),
    company: str = Form(""),
    name: str = Form(""),
    email: str = Form(""),
    password: str = Form(""),
    db: Session = Depends(get_session),
) -> Response:
    check_csrf(csrf_token, request.cookies.get("lm_csrf"))
    form = users.SignUp(company=company, name=name, email=email, password=password)
    now = utcnow()
    try:
        tenant, user = users.sign_up(db, form, now)
    except UserErrors as rejected:
        return render(
            request,
            "signup.html",
            status_code=422,
            csrf_token=csrf_token,
            form=form,
            errors=_errors(rejected),
        )
    subscribe_new_merchant(db, tenant.id, now.date())
    return render(request, "check_inbox.html", email=user.email)


@router.get("/verify-email")
def verify_email(request: Request, token: str = "", db: Session = Depends(get_session)) -> Response:
    user = users.verify_email(db, token, utcnow()) if token else None
    return render(
        request,
        "verified.html",
        status_code=200 if user else 400,
        ok=user is not None,
        name=user.name if user else "",
        email=user.email if user else "",
    )


@router.post("/verify-email/resend")
def resend_verification(
    request: Request,
    csrf_token: str = Form(""),
    email: str = Form(""),
    db: Session = Depends(get_session),
) -> Response:
    check_csrf(csrf_token, request.cookies.get("lm_csrf"))
    user = users.find_by_email(db, email)
    if user is not None and user.email_verified_at is None:
        users.send_verification(db, user, utcnow())
    # The same answer whether or not the address has an account.
    return render(request, "check_inbox.html", email=users.normalize_email(email))


@router.get("/signin")
def signin_page(request: Request, next: str = "", email: str = "") -> Response:
    page = render(
        request,
        "signin.html",
        csrf_token=anonymous_csrf(request),
        next=safe_next(next),
        email=email,
        notice=None,
        error=None,
        unverified_email=None,
    )
    return remember_csrf(request, page)


@router.post("/signin")
def signin(
    request: Request,
    csrf_token: str = Form(""),
    email: str = Form(""),
    password: str = Form(""),
    next: str = Form(""),
    db: Session = Depends(get_session),
) -> Response:
    check_csrf(csrf_token, request.cookies.get("lm_csrf"))
    now = utcnow()
    try:
        user = users.authenticate(db, email, password, client_address(request), now)
    except users.SignInRefused as refused:
        return render(
            request,
            "signin.html",
            status_code=401,
            csrf_token=csrf_token,
            next=safe_next(next),
            email=email,
            notice=None,
            error=str(refused),
            unverified_email=refused.unverified_user.email if refused.unverified_user else None,
        )
    current = browser(request, db)
    if current.row is not None:  # a new session for a new sign-in (no fixation)
        sessions.end(db, current.row)
    _, secret = sessions.start(db, user.id, now, request.headers.get("user-agent"))
    response = RedirectResponse(safe_next(next), status_code=303)
    set_session_cookie(response, secret)
    return response


@router.post("/signout")
def signout(
    request: Request, csrf_token: str = Form(""), db: Session = Depends(get_session)
) -> Response:
    current = browser(request, db)
    check_csrf(csrf_token, current.csrf_token)
    if current.row is not None and current.secret is not None:
        revoke_session_tokens(db, current.row, current.secret)
        sessions.end(db, current.row)
    response = RedirectResponse("/signin", status_code=303)
    clear_session_cookie(response)
    return response


@router.post("/signout/everywhere")
def signout_everywhere(
    request: Request, csrf_token: str = Form(""), db: Session = Depends(get_session)
) -> Response:
    """End every session of the user and revoke every token their apps hold."""
    current = browser(request, db)
    check_csrf(csrf_token, current.csrf_token)
    if current.row is not None:
        revoke_user(db, current.row.user_id, utcnow())
        sessions.end_all(db, current.row.user_id)
    response = RedirectResponse("/signin", status_code=303)
    clear_session_cookie(response)
    return response


@router.get("/invitations/{token}")
def invitation_page(request: Request, token: str, db: Session = Depends(get_session)) -> Response:
    invitation = team.open_invitation(db, token, utcnow())
    page = render(
        request,
        "invitation.html",
        status_code=200 if invitation else 404,
        invitation=invitation,
        company=merchant.company_name(db, invitation.tenant_id) if invitation else "",
        token=token,
        csrf_token=anonymous_csrf(request),
        form={},
        errors={},
    )
    return remember_csrf(request, page)


@router.post("/invitations/{token}")
def accept_invitation(
    request: Request,
    token: str,
    csrf_token: str = Form(""),
    name: str = Form(""),
    password: str = Form(""),
    db: Session = Depends(get_session),
) -> Response:
    check_csrf(csrf_token, request.cookies.get("lm_csrf"))
    now = utcnow()
    try:
        user = team.accept(db, token, name, password, now)
    except UserErrors as rejected:
        invitation = team.open_invitation(db, token, now)
        return render(
            request,
            "invitation.html",
            status_code=422,
            invitation=invitation,
            company=merchant.company_name(db, invitation.tenant_id) if invitation else "",
            token=token,
            csrf_token=csrf_token,
            form={"name": name},
            errors=_errors(rejected),
        )
    _, secret = sessions.start(db, user.id, now, request.headers.get("user-agent"))
    response = RedirectResponse(DEFAULT_NEXT, status_code=303)
    set_session_cookie(response, secret)
    return response
