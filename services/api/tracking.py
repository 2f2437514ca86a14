"""Public tracking for recipients: a read-only page per delivery, behind an unguessable token.

It shows where the parcel is in its life and when it should arrive, and nothing about
the merchant (no name, no reference, no other deliveries).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException
from sqlmodel import Session, col, select

from services.api.deps import get_session
from services.core.models import Delivery, DeliveryEvent
from services.core.settings import get_settings

router = APIRouter()


def tracking_url(token: str) -> str:
    return f"{get_settings().issuer}/track/{token}"


@router.get("/track/{token}")
def track(token: str, session: Session = Depends(get_session)) -> dict[str, object]:
    delivery = session.exec(select(Delivery).where(Delivery.tracking_token == token)).first()
    if delivery is None:
        raise HTTPException(status_code=404, detail="No delivery is tracked by this link.")
    events = session.exec(
        select(DeliveryEvent)
        .where(DeliveryEvent.delivery_id == delivery.id)
        .order_by(col(DeliveryEvent.at), col(DeliveryEvent.id))
    ).all()
    return {
        "status": delivery.status,
        "date": delivery.date.isoformat(),
        "time_window": {
            "start": delivery.window_start.isoformat(),
            "end": delivery.window_end.isoformat(),
        },
        "eta": delivery.eta.isoformat() if delivery.eta else None,
        "attempt": delivery.attempt,
        "events": [{"status": e.status, "at": e.at.isoformat()} for e in events],
    }
