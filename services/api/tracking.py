"""Public tracking for recipients: a read-only page per delivery, behind its tracking token."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException
from sqlmodel import Session

from services.api.deps import get_session
from services.core.settings import get_settings
from services.deliveries import tracking

router = APIRouter()


def tracking_url(token: str) -> str:
    return f"{get_settings().issuer}/track/{token}"


@router.get("/track/{token}")
def track(token: str, session: Session = Depends(get_session)) -> dict[str, Any]:
    view = tracking.public_view(session, token)
    if view is None:
        raise HTTPException(status_code=404, detail="No delivery is tracked by this link.")
    return view
