"""Sharing planned routes' costs among merchants, and what sharing saved them.

Allocation method, per route (the route's `cost_minor` from the planner's cost model):
- the cost of a coalition of merchants is what the same van would cost driving only
  their stops, in the route's order (fixed cost + distance + driver time);
- with up to `MAX_SHAPLEY_PLAYERS` merchants the route's cost is split by Shapley
  values of that game (efficient, symmetric, null player pays nothing, additive);
  above that, or if the game is not monotone, in proportion to each merchant's
  stand-alone cost of its own stops on the route;
- shares are exact integer minor units summing to the route's cost (largest remainder);
- a late insertion into a route allocates only what it added, to the merchants whose
  stops it added: shares, once written and metered, never change.
Because a shared van's fixed cost and the detours overlap, the game is subadditive
in practice, so each share stays below what the merchant's stops would cost alone.

Billing must not import the planner, nor the planner billing: the planner writes, with
each new or grown route, a `RouteCostBasis` (the coalition costs, the stops covered),
and `allocate_route_shares` here turns every basis not yet allocated into shares, from
the Celery task `billing.allocate_route_shares` (kicked by the plan run after it
commits, and swept every minute) or before the consolidation report. That report's
other figure, each merchant re-planned alone, comes from a `CostModel` the `lastmile`
assembler (`services/cli.py`) hands in: `services/planner/standalone.py` implements it.
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
from services.core import areas, logs
from services.core.db import utcnow
from services.core.meters import Usage, route_cost_usage
from services.core.models import Delivery, Route, RouteAllocation, RouteCostBasis, ServiceArea
from services.core.money import currency_for, format_amount, from_minor
from services.core.usage import record_usage

logger = logs.get_logger(__name__)


class ConsolidationError(ValueError):
    """The area or day cannot be reported on; the message says why."""


class AllocationError(ValueError):
    """A cost basis cannot be allocated (a bug upstream, or a stored `route_cost` event of
    the same id with another amount); the caller's transaction must roll back."""


class CostModel(Protocol):
    """The planner's stand-alone costs, as the consolidation report needs them."""

    def standalone_costs(self, session: Session, area: ServiceArea, day: date) -> dict[str, int]:
        """Minor units each tenant's planned deliveries would cost, planned alone."""
        ...


def allocate_route_shares(
    session: Session, area_id: str | None = None, day: date | None = None
) -> list[RouteAllocation]:
    """Allocate every route revision that has a cost basis and no shares yet (only the
    area-day's, if given); return the shares written, in the caller's transaction.

    - revision 1 splits the whole route among the merchants on it (Shapley or
      stand-alone weights from the basis's coalition costs, see `split_route`);
    - revision n >= 2 (a late insertion) splits what the route's cost grew by since
      the earlier revisions' shares, among the merchants whose stops it added, in
      proportion to how many each added. The incumbents keep their shares; a route that
      got no dearer refunds nobody and the newcomers pay 0.
    Each share's `route_cost` usage event is recorded with it and the basis is stamped
    `allocated_at`. The pending bases are locked FOR UPDATE in (route, revision) order,
    so a concurrent sweep waits, then finds them allocated: nothing is billed twice
    (and the shares' and events' keys would refuse it anyway).
    """
    pending = select(RouteCostBasis).where(col(RouteCostBasis.allocated_at).is_(None))
    if area_id is not None or day is not None:
        pending = pending.join(Route, col(Route.id) == col(RouteCostBasis.route_id))
        if area_id is not None:
            pending = pending.where(Route.area_id == area_id)
        if day is not None:
            pending = pending.where(Route.date == day)
    bases = session.exec(
        pending.order_by(
            col(RouteCostBasis.route_id), col(RouteCostBasis.revision)
        ).with_for_update(of=RouteCostBasis)
    ).all()
    if not bases:
        return []
    route_ids = sorted({basis.route_id for basis in bases})
    earlier: defaultdict[str, list[RouteAllocation]] = defaultdict(list)
    for allocation in session.exec(
        select(RouteAllocation).where(col(RouteAllocation.route_id).in_(route_ids))
    ).all():
        earlier[allocation.route_id].append(allocation)
    where = dict(
        session.exec(
            select(Route.id, ServiceArea)
            .join(ServiceArea, col(ServiceArea.id) == col(Route.area_id))
            .where(col(Route.id).in_(route_ids))
        ).all()
    )
    now = utcnow()
    written: list[RouteAllocation] = []
    usage: list[Usage] = []
    for basis in bases:
        rows = _allocate(basis, earlier[basis.route_id], where[basis.route_id])
        usage += [
            route_cost_usage(
                row.route_id,
                row.tenant_id,
                row.revision,
                from_minor(row.amount_minor, currency_for(row.currency)),
                basis.departure_at,
                where[basis.route_id].code,
            )
            for row in rows
        ]
        earlier[basis.route_id] += rows
        written += rows
        basis.allocated_at = now
    session.add_all(written)
    report = record_usage(session, usage)
    if report.conflicts:  # an event of that id exists with another amount: never re-bill
        raise AllocationError("; ".join(str(conflict) for conflict in report.conflicts))
    session.flush()
    _log_shares(session, written)
    return written


def _log_shares(session: Session, shares: list[RouteAllocation]) -> None:
    """One line per share, naming the requests that booked its deliveries."""
    booked_by = dict(
        session.exec(
            select(Delivery.id, Delivery.request_id).where(
                col(Delivery.id).in_({d for share in shares for d in share.deliveries})
            )
        ).all()
    )
    for share in shares:
        logger.info(
            "route cost allocated",
            route_id=share.route_id,
            revision=share.revision,
            tenant_id=share.tenant_id,
            amount_minor=share.amount_minor,
            deliveries=share.deliveries,
            request_ids=sorted({booked_by.get(d) or "" for d in share.deliveries} - {""}),
        )


def _allocate(
    basis: RouteCostBasis, earlier: list[RouteAllocation], area: ServiceArea
) -> list[RouteAllocation]:
    """The shares of one revision of a route, from its basis and the earlier shares."""
    route = f"route {basis.route_id} revision {basis.revision}"
    if any(allocation.revision >= basis.revision for allocation in earlier):
        raise AllocationError(f"{route} is already allocated")
    if basis.revision > 1 and not any(a.revision == basis.revision - 1 for a in earlier):
        raise AllocationError(f"{route} comes before revision {basis.revision - 1} is allocated")
    deliveries = basis.deliveries
    if basis.revision > 1:
        grown = basis.route_cost_minor - sum(allocation.amount_minor for allocation in earlier)
        counts = {tenant: Decimal(len(own)) for tenant, own in deliveries.items()}
        split, method = allocate_proportional(max(grown, 0), counts), "insertion"
    else:
        split, method = split_route(
            basis.route_cost_minor, sorted(deliveries), _coalition_cost(basis, route)
        )
    return [
        RouteAllocation(
            route_id=basis.route_id,
            revision=basis.revision,
            tenant_id=tenant_id,
            amount_minor=amount,
            currency=currency_for(area.currency).code,
            method=method,
            stops=len(deliveries[tenant_id]),
            route_cost_minor=basis.route_cost_minor,
            deliveries=deliveries[tenant_id],
        )
        for tenant_id, amount in sorted(split.items())
    ]


def _coalition_cost(basis: RouteCostBasis, route: str) -> Callable[[frozenset[str]], Decimal]:
    def cost_of(coalition: frozenset[str]) -> Decimal:
        key = RouteCostBasis.coalition_key(coalition)
        if key not in basis.costs:
            raise AllocationError(f"the cost basis of {route} prices no coalition {key!r}")
        return Decimal(basis.costs[key])

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
    """The contract's report: shared routes' cost, each merchant alone and its share.

    Routes of the day not yet allocated are allocated first, by the same function as
    the Celery sweep (and in this transaction), so the shares are complete.
    """
    area = areas.get_area(session, area_code)
    if area is None:
        raise ConsolidationError(f"no service area has the code {area_code!r}")
    costs = session.exec(
        select(Route.cost_minor).where(Route.area_id == area.id, Route.date == day)
    ).all()
    if not costs:
        raise ConsolidationError(f"area {area_code!r} has no planned routes on {day.isoformat()}")
    allocate_route_shares(session, area.id, day)
    currency = currency_for(area.currency)
    shared = sum(costs)
    allocated: defaultdict[str, int] = defaultdict(int)
    for tenant_id, amount in session.exec(
        select(RouteAllocation.tenant_id, RouteAllocation.amount_minor)
        .join(Route, col(Route.id) == col(RouteAllocation.route_id))
        .where(Route.area_id == area.id, Route.date == day)
    ).all():
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
