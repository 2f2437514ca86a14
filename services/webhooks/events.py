"""The catalogue of event types merchants can subscribe to: the one place they are named.

Services announce these topics with `services.core.outbox.emit`; an outbox topic that is
not listed here is internal and never leaves the platform.
"""

from __future__ import annotations

EVENT_TYPES: dict[str, str] = {
    "delivery.booked": "A delivery was booked.",
    "delivery.planned": "A delivery was put on a route; the payload carries its ETA.",
    "delivery.eta_updated": "A planned delivery's ETA moved (its route changed).",
    "delivery.rescheduled": "A delivery's day or time window was changed.",
    "delivery.updated": "A delivery's recipient details were changed.",
    "delivery.out_for_delivery": "The van carrying the delivery left the depot.",
    "delivery.delivered": "The parcel was handed over.",
    "delivery.failed": "A delivery attempt failed; the payload carries the reason.",
    "delivery.reattempt_scheduled": "A failed delivery was booked again for another day.",
    "delivery.returned": "The parcel went back to the depot after its last failed attempt.",
    "delivery.cancelled": "A delivery was cancelled.",
}


def is_known(event_type: str) -> bool:
    return event_type in EVENT_TYPES
