"""Route-cost shares: the plan run writes each route's cost basis with the route, and
billing's task allocates it in its own transaction, once, whatever runs it when."""

from __future__ import annotations

import threading
import time
from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, update
from sqlmodel import col, select

from services.billing import consolidation, tasks
from services.billing.reconciliation import reconcile
from services.core.db import get_engine, transaction, utcnow
from services.core.meters import Usage, route_cost_usage_id
from services.core.models import (
    Delivery,
    DeliveryStatus,
    PlanRunStatus,
    Route,
    RouteAllocation,
    RouteCostBasis,
    Stop,
    UsageEvent,
)
from services.core.usage import record_usage
from services.planner import runs
from services.planner.cost_basis import record_cost_basis
from tests.billing.world import book, demo
from tests.factories import worker_on_own_queue
from tests.planner import world

postgresql_only = pytest.mark.skipif(
    get_engine().dialect.name != "postgresql", reason="row locks are PostgreSQL's"
)


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


def _pending() -> list[tuple[str, int]]:
    with transaction() as session:
        return list(
            session.exec(
                select(RouteCostBasis.route_id, RouteCostBasis.revision).where(
                    col(RouteCostBasis.allocated_at).is_(None)
                )
            ).all()
        )


def _route_findings() -> list[str]:
    with transaction() as session:
        result = reconcile(session)
    return [f.message for f in result.findings if f.check == "route_allocation"]


def _two_merchants_planned() -> tuple[str, str, date]:
    now = utcnow()
    with transaction() as session:
        acme, bluebird = demo(session, now)
        day = book(session, acme, 6, now)[0].date
        book(session, bluebird, 5, now, offset=0.002)
    assert _plan_demo(day).deliveries_planned == 11
    return acme, bluebird, day


def _assert_billed_once(costs, shares, usage) -> None:
    """Shares sum to each route's cost, each has its event of the same amount, and
    every stop is paid for by its merchant's share."""
    for route_id, cost in costs.items():
        assert sum(a for (r, _, _), a in shares.items() if r == route_id) == cost
    assert set(usage) == {route_cost_usage_id(r, t, n) for r, t, n in shares}
    for (route_id, tenant, revision), amount in shares.items():
        assert usage[route_cost_usage_id(route_id, tenant, revision)] == Decimal(amount) / 100
    assert sum(usage.values()) == Decimal(sum(costs.values())) / 100
    with transaction() as session:
        stops = session.exec(select(Stop.route_id, Stop.tenant_id, Stop.delivery_id)).all()
        paid = {(a.route_id, a.tenant_id, d) for a in session.exec(select(RouteAllocation))
                for d in a.deliveries}  # fmt: skip
    assert set(stops) == paid


def test_a_plan_run_writes_cost_bases_and_the_task_allocates_them_once(db):
    acme, bluebird, day = _two_merchants_planned()
    costs, shares, usage = _ledger()
    assert costs and shares == {} and usage == {}  # the plan run itself bills nothing
    with transaction() as session:
        bases = session.exec(select(RouteCostBasis)).all()
    assert {(b.route_id, b.revision) for b in bases} == {(r, 1) for r in costs}
    assert all(b.route_cost_minor == costs[b.route_id] and b.costs for b in bases)

    written = tasks.allocate_route_shares()

    costs, shares, usage = _ledger()
    assert written == len(shares) and {tenant for _, tenant, _ in shares} == {acme, bluebird}
    _assert_billed_once(costs, shares, usage)
    assert _pending() == [] and _route_findings() == []
    assert tasks.allocate_route_shares() == 0  # a rerun bills nothing
    assert _plan_demo(day).deliveries_planned == 0
    assert tasks.allocate_route_shares() == 0
    assert _ledger() == (costs, shares, usage)


@postgresql_only
def test_a_sweep_waits_for_a_concurrent_one_and_bills_nothing_twice(db):
    _two_merchants_planned()
    second: list[int] = []
    with transaction() as session:
        first = consolidation.allocate_route_shares(session)  # holds the bases' row locks
        racer = threading.Thread(target=lambda: second.append(tasks.allocate_route_shares()))
        racer.start()
        racer.join(timeout=1.0)
        assert racer.is_alive()  # waiting for the first sweep to commit
    racer.join(timeout=30)
    assert first and second == [0]
    _assert_billed_once(*_ledger())


@postgresql_only
def test_sweeps_started_together_bill_once(db):
    _two_merchants_planned()
    start = threading.Barrier(4)
    written: list[int] = []
    errors: list[BaseException] = []

    def sweep() -> None:
        start.wait()
        try:
            written.append(tasks.allocate_route_shares())
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=sweep) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    costs, shares, usage = _ledger()
    assert errors == [] and sorted(written) == [0, 0, 0, len(shares)]
    _assert_billed_once(costs, shares, usage)


def test_routes_commit_even_if_allocation_fails_and_a_retry_allocates(db, monkeypatch):
    now = utcnow()
    with transaction() as session:
        acme, _ = demo(session, now)
        day = book(session, acme, 3, now)[0].date

    def broken(*args, **kwargs):
        raise RuntimeError("allocation failed")

    monkeypatch.setattr(consolidation, "split_route", broken)
    run = _plan_demo(day)
    assert run.status == PlanRunStatus.DONE and run.deliveries_planned == 3
    with pytest.raises(RuntimeError, match="allocation failed"):
        tasks.allocate_route_shares()
    costs, shares, usage = _ledger()
    assert costs and shares == {} and usage == {}  # nothing of the failed sweep stays
    assert len(_pending()) == len(costs)
    assert _route_findings() == []  # a fresh basis waits its turn

    with transaction() as session:  # the sweep kept failing for ten minutes
        session.execute(update(RouteCostBasis).values(created_at=utcnow() - timedelta(minutes=10)))
    assert sum("has waited unallocated" in f for f in _route_findings()) == len(costs)

    monkeypatch.undo()
    assert tasks.allocate_route_shares() > 0  # the next sweep (or kick) makes it good
    _assert_billed_once(*_ledger())
    assert _pending() == [] and _route_findings() == []


def test_a_share_whose_usage_id_is_taken_with_another_amount_is_not_written(db):
    acme, _, _ = _two_merchants_planned()
    with transaction() as session:
        route_id = session.exec(select(Stop.route_id).where(Stop.tenant_id == acme)).first()
        taken = Usage(id=route_cost_usage_id(route_id, acme, 1), tenant_id=acme,
                      meter="route_cost", quantity=Decimal("0.01"), at=utcnow())  # fmt: skip
        record_usage(session, [taken])
    with pytest.raises(consolidation.AllocationError, match="different"):
        tasks.allocate_route_shares()
    assert _ledger()[1] == {} and len(_pending()) == len(_ledger()[0])


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
    tasks.allocate_route_shares()
    costs, first, _ = _ledger()
    [(route_id, cost_before)] = costs.items()
    with transaction() as session:
        late = world.delivery(session, area, corvid, at=(40.715, -74.09))

    assert world.plan().deliveries_inserted == 1
    with transaction() as session:
        basis = session.get_one(RouteCostBasis, (route_id, 2))
    assert (basis.deliveries, basis.costs) == ({corvid.id: [late.id]}, {})
    assert tasks.allocate_route_shares() == 1

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
    assert tasks.allocate_route_shares() == 0
    assert _ledger() == (costs, shares, usage)


def test_reconciliation_finds_stale_missing_and_orphan_shares(db):
    now = utcnow()
    with transaction() as session:
        acme, bluebird = demo(session, now)
        day = book(session, acme, 4, now)[0].date
        book(session, bluebird, 3, now, offset=0.002)
    _plan_demo(day)
    tasks.allocate_route_shares()
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
        early = book(session, bluebird, 1, now, offset=0.002)[0]
    _plan_demo(day)
    tasks.allocate_route_shares()
    with transaction() as session:  # as if a late insertion had cost nothing, or saved a cent
        late = book(session, bluebird, 1, now, offset=0.003)[0]
        route = session.get_one(Route, session.get_one(Delivery, early.id).route_id)
        session.add(Stop(route_id=route.id, delivery_id=late.id, tenant_id=bluebird,
                         sequence=route.stop_count + 1, eta=route.return_at))  # fmt: skip
        late.status, late.route_id = DeliveryStatus.PLANNED, route.id
        route.cost_minor += grown
        route.stop_count += 1
        session.flush()
        assert record_cost_basis(session, route, world.priced_afresh(session, route), [late.id])
    tasks.allocate_route_shares()
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


@pytest.fixture
def billing_worker(db):
    with worker_on_own_queue("billing") as running:
        yield running


def test_a_worker_allocates_the_routes_a_plan_run_kicked_it_for(billing_worker):
    _two_merchants_planned()  # its commit sends billing.allocate_route_shares by name

    deadline = time.monotonic() + 60
    while _pending() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _pending() == []
    _assert_billed_once(*_ledger())
    with transaction() as session:
        assert session.exec(select(func.count()).select_from(RouteAllocation)).one() > 0
