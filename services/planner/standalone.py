"""The planner's cost model as billing needs it: coalition costs on a route, stand-alone plans.

Planner and billing never import each other. When a plan run writes or grows a route
it also writes, in the same transaction, the route's `RouteCostBasis`: the facts
billing splits the route's cost by (`record_cost_basis`). Billing allocates from those
rows later (docs/billing.md). The consolidation report's other figure, each merchant's
deliveries re-planned alone, is `PlannerCostModel`, which the `lastmile` assembler
(`services/cli.py`) hands to billing. Both use the cost model that priced the routes:
the van's fixed cost, its running cost per km and the driver's wage.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterator, Sequence
from datetime import date
from decimal import Decimal
from itertools import combinations, pairwise

from sqlalchemy import func
from sqlmodel import Session, col, select

from services.core import areas
from services.core.models import (
    Delivery,
    Route,
    RouteCostBasis,
    ServiceArea,
    Shift,
    Stop,
    Vehicle,
)
from services.planner import problem as p
from services.planner.matrix import matrix_for
from services.planner.solver import solve

SHAPLEY_MERCHANTS = 8
"""Up to this many merchants on a route, every coalition is priced (billing splits by
Shapley values, `services.billing.allocation.MAX_SHAPLEY_PLAYERS`, kept equal by a
test); above it only each merchant alone (billing splits by stand-alone cost)."""


def record_cost_basis(
    session: Session, route: Route, added: Collection[str] | None = None
) -> RouteCostBasis | None:
    """Write the next revision of the route's cost basis; call it once the stops are in.

    A route without a basis yet gets revision 1 over all its stops, with its coalition
    costs. Otherwise `added` names the deliveries a late insertion put on the route:
    the next revision covers just those, and billing splits what the route grew by
    among their merchants by stop count, so no coalition is priced. Returns None (and
    writes nothing) when a grown route added no stop.
    """
    stops = session.exec(
        select(Stop.tenant_id, Stop.delivery_id, Delivery.dropoff_lat, Delivery.dropoff_lng)
        .join(Delivery, col(Delivery.id) == col(Stop.delivery_id))
        .where(Stop.route_id == route.id)
        .order_by(col(Stop.sequence))
    ).all()
    last = session.exec(
        select(func.max(RouteCostBasis.revision)).where(RouteCostBasis.route_id == route.id)
    ).one()
    costs: dict[str, str] = {}
    if last is None:
        covered = list(stops)
        costs = {
            RouteCostBasis.coalition_key(coalition): str(cost)
            for coalition, cost in coalition_costs(session, route, covered).items()
        }
    else:
        covered = [stop for stop in stops if added and stop[1] in added]
        if not covered:
            return None
    deliveries: defaultdict[str, list[str]] = defaultdict(list)
    for tenant_id, delivery_id, _, _ in covered:
        deliveries[tenant_id].append(delivery_id)
    basis = RouteCostBasis(
        route_id=route.id,
        revision=1 if last is None else last + 1,
        route_cost_minor=route.cost_minor,
        departure_at=route.departure_at,
        deliveries=dict(sorted(deliveries.items())),
        costs=costs,
    )
    session.add(basis)
    return basis


def coalition_costs(
    session: Session, route: Route, stops: Sequence[tuple[str, str, float, float]]
) -> dict[frozenset[str], Decimal]:
    """What the route's van would cost driving only a coalition's stops, in the route's
    order: every coalition of up to `SHAPLEY_MERCHANTS` merchants, else each one alone.

    `stops` are (tenant, delivery, lat, lng) in stop order. Minor units, exact.
    """
    area = session.get(ServiceArea, route.area_id)
    vehicle = session.get(Vehicle, route.vehicle_id)
    shift = session.get(Shift, route.shift_id)
    assert area is not None and vehicle is not None and shift is not None  # foreign keys
    points = [(area.depot_lat, area.depot_lng)] + [(lat, lng) for _, _, lat, lng in stops]
    distance, duration = matrix_for(area, points)
    tenants = [tenant for tenant, _, _, _ in stops]
    service = Decimal(area.service_seconds)

    def cost(coalition: frozenset[str]) -> Decimal:
        places = [0] + [i + 1 for i, t in enumerate(tenants) if t in coalition] + [0]
        metres = sum(distance[a][b] for a, b in pairwise(places))
        seconds = Decimal(sum(duration[a][b] for a, b in pairwise(places)))
        seconds += service * (len(places) - 2)
        return (
            Decimal(vehicle.fixed_cost_minor)
            + Decimal(vehicle.cost_per_km_minor) * Decimal(metres) / 1000
            + Decimal(shift.hourly_wage_minor) * seconds / 3600
        )

    return {coalition: cost(coalition) for coalition in _coalitions(sorted(set(tenants)))}


def _coalitions(merchants: list[str]) -> Iterator[frozenset[str]]:
    if len(merchants) > SHAPLEY_MERCHANTS:
        yield from (frozenset({merchant}) for merchant in merchants)
        return
    for size in range(1, len(merchants) + 1):
        yield from (frozenset(coalition) for coalition in combinations(merchants, size))


class PlannerCostModel:
    """Stand-alone costs in minor units from the planner's matrix, vehicles and solver."""

    def __init__(self, time_limit: float = 2.0) -> None:
        self.time_limit = time_limit

    def standalone_costs(self, session: Session, area: ServiceArea, day: date) -> dict[str, int]:
        """Each tenant's deliveries planned on the day, re-planned alone with the whole fleet."""
        # runs records cost bases through this module, so it is imported when needed.
        from services.planner.runs import MILLI, build_problem

        deliveries = session.exec(
            select(Delivery)
            .join(Route, col(Route.id) == col(Delivery.route_id))
            .where(Route.area_id == area.id, Route.date == day)
            .order_by(col(Delivery.id))
        ).all()
        by_tenant: defaultdict[str, list[Delivery]] = defaultdict(list)
        for delivery in deliveries:
            by_tenant[delivery.tenant_id].append(delivery)
        shifts = list(
            session.exec(
                select(Shift, Vehicle)
                .join(Vehicle, col(Vehicle.id) == col(Shift.vehicle_id))
                .where(Shift.area_id == area.id, col(Vehicle.active).is_(True))
                .order_by(col(Shift.id))
            ).all()
        )
        midnight = areas.local_midnight(area, day)
        costs = {}
        for tenant_id, own in sorted(by_tenant.items()):
            problem = build_problem(area, midnight, own, shifts)
            solution = solve(problem, p.SolveOptions(time_limit=self.time_limit))
            costs[tenant_id] = round(sum(route.cost for route in solution.routes) / MILLI)
        return costs
