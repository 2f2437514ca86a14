"""The planner's cost model for billing: coalition costs on a route, stand-alone plans.

Billing shares route costs and reports what consolidation saved, but must not import
the planner; it declares the `CostModel` it needs and the `lastmile` assembler hands
it this implementation. Both figures use the cost model that priced the routes:
the van's fixed cost, its running cost per km and the driver's wage.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from decimal import Decimal
from itertools import pairwise

from sqlmodel import Session, col, select

from services.core import areas
from services.core.models import Delivery, Route, ServiceArea, Shift, Stop, Vehicle
from services.planner import problem as p
from services.planner.matrix import matrix_for
from services.planner.runs import MILLI, build_problem
from services.planner.solver import solve


class PlannerCostModel:
    """Costs in minor units from the planner's matrix, vehicles and solver."""

    def __init__(self, time_limit: float = 2.0) -> None:
        self.time_limit = time_limit
        self._routes: dict[str, tuple[list[str], list[list[int]], list[list[int]], Decimal]] = {}

    def route_coalition_cost(
        self, session: Session, route: Route, coalition: frozenset[str]
    ) -> Decimal:
        """The route's van driving only `coalition`'s stops, in the route's order."""
        tenants, distance, duration, service = self._route(session, route)
        vehicle = session.get(Vehicle, route.vehicle_id)
        shift = session.get(Shift, route.shift_id)
        assert vehicle is not None and shift is not None  # foreign keys
        points = [0] + [i + 1 for i, t in enumerate(tenants) if t in coalition] + [0]
        metres = sum(distance[a][b] for a, b in pairwise(points))
        seconds = sum(duration[a][b] for a, b in pairwise(points))
        seconds_total = Decimal(seconds) + service * (len(points) - 2)
        return (
            Decimal(vehicle.fixed_cost_minor)
            + Decimal(vehicle.cost_per_km_minor) * Decimal(metres) / 1000
            + Decimal(shift.hourly_wage_minor) * seconds_total / 3600
        )

    def _route(
        self, session: Session, route: Route
    ) -> tuple[list[str], list[list[int]], list[list[int]], Decimal]:
        if route.id not in self._routes:
            area = session.get(ServiceArea, route.area_id)
            assert area is not None
            rows = session.exec(
                select(Stop.tenant_id, Delivery.dropoff_lat, Delivery.dropoff_lng)
                .join(Delivery, col(Delivery.id) == col(Stop.delivery_id))
                .where(Stop.route_id == route.id)
                .order_by(col(Stop.sequence))
            ).all()
            points = [(area.depot_lat, area.depot_lng)] + [(lat, lng) for _, lat, lng in rows]
            distance, duration = matrix_for(area, points)
            tenants = [tenant for tenant, _, _ in rows]
            self._routes[route.id] = (tenants, distance, duration, Decimal(area.service_seconds))
        return self._routes[route.id]

    def standalone_costs(self, session: Session, area: ServiceArea, day: date) -> dict[str, int]:
        """Each tenant's deliveries planned on the day, re-planned alone with the whole fleet."""
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
