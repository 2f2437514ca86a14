"""The browser's side of a session: cookies and CSRF.

- `lm_session`: the session's secret (services.accounts.sessions). HttpOnly, SameSite=Lax
  (a link from elsewhere still arrives signed in, a cross-site POST does not), Secure
  whenever the site is served over https, path /.
- `lm_csrf`: for forms shown before signing in (sign-in, sign-up), a random value that
  the form echoes (double submit); SameSite=Strict, HttpOnly.
- Signed in, every form carries the session's CSRF token (derived from its secret) and
  every POST is checked against it; SameSite alone is not relied on.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass

from fastapi import HTTPException, Request
from fastapi.responses import Response
from sqlmodel import Session

from services.accounts import sessions
from services.core.db import utcnow
from services.core.models import WebSession
from services.core.settings import get_settings

SESSION_COOKIE = "lm_session"
CSRF_COOKIE = "lm_csrf"
CSRF_FIELD = "csrf_token"


@dataclass
class Browser:
    """What the request's cookies open: a session (and its secret) or nothing."""

    row: WebSession | None
    secret: str | None

    @property
    def csrf_token(self) -> str | None:
        return sessions.csrf_token(self.secret) if self.secret else None


def safe_next(value: str | None, default: str = "/dashboard") -> str:
    """Only a path of this site: never another site (an open redirect)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return default
    return value


def secure() -> bool:
    return get_settings().issuer.startswith("https://")


def browser(request: Request, db: Session) -> Browser:
    secret = request.cookies.get(SESSION_COOKIE)
    if not secret:
        return Browser(None, None)
    row = sessions.find(db, secret, utcnow())
    return Browser(row, secret if row else None)


def set_session_cookie(response: Response, secret: str) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        secret,
        max_age=int(sessions.LIFETIME.total_seconds()),
        httponly=True,
        secure=secure(),
        samesite="lax",
        path="/",
    )


def clear_session_cookie(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, secure=secure(), samesite="lax")


def anonymous_csrf(request: Request) -> str:
    """The double-submit value for forms shown before signing in (set by `remember_csrf`)."""
    return request.cookies.get(CSRF_COOKIE) or request.state.__dict__.setdefault(
        "new_csrf", secrets.token_urlsafe(24)
    )


def remember_csrf(request: Request, response: Response) -> Response:
    """Set the double-submit cookie if this request made a new value."""
    new = request.state.__dict__.get("new_csrf")
    if new:
        response.set_cookie(
            CSRF_COOKIE, new, httponly=True, secure=secure(), samesite="strict", path="/"
        )
    return response


def check_csrf(sent: str | None, expected: str | None) -> None:
    """HTTP 403 unless a form's CSRF token is the one expected."""
    if not expected or not sent or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise HTTPException(403, "This form has expired or did not come from this site: reload it.")


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"
