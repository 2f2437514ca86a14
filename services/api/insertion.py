"""Bookings into the day's published routes at booking time: the API's hand-off.

The delivery domain may not import the planner, so the API, which may import both,
asks for it: once a booking commits, the planner's `planner.insert_bookings` task
inserts the area-day's new bookings into routes that have not left yet (seconds, not
the next wave). A lost message costs only that: the next wave plans the booking.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import date
from functools import partial

from sqlmodel import Session

from services.core.db import on_commit
from services.core.models import Delivery
from services.planner import tasks

logger = logging.getLogger(__name__)


def insert_after_commit(session: Session, booked: Iterable[Delivery]) -> None:
    """After the transaction commits, have the planner insert these bookings' area-days."""
    for area_id, day in sorted({(d.area_id, d.date) for d in booked if not d.sandbox}):
        on_commit(session, partial(_kick, area_id, day))


def _kick(area_id: str, day: date) -> None:
    try:
        tasks.insert_bookings.delay(area_id, day.isoformat())
    except Exception:  # the broker being down must not fail a committed booking
        logger.warning("Could not enqueue planner.insert_bookings; the next wave plans it.",
                       exc_info=True)  # fmt: skip
