"""Route cost bases: priced from the plan run's own matrices, written without a provider."""

from __future__ import annotations

import pytest
from sqlmodel import delete, select

from services.core.db import transaction
from services.core.models import PlanRunStatus, Route, RouteCostBasis
from services.planner import matrix, repository, runs
from services.planner.matrix import shared_cache
from tests.planner import world


def _two_merchants_on_one_van(session):
    area = world.area(session)
    world.van(session, area, "first")
    world.van(session, area, "second")
    acme, bluebird = world.tenant(session, "Acme"), world.tenant(session, "Bluebird")
    for k in range(3):
        world.delivery(session, area, acme, at=(40.72, -74.12 + k / 50))
        world.delivery(session, area, bluebird, at=(40.74, -74.11 + k / 50))
    return area, acme, bluebird


def _refuse_matrices_while_writing(monkeypatch) -> None:
    """Any matrix asked for while a plan run writes fails the run."""
    write = runs.write_solution

    def refuse(*args, **kwargs):
        raise AssertionError("a matrix was asked for inside the write transaction")

    def guarded(*args, **kwargs):
        with monkeypatch.context() as inside:
            inside.setattr(matrix, "provider_for", refuse)
            return write(*args, **kwargs)

    monkeypatch.setattr(runs, "write_solution", guarded)


def _bases() -> dict[tuple[str, int], RouteCostBasis]:
    with transaction() as session:
        rows = session.exec(select(RouteCostBasis)).all()
    return {(b.route_id, b.revision): b for b in rows}


@pytest.mark.parametrize("earlier_basis", ["kept", "missing"])
def test_a_plan_run_writes_its_cost_bases_without_asking_the_matrix_provider(
    db, monkeypatch, earlier_basis
):
    """New routes, grown routes, and a grown route that had no basis yet (it gets its
    first revision over all its stops, priced in the write): none asks the provider."""
    with transaction() as session:
        area, acme, bluebird = _two_merchants_on_one_van(session)
    _refuse_matrices_while_writing(monkeypatch)

    first = world.plan()
    assert (first.status, first.error, first.deliveries_planned) == (PlanRunStatus.DONE, None, 6)
    assert {revision for _, revision in _bases()} == {1}

    if earlier_basis == "missing":
        with transaction() as session:
            session.exec(delete(RouteCostBasis))  # type: ignore[call-overload]
    with transaction() as session:
        late = [
            world.delivery(session, area, acme, at=(40.73, -74.08)),
            world.delivery(session, area, bluebird, at=(40.73, -74.07)),
        ]
    second = world.plan()

    assert (second.status, second.error, second.deliveries_inserted) == (
        PlanRunStatus.DONE,
        None,
        2,
    )
    route_id = world.fetch(late[0].id).route_id
    bases = [b for (route, _), b in _bases().items() if route == route_id]
    if earlier_basis == "kept":
        assert sorted(b.revision for b in bases) == [1, 2]
        grown = next(b for b in bases if b.revision == 2)
        assert sorted(i for ids in grown.deliveries.values() for i in ids) == sorted(
            d.id for d in late
        )
    else:
        (basis,) = bases
        assert basis.revision == 1 and len(basis.costs) == 3  # both alone, and together
        assert sum(len(ids) for ids in basis.deliveries.values()) == 8


def test_the_coalition_costs_are_those_a_fresh_matrix_gives(db):
    """Sliced from the plan's matrices (depot, every delivery) or asked afresh over one
    route's own stops: the same entries, so the same costs to the last digit."""
    with transaction() as session:
        _two_merchants_on_one_van(session)
    assert world.plan().deliveries_planned == 6
    shared_cache().clear()  # really afresh
    compared = 0
    with transaction() as session:
        for route in session.exec(select(Route)).all():
            basis = session.exec(
                select(RouteCostBasis).where(
                    RouteCostBasis.route_id == route.id, RouteCostBasis.revision == 1
                )
            ).one()
            stops = repository.route_stop_tenants(session, route.id)
            fresh = world.priced_afresh(session, route)(stops)
            assert basis.costs == {
                RouteCostBasis.coalition_key(coalition): str(cost)
                for coalition, cost in fresh.items()
            }
            compared += len(fresh)
    assert compared >= 3  # at least one route with both merchants on it
