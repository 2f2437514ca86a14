"""Route-cost shares are allocated and metered in the transaction that writes the routes."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, update
from sqlmodel import col, select

from services.billing import consolidation
from services.billing.metering import route_cost_usage_id
from services.billing.reconciliation import reconcile
from services.core.db import transaction, utcnow
from services.core.models import (
    PlanRunStatus,
    Route,
    RouteAllocation,
    ServiceArea,
    Stop,
    UsageEvent,
)
from services.core.usage import Usage, record_usage
from services.planner import runs
from services.planner.standalone import PlannerCostModel
from tests.billing.world import book, demo
from tests.planner import world


def _plan_demo(day) -> runs.PlanRun:
    with transaction() as session:
        run = runs.request_plan(session, "demo", day, "test", time_limit=2)
    return runs.execute(run.id)


def _ledger() -> tuple[dict[str, int], dict[tuple[str, str, int], int], dict[str, Decimal]]:
    """Route costs; shares by (route, tenant, revision); route_cost usage by id."""
    with transaction() as session:
        costs = dict(session.exec(select(Route.id, Route.cost_minor)).all())
        shares = {
            (a.route_id, a.tenant_id, a.revision): a.amount_minor
            for a in session.exec(select(RouteAllocation)).all()
        }
        usage = dict(
            session.exec(
                select(UsageEvent.id, UsageEvent.quantity).where(UsageEvent.meter == "route_cost")
            ).all()
        )
    return costs, shares, usage


def _route_findings() -> list[str]:
    with transaction() as session:
        result = reconcile(session)
    return [f.message for f in result.findings if f.check == "route_allocation"]


def test_a_plan_run_records_each_merchants_share_with_its_routes(db):
    now = utcnow()
    with transaction() as session:
        acme, bluebird = demo(session, now)
        day = book(session, acme, 6, now)[0].date
        book(session, bluebird, 5, now, offset=0.002)
    assert _plan_demo(day).deliveries_planned == 11

    costs, shares, usage = _ledger()
    assert costs and {tenant for _, tenant, _ in shares} == {acme, bluebird}
    for route_id, cost in costs.items():
        assert sum(a for (r, _, _), a in shares.items() if r == route_id) == cost
    assert set(usage) == {route_cost_usage_id(r, t, n) for r, t, n in shares}
    for (route_id, tenant, revision), amount in shares.items():
        assert usage[route_cost_usage_id(route_id, tenant, revision)] == Decimal(amount) / 100
    assert sum(usage.values()) == Decimal(sum(costs.values())) / 100
    with transaction() as session:  # every stop is paid for by its merchant's share
        stops = session.exec(select(Stop.route_id, Stop.tenant_id, Stop.delivery_id)).all()
        paid = {(a.route_id, a.tenant_id, d) for a in session.exec(select(RouteAllocation))
                for d in a.deliveries}  # fmt: skip
    assert set(stops) == paid and len(stops) == 11

    assert _plan_demo(day).deliveries_planned == 0  # a rerun plans and bills nothing again
    with transaction() as session:
        area = session.exec(select(ServiceArea)).one()
        totals = consolidation.allocate_routes(session, area, day, PlannerCostModel())
    assert _ledger() == (costs, shares, usage)
    assert totals == {
        route_id: {t: a for (r, t, _), a in shares.items() if r == route_id} for route_id in costs
    }
    assert _route_findings() == []


def test_shares_commit_with_the_routes_or_not_at_all(db, monkeypatch):
    now = utcnow()
    with transaction() as session:
        acme, _ = demo(session, now)
        day = book(session, acme, 3, now)[0].date

    def broken(*args, **kwargs):
        raise RuntimeError("allocation failed")

    monkeypatch.setattr(consolidation, "allocate_routes", broken)
    run = _plan_demo(day)
    assert run.status == PlanRunStatus.FAILED and "allocation failed" in (run.error or "")
    with transaction() as session:
        assert session.exec(select(func.count()).select_from(Route)).one() == 0
        assert session.exec(select(func.count()).select_from(UsageEvent)
                            .where(col(UsageEvent.meter).in_(["route_cost", "route_km"]))
                            ).one() == 0  # fmt: skip


def test_a_late_insertion_bills_what_it_added_to_the_newcomer_only(db):
    with transaction() as session:
        area = world.area(session)
        for name in ("a", "b"):
            world.van(session, area, name, parcels=4, fixed=20_000)
        acme, bluebird = world.tenant(session, "Acme"), world.tenant(session, "Bluebird")
        corvid = world.tenant(session, "Corvid")
        for owner, at in zip((acme, bluebird, acme), [(40.72, -74.12), (40.71, -74.06),
                                                      (40.70, -74.0)], strict=True):  # fmt: skip
            world.delivery(session, area, owner, at=at)
    world.plan()
    costs, first, _ = _ledger()
    [(route_id, cost_before)] = costs.items()
    with transaction() as session:
        late = world.delivery(session, area, corvid, at=(40.715, -74.09))

    assert world.plan().deliveries_inserted == 1

    costs, shares, usage = _ledger()
    added = costs[route_id] - cost_before
    assert added > 0
    assert shares == {**first, (route_id, corvid.id, 2): added}  # earlier shares unchanged
    assert usage[f"{route_id}:{corvid.id}:route_cost:2"] == Decimal(added) / 100
    with transaction() as session:
        revision = session.get_one(RouteAllocation, (route_id, 2, corvid.id))
    assert (revision.method, revision.deliveries, revision.route_cost_minor) == (
        "insertion",
        [late.id],
        costs[route_id],
    )
    assert _route_findings() == []
    world.plan()  # nothing new: nothing billed
    assert _ledger() == (costs, shares, usage)


def test_reconciliation_finds_stale_missing_and_orphan_shares(db):
    now = utcnow()
    with transaction() as session:
        acme, bluebird = demo(session, now)
        day = book(session, acme, 4, now)[0].date
        book(session, bluebird, 3, now, offset=0.002)
    _plan_demo(day)
    costs = _ledger()[0]
    route_id = next(iter(costs))
    with transaction() as session:
        # a route whose cost changed after it was allocated
        session.execute(update(Route).where(col(Route.id) == route_id)
                        .values(cost_minor=costs[route_id] + 7))  # fmt: skip
        # a stop no share pays for
        allocation = session.exec(
            select(RouteAllocation).where(RouteAllocation.route_id == route_id)
        ).first()
        assert allocation is not None
        allocation.deliveries = allocation.deliveries[1:]
        # a route_cost event without a share
        record_usage(session, [Usage(id=f"{route_id}:{acme}:route_cost:9", tenant_id=acme,
                                     meter="route_cost", quantity=Decimal(3), at=now)])  # fmt: skip
    findings = _route_findings()
    assert len(findings) == 3
    assert any(f"costs {costs[route_id] + 7} minor units, but was last allocated" in f
               for f in findings)  # fmt: skip
    assert any("is paid for by no share" in f for f in findings)
    assert any("matches no share" in f for f in findings)


@pytest.mark.parametrize("grown", [-1, 0])
def test_a_route_that_got_no_dearer_bills_the_newcomer_nothing(db, grown):
    now = utcnow()
    with transaction() as session:
        acme, bluebird = demo(session, now)
        day = book(session, acme, 2, now)[0].date
        late = book(session, bluebird, 1, now, offset=0.002)[0]
    _plan_demo(day)
    with transaction() as session:  # as if a late insertion had cost nothing, or saved a cent
        stop = session.exec(select(Stop).where(Stop.delivery_id == late.id)).one()
        route = session.get_one(Route, stop.route_id)
        for allocation in session.exec(
            select(RouteAllocation).where(RouteAllocation.route_id == route.id)
        ).all():
            allocation.deliveries = [d for d in allocation.deliveries if d != late.id]
        route.cost_minor += grown
        area = session.exec(select(ServiceArea)).one()
        consolidation.allocate_routes(session, area, day, PlannerCostModel())
    _, after, usage = _ledger()
    assert after[(route.id, bluebird, 2)] == 0
    assert usage[f"{route.id}:{bluebird}:route_cost:2"] == 0
    assert _route_findings() == []
    with transaction() as session:  # the merchant sees one share per route
        [(seen, share)] = consolidation.tenant_route_shares(session, bluebird, day,
                                                             day + timedelta(days=1))  # fmt: skip
    assert (seen.id, share.amount_minor, share.stops) == (
        route.id,
        after[(route.id, bluebird, 1)],
        2,
    )
    assert share.method != "insertion"  # its first revision's
