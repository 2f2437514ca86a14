"""The solver on small generated problems: every constraint of the contract holds."""

from __future__ import annotations

import math
import multiprocessing
import pickle
import random
import time
from pathlib import Path

import pytest

from services.planner.insertion import schedule
from services.planner.instances import customer_routes, read_instance
from services.planner.problem import (
    Break,
    Job,
    Problem,
    ProblemError,
    SolveOptions,
    Vehicle,
)
from services.planner.solver import (
    NO_CAPACITY,
    TOO_LARGE,
    WINDOW_UNREACHABLE,
    assemble,
    decomposition,
    engine,
    model,
    repair,
    solve,
    validate,
)
from services.planner.solver.validation import feasible_vehicles
from tests.planner.checks import assert_feasible, grid_problem, van

QUICK = SolveOptions(time_limit=1.0)
SOLOMON = Path(__file__).resolve().parents[3] / "shared" / "benchmarks" / "vrptw" / "solomon"


def served(solution) -> set[str]:
    return {v.job_id for r in solution.routes for v in r.visits}


def test_serves_everything_within_windows_and_capacity() -> None:
    problem = grid_problem(
        40, [van(f"v{k}", (12,)) for k in range(6)], window=(0, 4000), window_width=600
    )
    solution = solve(problem, QUICK)
    assert_feasible(problem, solution)
    assert not solution.unassigned
    assert len(solution.routes) >= 4  # 40 parcels, 12 per van


def test_multi_dimensional_capacity_binds_on_each_dimension() -> None:
    vehicles = [van(f"v{k}", (100, 10, 50)) for k in range(8)]
    problem = grid_problem(30, vehicles, demand=(3, 1, 5))
    solution = solve(problem, QUICK)
    assert_feasible(problem, solution)
    assert not solution.unassigned
    assert all(len(r.visits) <= 10 for r in solution.routes)  # 10 parcels, 50 / 5 volume


def test_no_capacity_dimensions() -> None:
    problem = grid_problem(10, [van("a", ())], demand=())
    solution = solve(problem, QUICK)
    assert_feasible(problem, solution)
    assert len(solution.routes) == 1 and not solution.unassigned


def test_heterogeneous_vehicles_big_job_goes_to_big_van_and_cheap_van_preferred() -> None:
    base = grid_problem(6, [], seed=3)
    big = Job("big", 1, (80,), (0, 10_000), 10)
    jobs = [big, *base.jobs[1:]]
    vehicles = [
        van("small", (20,)),
        van("large", (100,), cost_per_distance=5, fixed_cost=50_000),
    ]
    problem = Problem(base.distance, base.duration, jobs, vehicles)
    solution = solve(problem, QUICK)
    assert_feasible(problem, solution)
    assert not solution.unassigned
    by_vehicle = {r.vehicle_id: {v.job_id for v in r.visits} for r in solution.routes}
    assert by_vehicle["large"] == {"big"}  # the expensive van carries only what it must


def test_separate_start_and_end_depots() -> None:
    base = grid_problem(12, [], extra_points=1, seed=5)
    vehicles = [Vehicle("a", start=0, end=1, capacity=(100,), shift=(0, 20_000))]
    problem = Problem(base.distance, base.duration, base.jobs, vehicles)
    solution = solve(problem, QUICK)
    assert_feasible(problem, solution)
    assert not solution.unassigned


def test_shift_limits_and_late_departure() -> None:
    vehicles = [van(f"v{k}", shift=(1000, 3500)) for k in range(10)]
    problem = grid_problem(20, vehicles, window=(1500, 3000), window_width=400, seed=7)
    solution = solve(problem, QUICK)
    assert_feasible(problem, solution)
    assert not solution.unassigned
    for route in solution.routes:  # leaves no earlier than needed to make the first window
        first = route.visits[0]
        assert first.arrival == first.start or route.departure == 1000


def test_max_duration_splits_routes() -> None:
    vehicles = [van(f"v{k}", max_duration=2500) for k in range(10)]
    problem = grid_problem(25, vehicles, seed=11)
    solution = solve(problem, QUICK)
    assert_feasible(problem, solution)
    assert not solution.unassigned
    assert len(solution.routes) >= 2


def test_breaks_are_taken_inside_their_window_and_not_during_service() -> None:
    lunch = Break(window=(2000, 2600), duration=300)
    vehicles = [van(f"v{k}", shift=(0, 6000), breaks=(lunch,)) for k in range(3)]
    problem = grid_problem(24, vehicles, window=(0, 5000), service=60, seed=13)
    solution = solve(problem, QUICK)
    assert_feasible(problem, solution)
    assert not solution.unassigned
    for route in solution.routes:
        assert len(route.breaks) == 1


def test_drop_reasons_in_order() -> None:
    base = grid_problem(5, [], seed=17)
    jobs = [
        Job("heavy", 1, (500,), (0, 10_000)),  # exceeds every van
        Job("late", 2, (1,), (0, 1)),  # cannot be reached in time from the depot
        Job("a", 3, (8,), (0, 10_000)),
        Job("b", 4, (8,), (0, 10_000)),
        Job("c", 5, (1,), (0, 10_000)),
    ]
    vehicles = [van("only", (10,))]
    problem = Problem(base.distance, base.duration, jobs, vehicles, drop_penalty=10**7)
    solution = solve(problem, QUICK)
    assert_feasible(problem, solution)
    reasons = {u.job_id: u.reason for u in solution.unassigned}
    assert reasons.pop("heavy") == TOO_LARGE
    assert reasons.pop("late") == WINDOW_UNREACHABLE
    assert list(reasons.values()) == [NO_CAPACITY]  # a or b: the van holds only one
    assert set(reasons) < {"a", "b"}
    assert "c" in served(solution)


def test_mandatory_but_infeasible_returns_best_with_unassigned() -> None:
    vehicles = [van("only", (5,))]
    problem = grid_problem(10, vehicles, drop_penalty=None, seed=19)
    solution = solve(problem, QUICK)
    assert_feasible(problem, solution)
    assert len(served(solution)) == 5
    assert {u.reason for u in solution.unassigned} == {NO_CAPACITY}


def test_time_cost_and_fixed_cost_are_priced() -> None:
    vehicles = [van("a", fixed_cost=1000, cost_per_distance=3, cost_per_time=2)]
    problem = grid_problem(8, vehicles, seed=23)
    solution = solve(problem, QUICK)
    assert_feasible(problem, solution)
    (route,) = solution.routes
    assert route.cost == 1000 + 3 * route.distance + 2 * (route.arrival - route.departure)


def test_progress_is_reported() -> None:
    costs: list[int] = []
    problem = grid_problem(20, [van(f"v{k}", (8,)) for k in range(4)])
    solution = solve(problem, SolveOptions(time_limit=1.0, on_progress=costs.append))
    assert costs and costs[-1] == min(costs)
    assert solution.cost <= costs[0]


def test_problem_and_solution_pickle() -> None:
    problem = grid_problem(5, [van("a")])
    solution = solve(problem, QUICK)
    assert pickle.loads(pickle.dumps(problem)) == problem
    assert pickle.loads(pickle.dumps(solution)) == solution


@pytest.mark.parametrize(
    ("change", "culprit"),
    [
        (
            lambda p: Problem(p.distance, p.duration, [Job("neg", 1, (-1,), (0, 10))], p.vehicles),
            "neg",
        ),
        (
            lambda p: Problem(
                p.distance, p.duration, [Job("backwards", 1, (1,), (10, 5))], p.vehicles
            ),
            "backwards",
        ),
        (
            lambda p: Problem(p.distance, p.duration, [Job("dims", 1, (1, 2), (0, 5))], p.vehicles),
            "dims",
        ),
        (lambda p: Problem(p.distance, p.duration, p.jobs, []), "no vehicles"),
        (
            lambda p: Problem([row[:-1] for row in p.distance], p.duration, p.jobs, p.vehicles),
            "distance",
        ),
        (lambda p: Problem(p.distance, p.duration[:-1], p.jobs, p.vehicles), "duration"),
        (
            lambda p: Problem(
                [[-1, *list(row[1:])] for row in p.distance], p.duration, p.jobs, p.vehicles
            ),
            "negative",
        ),
        (
            lambda p: Problem(
                p.distance, p.duration, p.jobs, [Vehicle("bad-van", 0, 0, (1,), (10, 0))]
            ),
            "bad-van",
        ),
    ],
)
def test_bad_input_is_rejected_with_the_culprit_named(change, culprit: str) -> None:
    problem = change(grid_problem(3, [van("a")]))
    with pytest.raises(ProblemError, match=culprit):
        solve(problem, QUICK)


def test_no_jobs() -> None:
    problem = grid_problem(0, [van("a")])
    solution = solve(problem, QUICK)
    assert solution.routes == () and solution.unassigned == () and solution.cost == 0


@pytest.mark.skipif(not SOLOMON.is_dir(), reason="benchmark data not present")
def test_real_solomon_instance_is_feasible() -> None:
    """R101: tight windows; checked here against the file's own numbers, not the solver's."""
    instance = read_instance(SOLOMON / "R101.vrp")
    solution = solve(instance.problem, SolveOptions(time_limit=3.0))
    xy, demand, ready, due, service = _read_vrp(SOLOMON / "R101.vrp")
    routes = customer_routes(solution)
    assert sorted(c for r in routes for c in r) == list(range(1, len(xy)))
    assert len(routes) <= 25
    total = 0.0
    for route in routes:
        assert sum(demand[c] for c in route) <= 200
        t, prev = float(ready[0]), 0
        for c in route:
            d = _dist(xy, prev, c)
            total += d
            t = max(t + d, ready[c])
            assert t <= due[c] + 1e-6
            t += service
            prev = c
        total += _dist(xy, prev, 0)
        assert t + _dist(xy, prev, 0) <= due[0] + 1e-6
    assert total == pytest.approx(solution.distance / 10, abs=0.05)
    assert total < 1637.7 * 1.1  # within 10% of the best known


def _dist(xy: list[tuple[float, float]], a: int, b: int) -> float:
    return math.floor(10 * math.hypot(xy[a][0] - xy[b][0], xy[a][1] - xy[b][1]) + 1e-9) / 10


def _read_vrp(path: Path):
    """Just enough of VRPLIB to check a plan: coordinates, demand, windows, service."""
    section = None
    xy, demand, ready, due = [], [], [], []
    service = 0
    for line in path.read_text().splitlines():
        parts = line.split()
        if not parts:
            continue
        if parts[0].endswith("_SECTION"):
            section = parts[0]
        elif parts[0] == "SERVICE_TIME":
            service = int(parts[-1])
        elif section == "NODE_COORD_SECTION" and len(parts) == 3:
            xy.append((float(parts[1]), float(parts[2])))
        elif section == "DEMAND_SECTION" and len(parts) == 2:
            demand.append(int(parts[1]))
        elif section == "TIME_WINDOW_SECTION" and len(parts) == 3:
            ready.append(int(parts[1]))
            due.append(int(parts[2]))
    return xy, demand, ready, due, service


def test_large_problems_are_solved_in_pieces_on_other_cores(monkeypatch) -> None:
    """Above PIECES_ABOVE jobs the problem is cut into geographic pieces searched in
    child processes; the stitched plan is complete and feasible, breaks included."""
    monkeypatch.setattr(decomposition, "PIECES_ABOVE", 100)
    monkeypatch.setattr(decomposition, "PIECE_SIZE", 80)
    vehicles = [
        van(f"v{k}", (30,), shift=(0, 40_000), breaks=(Break((15_000, 20_000), 600),))
        for k in range(12)
    ]
    problem = grid_problem(
        240, vehicles, size=10_000, window=(0, 36_000), window_width=9_000, seed=29,
        drop_penalty=10**9,
    )  # fmt: skip
    solution = solve(problem, SolveOptions(time_limit=4.0, workers=2))
    assert_feasible(problem, solution)
    assert not solution.unassigned


def _solve_in_daemon(problem: Problem, answer) -> None:
    answer.put(len(solve(problem, SolveOptions(time_limit=3.0, workers=2)).unassigned))


def test_a_daemonic_process_can_use_every_core() -> None:
    """A Celery prefork worker is daemonic; `multiprocessing` refuses it children, the
    solver's plain child processes do not."""
    problem = grid_problem(60, [van(f"v{k}", (20,)) for k in range(4)], drop_penalty=10**9)
    context = multiprocessing.get_context("fork")
    answer = context.Queue()
    daemon = context.Process(target=_solve_in_daemon, args=(problem, answer), daemon=True)
    daemon.start()
    assert answer.get(timeout=60) == 0
    daemon.join()


def test_a_short_budget_still_gives_a_complete_plan() -> None:
    """The first plan is built in a fraction of a second: a tenth of a second for 400
    jobs is a worse plan, never an empty one."""
    problem = grid_problem(
        400, [van(f"v{k}", (40,), shift=(0, 40_000)) for k in range(14)], size=5_000,
        window=(0, 30_000), window_width=6_000, drop_penalty=10**9,
    )  # fmt: skip
    solution = solve(problem, SolveOptions(time_limit=0.5, workers=1))
    assert_feasible(problem, solution)
    assert not solution.unassigned


def test_a_job_only_the_break_rules_out_is_window_unreachable() -> None:
    """Reachable alone without a break, but the van must leave before its break ends
    and the window closes before the break could be over: not a capacity problem."""
    base = grid_problem(2, [], seed=31)
    lunch = Break(window=(0, 0), duration=5_000)
    jobs = [
        Job("after-lunch-too-late", 1, (1,), (0, 3_000)),
        Job("easy", 2, (1,), (0, 20_000)),
    ]
    problem = Problem(
        base.distance, base.duration, jobs, [van("v", shift=(0, 20_000), breaks=(lunch,))],
        drop_penalty=10**7,
    )  # fmt: skip
    solution = solve(problem, QUICK)
    assert_feasible(problem, solution)
    assert {u.job_id: u.reason for u in solution.unassigned} == {
        "after-lunch-too-late": WINDOW_UNREACHABLE
    }


def test_no_capacity_means_the_fleet_is_full() -> None:
    """Every job fits a van alone; with room for 30 of 40 the other 10 are NO_CAPACITY,
    and with room for all none is left out."""
    full = grid_problem(40, [van(f"v{k}", (10,)) for k in range(3)], drop_penalty=10**9)
    solution = solve(full, QUICK)
    assert_feasible(full, solution)
    assert [u.reason for u in solution.unassigned] == [NO_CAPACITY] * 10
    roomy = grid_problem(40, [van(f"v{k}", (10,)) for k in range(4)], drop_penalty=10**9)
    assert not solve(roomy, QUICK).unassigned


def test_stops_the_search_could_not_keep_are_placed_again() -> None:
    """A route that breaks the exact timing model sheds stops until it holds, and they
    go to another van (here the idle one)."""
    problem = grid_problem(12, [van("a", shift=(0, 3_000)), van("b", shift=(0, 3_000))], seed=37)
    m = validate(problem)
    everything = list(range(12))
    too_long = model.RawRoute(0, everything, [0] * 12, 0, 0, [])
    routes = repair.make_feasible(problem, m, [too_long], everything)
    result = assemble(problem, m, routes, [])
    assert_feasible(problem, result)
    assert len(result.routes) == 2 and not result.unassigned


def _strategies_tried(problem: Problem, time_limit: float, monkeypatch) -> list[int]:
    tried: list[int] = []
    search = model.Model.search

    def recording(self, deadline, strategy, on_progress):
        tried.append(strategy)
        return search(self, deadline, strategy, on_progress)

    monkeypatch.setattr(model.Model, "search", recording)
    deadline = time.monotonic() + time_limit
    solution = model.solve_direct(problem, validate(problem), deadline, SolveOptions())
    assert_feasible(problem, solution)
    return tried


LONG_ROUTES = grid_problem(40, [van(f"v{k}", (100,)) for k in range(2)], seed=5)


def test_few_long_routes_get_several_starts(monkeypatch) -> None:
    """40 jobs on two big vans: long routes, so each first-solution strategy gets a start
    when there is time for them (here 0.01 s per job and start)."""
    monkeypatch.setattr(model, "_START_SECONDS_PER_JOB", 0.01)
    tried = _strategies_tried(LONG_ROUTES, 1.5, monkeypatch)
    assert tried == list(model.LONG_ROUTE_STARTS)


def test_few_long_routes_without_time_for_several_starts_start_from_savings(
    monkeypatch,
) -> None:
    assert _strategies_tried(LONG_ROUTES, 1.5, monkeypatch) == [model._FS.SAVINGS]


def test_short_routes_get_one_start(monkeypatch) -> None:
    """Tight capacity: routes of a few jobs, one start with cheapest insertion."""
    problem = grid_problem(40, [van(f"v{k}", (4,)) for k in range(15)], seed=5)
    assert _strategies_tried(problem, 1.5, monkeypatch) == [model.FIRST_SOLUTION]


@pytest.mark.parametrize("seed", range(30))
def test_who_can_serve_a_job_alone_agrees_with_the_timing_model(seed) -> None:
    """The vectorised reachability check (breaks, shifts, route length) says yes exactly
    when the timing model finds a schedule for the lone visit."""
    rng = random.Random(seed)
    vehicles = [
        van(
            f"v{k}",
            shift=(start := rng.randrange(0, 3_000), start + rng.randrange(2_000, 8_000)),
            max_duration=rng.choice((None, 1_500, 3_000)),
            breaks=rng.choice(((), (Break((start + 800, start + rng.choice((800, 1_200))), 400),))),
        )
        for k in range(6)
    ]
    problem = grid_problem(
        40, vehicles, window=(0, 12_000), window_width=rng.choice((300, 3_000)), seed=seed
    )
    m = validate(problem)
    expected = [
        [schedule(m.distance, m.duration, v, [j]) is not None for v in problem.vehicles]
        for j in problem.jobs
    ]
    assert feasible_vehicles(problem, m).tolist() == expected


def test_parts_of_a_plan_are_searched_without_making_it_worse() -> None:
    """Searching groups of neighbouring routes keeps every job served once and every
    constraint, and never raises the plan's cost."""
    problem = grid_problem(
        300, [van(f"v{k}", (30,)) for k in range(16)], window_width=4_000, seed=3
    )
    m = validate(problem)
    jobs = list(range(300))
    data = engine.to_data(problem, m, jobs, optional=False)
    start = engine.search(data, time.monotonic() + 0.5, 0, engine.construct(data))
    assert start.is_feasible()
    routes = decomposition._improve_in_parts(
        problem, m, engine.to_routes(data, start), time.monotonic() + 2.0, seed=1
    )
    after = engine.to_solution(data, routes)
    assert after.is_feasible() and after.num_clients() == 300
    assert engine.objective(after) <= engine.objective(start)
    result = assemble(problem, m, repair.make_feasible(problem, m, routes, jobs), [])
    assert_feasible(problem, result)
    assert not result.unassigned
