"""Route cost bases: the facts billing splits a route's cost by, priced by the planner.

Planner and billing never import each other. When a plan run writes or grows a route
it also writes, in the same transaction, the route's `RouteCostBasis`
(`record_cost_basis`); billing allocates from those rows later (docs/billing.md). A
basis prices coalitions of the route's merchants: what the route's van would cost
driving only their stops (`coalition_costs`), with the cost model that priced the
routes: the van's fixed cost, its running cost per km and the driver's wage.

The coalitions are priced from the plan run's own matrices (`PlanPrices`), before its
write transaction opens: writing a basis never asks a matrix provider, so no network
call happens while the area's row is locked.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from itertools import combinations, pairwise

from sqlmodel import Session

from services.core.models import Route, RouteCostBasis, ServiceArea, Shift, Vehicle
from services.planner import problem as p
from services.planner import repository
from services.planner.plan_input import PlanInput
from services.planner.problem import Matrix

SHAPLEY_MERCHANTS = 8
"""Up to this many merchants on a route, every coalition is priced (billing splits by
Shapley values, `services.billing.allocation.MAX_SHAPLEY_PLAYERS`, kept equal by a
test); above it only each merchant alone (billing splits by stand-alone cost)."""

CoalitionCosts = dict[frozenset[str], Decimal]
Stops = Sequence[tuple[str, str]]  # (tenant, delivery) of each stop, in stop order
Pricer = Callable[[Stops], CoalitionCosts]
"""Prices the coalitions of a route's stops: what `record_cost_basis` asks for when it
writes a route's first revision."""


@dataclass(frozen=True)
class VanRates:
    """What a route's van costs to run, in minor units, exact."""

    fixed_cost_minor: int
    cost_per_km_minor: int
    hourly_wage_minor: int
    service_seconds: int  # at each stop

    @classmethod
    def of(cls, area: ServiceArea, shift: Shift, vehicle: Vehicle) -> VanRates:
        return cls(
            fixed_cost_minor=vehicle.fixed_cost_minor,
            cost_per_km_minor=vehicle.cost_per_km_minor,
            hourly_wage_minor=shift.hourly_wage_minor,
            service_seconds=area.service_seconds,
        )


def coalition_costs(
    tenants: Sequence[str],
    places: Sequence[int],
    distance: Matrix,
    duration: Matrix,
    rates: VanRates,
) -> CoalitionCosts:
    """What the van would cost driving only a coalition's stops, in the route's order:
    every coalition of up to `SHAPLEY_MERCHANTS` merchants, else each one alone.

    Stop i belongs to `tenants[i]` and is at `places[i]` in the matrices, whose
    location 0 is the depot. Entries are pairwise, so any matrices covering the depot
    and the stops give the same costs. Minor units, exact.
    """
    service = Decimal(rates.service_seconds)

    def cost(coalition: frozenset[str]) -> Decimal:
        route = [0] + [place for place, t in zip(places, tenants, strict=True) if t in coalition]
        route.append(0)
        metres = sum(int(distance[a][b]) for a, b in pairwise(route))
        seconds = Decimal(sum(int(duration[a][b]) for a, b in pairwise(route)))
        seconds += service * (len(route) - 2)
        return (
            Decimal(rates.fixed_cost_minor)
            + Decimal(rates.cost_per_km_minor) * Decimal(metres) / 1000
            + Decimal(rates.hourly_wage_minor) * seconds / 3600
        )

    return {coalition: cost(coalition) for coalition in _coalitions(sorted(set(tenants)))}


def _coalitions(merchants: list[str]) -> Iterator[frozenset[str]]:
    if len(merchants) > SHAPLEY_MERCHANTS:
        yield from (frozenset({merchant}) for merchant in merchants)
        return
    for size in range(1, len(merchants) + 1):
        yield from (frozenset(coalition) for coalition in combinations(merchants, size))


class PlanPrices:
    """Coalition costs of a plan run's routes, from the matrices of its `PlanInput`.

    `price_solution` prices every route the solver planned as it planned it; call it
    before the write transaction opens. The write then finds them here, and prices from
    the same matrices (no provider) what it did not expect: a route that lost a stop
    cancelled meanwhile, or an open route that had no basis yet.
    """

    def __init__(self, plan_input: PlanInput) -> None:
        self.plan_input = plan_input
        self._vans = {o.route.shift_id: (o.shift, o.vehicle) for o in plan_input.open_routes}
        self._vans.update(plan_input.shifts)
        self._tenants = {d.id: d.tenant_id for d in plan_input.deliveries}
        self._priced: dict[tuple[str, tuple[tuple[str, str], ...]], CoalitionCosts] = {}

    def price_solution(self, solution: p.Solution) -> None:
        for route in solution.routes:
            stops = [(self._tenants[v.job_id], v.job_id) for v in route.visits]
            self.costs(route.vehicle_id, stops)

    def costs(self, shift_id: str, stops: Stops) -> CoalitionCosts:
        """The coalition costs of `stops` driven on the shift's van."""
        key = (shift_id, tuple((tenant, delivery) for tenant, delivery in stops))
        if key not in self._priced:
            plan_input = self.plan_input
            shift, vehicle = self._vans[shift_id]
            self._priced[key] = coalition_costs(
                [tenant for tenant, _ in stops],
                [plan_input.jobs[delivery].location for _, delivery in stops],
                plan_input.problem.distance,
                plan_input.problem.duration,
                VanRates.of(plan_input.area, shift, vehicle),
            )
        return self._priced[key]

    def pricer(self, shift_id: str) -> Pricer:
        return lambda stops: self.costs(shift_id, stops)


def record_cost_basis(
    session: Session, route: Route, price: Pricer, added: Collection[str] | None = None
) -> RouteCostBasis | None:
    """Write the next revision of the route's cost basis; call it once the stops are in.

    A route without a basis yet gets revision 1 over all its stops, with its coalition
    costs from `price`. Otherwise `added` names the deliveries a late insertion put on
    the route: the next revision covers just those, and billing splits what the route
    grew by among their merchants by stop count, so no coalition is priced. Returns
    None (and writes nothing) when a grown route added no stop.
    """
    stops = repository.route_stop_tenants(session, route.id)
    last = repository.last_cost_basis_revision(session, route.id)
    costs: dict[str, str] = {}
    if last is None:
        covered = stops
        costs = {
            RouteCostBasis.coalition_key(coalition): str(cost)
            for coalition, cost in price(covered).items()
        }
    else:
        covered = [stop for stop in stops if added and stop[1] in added]
        if not covered:
            return None
    deliveries: defaultdict[str, list[str]] = defaultdict(list)
    for tenant_id, delivery_id in covered:
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
