"""Sharing planned routes' costs among merchants, and what sharing saved them.

Allocation method, per route (the route's `cost_minor` from the planner's cost model):
- the cost of a coalition of merchants is what the same van would cost driving only
  their stops, in the route's order (fixed cost + distance + driver time);
- with up to `MAX_SHAPLEY_PLAYERS` merchants the route's cost is split by Shapley
  values of that game (efficient, symmetric, null player pays nothing, additive);
  above that, or if the game is not monotone, in proportion to each merchant's
  stand-alone cost of its own stops on the route;
- shares are exact integer minor units summing to the route's cost (largest remainder).
Because a shared van's fixed cost and the detours overlap, the game is subadditive
in practice, so each share stays below what the merchant's stops would cost alone.

The cost model (coalition costs, and re-planning each merchant's deliveries alone
for the consolidation report) belongs to the planner, which billing must not import.
It is passed in as a `CostModel`; `services/planner/standalone.py` implements it and
the `lastmile` assembler (`services/cli.py`) hands it to the commands here.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Any, Protocol

from sqlmodel import Session, col, select

from services.billing.allocation import (
    MAX_SHAPLEY_PLAYERS,
    allocate_proportional,
    allocate_shapley,
)
from services.billing.money import currency_for, format_amount, from_minor
from services.core import areas
from services.core.models import Route, RouteAllocation, ServiceArea, Stop
from services.core.usage import Usage, record_usage


class ConsolidationError(ValueError):
    """The area or day cannot be reported on; the message says why."""


class CostModel(Protocol):
    """The planner's cost model, as billing needs it (implemented by the planner)."""

    def route_coalition_cost(
        self, session: Session, route: Route, coalition: frozenset[str]
    ) -> Decimal:
        """Minor units the route's van would cost serving only these tenants' stops."""
        ...

    def standalone_costs(self, session: Session, area: ServiceArea, day: date) -> dict[str, int]:
        """Minor units each tenant's planned deliveries would cost, planned alone."""
        ...


def allocate_routes(
    session: Session, area: ServiceArea, day: date, cost_model: CostModel
) -> dict[str, dict[str, int]]:
    """Allocate every planned route of the area-day not yet allocated; return all shares.

    Allocations are written once and never recomputed, with a `route_cost` usage
    event per merchant and route, so cost-plus plans can price on them.
    """
    currency = currency_for(area.currency)
    routes = session.exec(
        select(Route).where(Route.area_id == area.id, Route.date == day).order_by(col(Route.id))
    ).all()
    done: defaultdict[str, dict[str, int]] = defaultdict(dict)
    for allocation in session.exec(
        select(RouteAllocation).where(col(RouteAllocation.route_id).in_([r.id for r in routes]))
    ).all():
        done[allocation.route_id][allocation.tenant_id] = allocation.amount_minor
    for route in routes:
        if route.id in done:
            continue
        stops: defaultdict[str, int] = defaultdict(int)
        for tenant_id in session.exec(select(Stop.tenant_id).where(Stop.route_id == route.id)):
            stops[tenant_id] += 1
        if not stops:
            continue
        shares, method = split_route(
            route.cost_minor, sorted(stops), _coalition_cost(session, route, cost_model)
        )
        for tenant_id, amount in shares.items():
            session.add(
                RouteAllocation(
                    route_id=route.id,
                    tenant_id=tenant_id,
                    amount_minor=amount,
                    currency=currency.code,
                    method=method,
                    stops=stops[tenant_id],
                )
            )
        record_usage(
            session,
            [
                Usage(
                    id=f"{route.id}:{tenant_id}:route_cost",
                    tenant_id=tenant_id,
                    meter="route_cost",
                    quantity=from_minor(amount, currency),
                    at=route.departure_at,
                    area_code=area.code,
                )
                for tenant_id, amount in shares.items()
            ],
        )
        done[route.id] = shares
    session.flush()
    return dict(done)


def _coalition_cost(
    session: Session, route: Route, cost_model: CostModel
) -> Callable[[frozenset[str]], Decimal]:
    def cost_of(coalition: frozenset[str]) -> Decimal:
        return cost_model.route_coalition_cost(session, route, coalition)

    return cost_of


def split_route(
    cost_minor: int, players: list[str], cost_of: Callable[[frozenset[str]], Decimal]
) -> tuple[dict[str, int], str]:
    """Shapley shares where affordable and monotone, else stand-alone-cost weights."""
    if len(players) == 1:
        return {players[0]: cost_minor}, "sole"
    if len(players) <= MAX_SHAPLEY_PLAYERS:
        try:
            return allocate_shapley(cost_minor, players, cost_of), "shapley"
        except ValueError:
            pass  # not monotone: fall back to stand-alone weights, which always apply
    weights = {player: cost_of(frozenset({player})) for player in players}
    return allocate_proportional(cost_minor, weights), "standalone"


def consolidation_report(
    session: Session, area_code: str, day: date, cost_model: CostModel
) -> dict[str, Any]:
    """The contract's report: shared routes' cost, each merchant alone and its share."""
    area = areas.get_area(session, area_code)
    if area is None:
        raise ConsolidationError(f"no service area has the code {area_code!r}")
    shares = allocate_routes(session, area, day, cost_model)
    if not shares:
        raise ConsolidationError(f"area {area_code!r} has no planned routes on {day.isoformat()}")
    currency = currency_for(area.currency)
    shared = sum(
        session.exec(
            select(Route.cost_minor).where(Route.area_id == area.id, Route.date == day)
        ).all()
    )
    allocated: defaultdict[str, int] = defaultdict(int)
    for route_shares in shares.values():
        for tenant_id, amount in route_shares.items():
            allocated[tenant_id] += amount
    alone = cost_model.standalone_costs(session, area, day)
    total_alone = sum(alone.values())
    saving = (
        float(round(Decimal(100) * (total_alone - shared) / total_alone, 1)) if total_alone else 0.0
    )
    return {
        "shared_cost": format_amount(from_minor(shared, currency), currency),
        "standalone": {
            tenant_id: {
                "cost": format_amount(from_minor(alone.get(tenant_id, 0), currency), currency),
                "allocated": format_amount(from_minor(allocated[tenant_id], currency), currency),
            }
            for tenant_id in sorted(allocated)
        },
        "saving_pct": saving,
    }


def tenant_route_shares(
    session: Session, tenant_id: str, start: date, end: date
) -> list[tuple[Route, RouteAllocation]]:
    """A merchant's own shares (never who else rode the route) for days in [start, end)."""
    return list(
        session.exec(
            select(Route, RouteAllocation)
            .join(RouteAllocation, col(RouteAllocation.route_id) == col(Route.id))
            .where(RouteAllocation.tenant_id == tenant_id, Route.date >= start, Route.date < end)
            .order_by(col(Route.date), col(Route.id))
        ).all()
    )
