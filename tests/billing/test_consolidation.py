"""Shared-route cost allocation and the consolidation report."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

from click.testing import CliRunner
from sqlmodel import col, select

from services.billing.allocation import MAX_SHAPLEY_PLAYERS
from services.billing.consolidation import (
    allocate_route_shares,
    consolidation_report,
    split_route,
)
from services.cli import main
from services.core.db import transaction, utcnow
from services.core.models import RouteAllocation, RouteCostBasis, ServiceArea, UsageEvent
from services.planner import cost_basis, runs
from tests.billing.world import book, demo, plan_by_hand


class FixedStandalone:
    """Stand-alone costs given instead of solved."""

    def __init__(self, alone: dict[str, int]) -> None:
        self.alone = alone

    def standalone_costs(self, session, area, day):
        return self.alone


def _world(cost_minor: int = 10_001):
    now = utcnow()
    with transaction() as session:
        acme, bluebird = demo(session, now)
        a = book(session, acme, 4, now)
        b = book(session, bluebird, 3, now, offset=0.002)
        routes = plan_by_hand(session, [[a[0], b[0], a[1], b[1]], [a[2], a[3], b[2]]], cost_minor)
        area = session.exec(select(ServiceArea)).one()
    return acme, bluebird, routes, area


def test_each_route_is_split_exactly_and_recorded_as_usage(db):
    acme, bluebird, routes, _ = _world()
    with transaction() as session:
        written = allocate_route_shares(session)
    for route in routes:
        shares = {a.tenant_id: a.amount_minor for a in written if a.route_id == route.id}
        assert sum(shares.values()) == 10_001
        assert set(shares) == {acme, bluebird}
    with transaction() as session:
        methods = set(session.exec(select(RouteAllocation.method)).all())
        usage = session.exec(select(UsageEvent).where(UsageEvent.meter == "route_cost")).all()
        pending = session.exec(
            select(RouteCostBasis).where(col(RouteCostBasis.allocated_at).is_(None))
        ).all()
    assert methods == {"shapley"} and pending == []
    assert sum(e.quantity for e in usage) == Decimal("200.02")
    with transaction() as session:  # a second run changes nothing
        assert allocate_route_shares(session) == []


def test_the_planner_prices_every_coalition_billing_splits_by_shapley():
    assert cost_basis.SHAPLEY_MERCHANTS == MAX_SHAPLEY_PLAYERS


def test_symmetric_merchants_pay_alike_and_a_lone_merchant_pays_all():
    shares, method = split_route(101, ["a", "b"], lambda c: Decimal(60 + 40 * (len(c) - 1)))
    assert method == "shapley" and shares == {"a": 51, "b": 50}
    assert split_route(77, ["a"], lambda c: Decimal(1)) == ({"a": 77}, "sole")
    many = [f"m{i}" for i in range(9)]
    shares, method = split_route(900, many, lambda c: Decimal(100))
    assert method == "standalone" and set(shares.values()) == {100}


def test_the_report_compares_shared_cost_with_each_merchant_alone(db):
    acme, bluebird, routes, _ = _world()
    alone = {acme: 15_000, bluebird: 14_000}
    with transaction() as session:
        report = consolidation_report(session, "demo", routes[0].date, FixedStandalone(alone))
    assert report["shared_cost"] == "200.02"
    assert report["saving_pct"] == 31.0  # 1 - 200.02 / 290.00
    for figures in report["standalone"].values():
        assert Decimal(figures["allocated"]) < Decimal(figures["cost"])
    assert sum(Decimal(f["allocated"]) for f in report["standalone"].values()) == Decimal("200.02")


def test_the_cli_prints_the_contract_json_with_the_planner_cost_model(db):
    now = utcnow()
    with transaction() as session:
        acme, bluebird = demo(session, now)
        day = book(session, acme, 6, now)[0].date
        book(session, bluebird, 5, now, offset=0.002)
        run = runs.request_plan(session, "demo", day, "test", time_limit=2)
    assert runs.execute(run.id).deliveries_planned == 11
    result = CliRunner().invoke(main, ["billing", "consolidation", "--area", "demo", "--date",
                                       day.isoformat(), "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report) == {"shared_cost", "standalone", "saving_pct"}
    assert set(report["standalone"]) == {acme, bluebird}
    for figures in report["standalone"].values():
        assert Decimal(figures["allocated"]) < Decimal(figures["cost"])
    missing = CliRunner().invoke(main, ["billing", "consolidation", "--area", "demo", "--date",
                                        date(2020, 1, 1).isoformat(), "--json"])  # fmt: skip
    assert missing.exit_code == 2 and "no planned routes" in missing.stderr
