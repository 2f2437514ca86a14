"""What the day's live plan can still take: the windows a quote may offer.

A day whose routes are out (and have not left) takes a new delivery only where one of
them can: the window a quote offers must be one where the parcel can be inserted into
such a route under the planner's own rules (`insertion.cheapest_insertion`: capacity,
windows, shift, break, route length; the other stops keep their order). The API hands
`servable_windows` to the delivery domain's quotes (which may not import the planner),
as it hands billing's price.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime

from sqlmodel import Session

from services.core import areas
from services.core.models import ServiceArea
from services.deliveries.validation import Dropoff, Parcel
from services.planner import problem as p
from services.planner import repository
from services.planner.insertion import cheapest_insertion
from services.planner.mapping import build_problem, check_input, parcel_volume_cm3, points
from services.planner.matrix import matrix_for
from services.planner.plan_input import still_open

Window = tuple[datetime, datetime]


def servable_windows(
    session: Session,
    area: ServiceArea,
    day: date,
    dropoff: Dropoff,
    parcel: Parcel,
    windows: Sequence[Window],
) -> list[Window] | None:
    """Those of `windows` in which some route of the day that has not left can take the
    parcel; None when the day has no such route (no live plan: the wave will plan it)."""
    routes = still_open(session, repository.routes_of_day(session, area.id, day))
    if not routes:
        return None
    routed = [d for route in routes for d in route.deliveries]
    vans = [(route.shift, route.vehicle) for route in routes]
    check_input(area, routed, vans)
    places = [*points(area, routed), (dropoff.lat, dropoff.lng)]
    matrices = matrix_for(area, places)
    midnight = areas.local_midnight(area, day)
    problem = build_problem(area, midnight, routed, vans, matrices)
    jobs = {job.id: job for job in problem.jobs}
    fleet = {van.id: van for van in problem.vehicles}
    plans = [(fleet[r.shift.id], [jobs[d.id] for d in r.deliveries]) for r in routes]
    zero = midnight.astimezone(UTC)
    demand = (parcel.weight_grams, parcel_volume_cm3(parcel), 1)
    distance, duration = matrices
    fits = []
    for start, end in windows:
        window = (_seconds(start, zero), _seconds(end, zero))
        probe = p.Job("quote", len(places) - 1, demand, window, area.service_seconds)
        if any(cheapest_insertion(distance, duration, van, stops, probe) for van, stops in plans):
            fits.append((start, end))
    return fits


def _seconds(instant: datetime, zero: datetime) -> int:
    return int((instant.astimezone(UTC) - zero).total_seconds())
