"""From deliveries and vans to the solver's integers: metres, seconds, millicents.

Pure translation: no database, no matrix provider. `check_input` refuses what cannot be
put in a problem at all, naming the culprit; `points` are the places the problem's
matrices must cover (the depot, then each delivery), and `build_problem` makes the
solver's `Problem` once those matrices are there. Demand and capacity have three
dimensions: grams, cubic centimetres, parcels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, time

from services.core.models import Delivery, ServiceArea, Shift, Vehicle
from services.core.settings import get_settings
from services.planner import problem as p
from services.planner.matrix import Matrices, Point

MILLI = 1000  # the solver's cost unit is a thousandth of a minor unit
# Leaving a delivery out must cost more than any route could: ten thousand dollars.
DROP_PENALTY = 1_000_000 * MILLI
# The volume of a parcel booked without dimensions: a 40 x 30 x 20 cm carton, a common
# e-commerce box, so that an e-van is not promised more parcels than it can hold.
DEFAULT_PARCEL_VOLUME_CM3 = 24_000


def parcel_volume_cm3(delivery: Delivery) -> int:
    """The parcel's volume from its dimensions, or the default carton's when not given."""
    sides = (delivery.length_cm, delivery.width_cm, delivery.height_cm)
    if any(side is None for side in sides):
        return DEFAULT_PARCEL_VOLUME_CM3
    return math.prod(side for side in sides if side is not None)


def check_delivery(delivery: Delivery) -> None:
    """Raise `ProblemError` naming the delivery if it cannot be put in a problem at all."""
    where = f"delivery {delivery.id}"
    if not _valid_coordinates(delivery.dropoff_lat, delivery.dropoff_lng):
        raise p.ProblemError(
            f"{where}: coordinates ({delivery.dropoff_lat}, {delivery.dropoff_lng}) "
            "are out of range"
        )
    if delivery.weight_grams < 0:
        raise p.ProblemError(f"{where}: negative weight {delivery.weight_grams} g")
    sides = (delivery.length_cm, delivery.width_cm, delivery.height_cm)
    if any(side is not None and side < 0 for side in sides):
        raise p.ProblemError(f"{where}: negative parcel dimensions {sides}")
    if delivery.window_end < delivery.window_start:
        raise p.ProblemError(
            f"{where}: time window ends ({delivery.window_end.isoformat()}) before it "
            f"starts ({delivery.window_start.isoformat()})"
        )


def _valid_coordinates(lat: float, lng: float) -> bool:
    return math.isfinite(lat) and math.isfinite(lng) and -90 <= lat <= 90 and -180 <= lng <= 180


def check_input(
    area: ServiceArea, deliveries: Sequence[Delivery], shifts: Sequence[tuple[Shift, Vehicle]]
) -> None:
    """Raise `ProblemError` or `ShiftError` naming the first malformed depot, delivery or
    shift; call it before asking for the matrices."""
    if not _valid_coordinates(area.depot_lat, area.depot_lng):
        raise p.ProblemError(f"service area {area.code}: depot coordinates are out of range")
    minimum_wage = get_settings().minimum_hourly_wage_minor
    for delivery in deliveries:
        check_delivery(delivery)
    for shift, _ in shifts:
        shift.check(minimum_wage)


def points(area: ServiceArea, deliveries: Sequence[Delivery]) -> list[Point]:
    """The places a problem's matrices cover: the depot (location 0), then delivery i at
    location i + 1."""
    return [(area.depot_lat, area.depot_lng)] + [(d.dropoff_lat, d.dropoff_lng) for d in deliveries]


def build_problem(
    area: ServiceArea,
    midnight: datetime,
    deliveries: Sequence[Delivery],
    shifts: Sequence[tuple[Shift, Vehicle]],
    matrices: Matrices,
    not_before: datetime | None = None,
) -> p.Problem:
    """Translate checked deliveries and vans into the solver's integers, over the
    matrices between `points(area, deliveries)`. No van leaves before `not_before`
    (planning the day that has begun)."""
    distance, duration = matrices
    zero = midnight.astimezone(UTC)  # subtract in UTC: DST days are 23 or 25 hours long

    def seconds(instant: datetime) -> int:
        return int((instant.astimezone(UTC) - zero).total_seconds())

    def local(moment: time) -> datetime:
        return datetime.combine(midnight.date(), moment, tzinfo=midnight.tzinfo)

    jobs = [
        p.Job(
            id=d.id,
            location=i + 1,
            demand=(d.weight_grams, parcel_volume_cm3(d), 1),
            window=(seconds(d.window_start), seconds(d.window_end)),
            service=area.service_seconds,
        )
        for i, d in enumerate(deliveries)
    ]
    earliest = seconds(not_before) if not_before is not None else None
    vehicles = []
    for shift, vehicle in shifts:
        starts, ends = seconds(local(shift.starts_at)), seconds(local(shift.ends_at))
        leaves = starts if earliest is None else min(max(starts, earliest), ends)
        vehicles.append(_vehicle(shift, vehicle, starts, ends, leaves))
    return p.Problem(
        distance=distance,
        duration=duration,
        jobs=jobs,
        vehicles=vehicles,
        drop_penalty=DROP_PENALTY,
    )


def _vehicle(shift: Shift, vehicle: Vehicle, starts: int, ends: int, leaves: int) -> p.Vehicle:
    """The van on its shift, leaving no earlier than `leaves`. The break stays where the
    shift puts it; if the driver could have had it before `leaves` (time off the route
    counts as resting), the van has none left to take."""
    breaks: tuple[p.Break, ...] = ()
    earliest = starts + shift.break_earliest_minutes * 60
    if shift.break_minutes > 0 and leaves < earliest + shift.break_minutes * 60:
        window = (earliest, starts + shift.break_latest_minutes * 60)
        breaks = (p.Break(window=window, duration=shift.break_minutes * 60),)
    return p.Vehicle(
        id=shift.id,
        start=0,
        end=0,
        capacity=(vehicle.capacity_grams, vehicle.capacity_volume_cm3, vehicle.capacity_parcels),
        shift=(leaves, ends),
        max_duration=shift.max_route_minutes * 60 if shift.max_route_minutes else None,
        fixed_cost=vehicle.fixed_cost_minor * MILLI,
        cost_per_distance=vehicle.cost_per_km_minor,  # minor/km == millicents/m
        cost_per_time=round(shift.hourly_wage_minor * MILLI / 3600),
        breaks=breaks,
    )
