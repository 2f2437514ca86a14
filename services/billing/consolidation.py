"""Sharing planned routes' costs among merchants, and what sharing saved them.

Allocation method, per route (the route's `cost_minor` from the planner's cost model):
- the cost of a coalition of merchants is what the same van would cost driving only
  their stops, in the route's order (fixed cost + distance + driver time);
- with up to `MAX_SHAPLEY_PLAYERS` merchants the route's cost is split by Shapley
  values of that game (efficient, symmetric, null player pays nothing, additive);
  above that, or if the game is not monotone, in proportion to each merchant's
  stand-alone cost of its own stops on the route;
- shares are exact integer minor units summing to the route's cost (largest remainder);
- a plan run allocates its routes in the transaction that writes them (`allocate_routes`),
  and a late insertion into a route allocates only what it added, to the merchants
  whose stops it added: shares, once written and metered, never change.
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
from services.billing.metering import route_cost_usage_id
from services.billing.money import Currency, currency_for, format_amount, from_minor
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
    """Allocate what is not yet allocated on the area-day's routes; return every share.

    A plan run calls this in the transaction that writes its routes, so the shares and
    their `route_cost` usage events commit with the routes (and cost-plus plans can
    price on them); the consolidation report calls it too. Shares are never changed:
    - a route nobody paid for yet is split whole among the merchants on it (revision 1,
      Shapley or stand-alone weights, see `split_route`);
    - a route that gained stops since (a late insertion) allocates what its cost grew
      by since the last revision among the merchants whose stops were added, in
      proportion to how many they added (the next revision). The incumbents keep
      their shares; a route that got cheaper refunds nobody and the newcomers pay 0;
    - a route with no stop uncovered is left alone, so running this again, for the
      same plan run or any later one, bills nothing twice.
    Returns each route's shares per merchant, summed over revisions.
    """
    currency = currency_for(area.currency)
    # Plan runs lock the area row FOR UPDATE to write routes: wait for them to finish.
    session.exec(
        select(ServiceArea).where(ServiceArea.id == area.id).with_for_update(key_share=True)
    ).one()
    routes = session.exec(
        select(Route).where(Route.area_id == area.id, Route.date == day).order_by(col(Route.id))
    ).all()
    route_ids = [route.id for route in routes]
    allocations: defaultdict[str, list[RouteAllocation]] = defaultdict(list)
    for allocation in session.exec(
        select(RouteAllocation).where(col(RouteAllocation.route_id).in_(route_ids))
    ).all():
        allocations[allocation.route_id].append(allocation)
    stops: defaultdict[str, list[tuple[str, str]]] = defaultdict(list)
    for route_id, tenant_id, delivery_id in session.exec(
        select(Stop.route_id, Stop.tenant_id, Stop.delivery_id)
        .where(col(Stop.route_id).in_(route_ids))
        .order_by(col(Stop.route_id), col(Stop.sequence))
    ).all():
        stops[route_id].append((tenant_id, delivery_id))
    shares: dict[str, dict[str, int]] = {}
    for route in routes:
        earlier = allocations[route.id]
        covered = {delivery for allocation in earlier for delivery in allocation.deliveries}
        added = [(tenant, delivery) for tenant, delivery in stops[route.id]
                 if delivery not in covered]  # fmt: skip
        if added:
            earlier += _allocate(session, area, route, earlier, added, cost_model, currency)
        totals: defaultdict[str, int] = defaultdict(int)
        for allocation in earlier:
            totals[allocation.tenant_id] += allocation.amount_minor
        if totals:
            shares[route.id] = dict(totals)
    session.flush()
    return shares


def _allocate(
    session: Session,
    area: ServiceArea,
    route: Route,
    earlier: list[RouteAllocation],
    added: list[tuple[str, str]],
    cost_model: CostModel,
    currency: Currency,
) -> list[RouteAllocation]:
    """The next revision of a route's allocation: its shares and their usage events."""
    deliveries: defaultdict[str, list[str]] = defaultdict(list)
    for tenant_id, delivery_id in added:
        deliveries[tenant_id].append(delivery_id)
    if earlier:
        revision = max(allocation.revision for allocation in earlier) + 1
        grown = route.cost_minor - sum(allocation.amount_minor for allocation in earlier)
        counts = {tenant: Decimal(len(own)) for tenant, own in deliveries.items()}
        split, method = allocate_proportional(max(grown, 0), counts), "insertion"
    else:
        revision = 1
        split, method = split_route(
            route.cost_minor, sorted(deliveries), _coalition_cost(session, route, cost_model)
        )
    rows = [
        RouteAllocation(
            route_id=route.id,
            revision=revision,
            tenant_id=tenant_id,
            amount_minor=amount,
            currency=currency.code,
            method=method,
            stops=len(deliveries[tenant_id]),
            route_cost_minor=route.cost_minor,
            deliveries=deliveries[tenant_id],
        )
        for tenant_id, amount in sorted(split.items())
    ]
    session.add_all(rows)
    record_usage(
        session,
        [
            Usage(
                id=route_cost_usage_id(route.id, row.tenant_id, revision),
                tenant_id=row.tenant_id,
                meter="route_cost",
                quantity=from_minor(row.amount_minor, currency),
                at=route.departure_at,
                area_code=area.code,
            )
            for row in rows
        ],
    )
    return rows


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
    """A merchant's own shares (never who else rode the route) for days in [start, end).

    One per route: a merchant with stops in several revisions of a route (it also
    booked late) gets them summed, with the method of its first.
    """
    rows = session.exec(
        select(Route, RouteAllocation)
        .join(RouteAllocation, col(RouteAllocation.route_id) == col(Route.id))
        .where(RouteAllocation.tenant_id == tenant_id, Route.date >= start, Route.date < end)
        .order_by(col(Route.date), col(Route.id), col(RouteAllocation.revision))
    ).all()
    shares: dict[str, tuple[Route, RouteAllocation]] = {}
    for route, allocation in rows:
        if route.id not in shares:
            shares[route.id] = (route, allocation)
            continue
        first = shares[route.id][1]
        shares[route.id] = (route, RouteAllocation(
            route_id=route.id, revision=allocation.revision, tenant_id=tenant_id,
            amount_minor=first.amount_minor + allocation.amount_minor,
            currency=first.currency, method=first.method,
            stops=first.stops + allocation.stops,
            route_cost_minor=allocation.route_cost_minor,
            deliveries=[*first.deliveries, *allocation.deliveries],
            created_at=first.created_at,
        ))  # fmt: skip
    return list(shares.values())
