"""Public tracking for recipients: a read-only page per delivery, behind its tracking token.

The token is the only key, so guessing is limited: each client address may look up
`LASTMILE_TRACKING_RATE_LIMIT` links (default 60 a minute), found or not.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from sqlmodel import Session

from services.api.deps import get_session
from services.api.ratelimit import client_address, rate_limits_for
from services.core.settings import get_settings
from services.deliveries import tracking

router = APIRouter()


def tracking_url(token: str) -> str:
    return f"{get_settings().issuer}/track/{token}"


def _limited(request: Request) -> None:
    """HTTP 429 once the caller's address has looked up too many links."""
    limits = rate_limits_for(request.app)
    address = client_address(request)
    if not limits.hit(limits.tracking, "track", address):
        wait = limits.retry_after(limits.tracking, "track", address)
        raise HTTPException(
            status_code=429,
            detail=f"Too many tracking lookups from this address; retry in {wait} s.",
            headers={"Retry-After": str(wait)},
        )


@router.get("/track/{token}", dependencies=[Depends(_limited)])
def track(token: str, session: Session = Depends(get_session)) -> dict[str, Any]:
    view = tracking.public_view(session, token)
    if view is None:
        raise HTTPException(status_code=404, detail="No delivery is tracked by this link.")
    return view
