"""What a recipient's tracking link shows: where the parcel is in its life and when it
should arrive, and nothing about the merchant (no name, no reference, no other
deliveries). The link's token is the only key, so it must be unguessable."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from services.deliveries import repository


def public_view(session: Session, token: str) -> dict[str, Any] | None:
    """The tracking page's content, or None when no delivery is tracked by the token."""
    delivery = repository.by_tracking_token(session, token)
    if delivery is None:
        return None
    events = repository.events_of(session, None, delivery.id)
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
