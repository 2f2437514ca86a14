"""Cheapest insertion against a brute force over every position and break placement."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from services.planner.insertion import Schedule, cheapest_insertion, schedule
from services.planner.problem import Break, Job, Problem, Route, Solution, Vehicle, Visit
from tests.planner.checks import assert_feasible


def _brute_arrival(duration, vehicle: Vehicle, route: list[Job]) -> tuple[int, int] | None:
    """(departure, earliest return) trying every assignment of breaks to gaps, to the
    time before leaving (gap -1) and to the time after coming back (gap n + 1)."""
    if any(sum(j.demand[d] for j in route) > cap for d, cap in enumerate(vehicle.capacity)):
        return None
    rules = sorted(vehicle.breaks, key=lambda b: b.window)
    departure = _brute_departure(duration, vehicle, route, rules)
    best = None
    for gaps in itertools.combinations_with_replacement(range(-1, len(route) + 2), len(rules)):
        pending = list(zip(gaps, rules, strict=True))
        free = vehicle.shift[0]
        while pending and pending[0][0] == -1:
            rule = pending.pop(0)[1]
            begin = max(free, rule.window[0])
            if begin > rule.window[1] or begin + rule.duration > departure:
                break
            free = begin + rule.duration
        else:
            arrival = _brute_drive(duration, vehicle, route, departure, pending)
            if arrival is None or arrival > vehicle.shift[1]:
                continue
            if vehicle.max_duration is not None and arrival - departure > vehicle.max_duration:
                continue
            best = arrival if best is None else min(best, arrival)
    return None if best is None else (departure, best)


def _brute_departure(duration, vehicle: Vehicle, route: list[Job], rules) -> int:
    """As late as the first stop allows, unless a break that does not fit before that
    must start earlier."""
    if not route:
        return vehicle.shift[0]
    wanted = max(vehicle.shift[0], route[0].window[0] - duration[vehicle.start][route[0].location])
    free = vehicle.shift[0]
    for rule in rules:
        begin = max(free, rule.window[0])
        if begin > rule.window[1] or begin + rule.duration > wanted:
            return max(vehicle.shift[0], min(wanted, rule.window[1]))
        free = begin + rule.duration
    return wanted


def _brute_drive(duration, vehicle: Vehicle, route: list[Job], departure: int, pending):
    """The return time driving `route` with each pending break in its gap, or None."""
    t, here, arrival = departure, vehicle.start, None
    for gap in range(len(route) + 2):
        target = route[gap] if gap < len(route) else None
        free, rested = t, 0
        while pending and pending[0][0] == gap:
            rule = pending.pop(0)[1]
            begin = max(free, rule.window[0])
            if begin > rule.window[1]:
                return None
            free, rested = begin + rule.duration, rested + rule.duration
        if gap == len(route) + 1:  # breaks after coming back
            return arrival
        place = target.location if target else vehicle.end
        start = max(t + duration[here][place] + rested, free)
        if target is None:
            arrival = start
            t = arrival
            continue
        start = max(start, target.window[0])
        if start > target.window[1]:
            return None
        t, here = start + target.service, target.location
    return arrival


def _brute_cost(distance, duration, vehicle: Vehicle, route: list[Job]) -> int | None:
    timing = _brute_arrival(duration, vehicle, route)
    if timing is None:
        return None
    places = [vehicle.start, *(j.location for j in route), vehicle.end]
    metres = sum(distance[a][b] for a, b in itertools.pairwise(places))
    departure, arrival = timing
    return (
        vehicle.fixed_cost
        + vehicle.cost_per_distance * metres
        + vehicle.cost_per_time * (arrival - departure)
    )


def _case(seed: int) -> tuple[list[list[int]], list[list[int]], Vehicle, list[Job], Job]:
    rng = random.Random(seed)
    n = rng.randrange(0, 5)
    points = [(rng.randrange(100), rng.randrange(100)) for _ in range(n + 2)]
    distance = [[int(math.hypot(ax - bx, ay - by)) for bx, by in points] for ax, ay in points]
    duration = [[d * rng.choice((1, 2)) for d in row] for row in distance]
    horizon = 1500

    def job(k: int) -> Job:
        open_ = rng.randrange(0, horizon - 100)
        width = rng.choice((60, 200, 600, horizon))
        return Job(
            f"j{k}",
            k + 1,
            (rng.randrange(0, 4), rng.randrange(0, 4)),
            (open_, min(horizon, open_ + width)),
            rng.randrange(0, 30),
        )

    jobs = [job(k) for k in range(n + 1)]
    breaks = tuple(
        Break(window=(a, a + rng.choice((0, 50, 300))), duration=rng.randrange(10, 60))
        for a in sorted(rng.randrange(0, horizon - 400) for _ in range(rng.randrange(0, 3)))
    )
    vehicle = Vehicle(
        id="van",
        start=0,
        end=0,
        capacity=(rng.randrange(4, 14), rng.randrange(4, 14)),
        shift=(0, rng.choice((horizon, horizon + 500))),
        max_duration=rng.choice((None, 600, 1200)),
        fixed_cost=rng.randrange(0, 100),
        cost_per_distance=rng.randrange(1, 5),
        cost_per_time=rng.randrange(0, 3),
        breaks=breaks,
    )
    # Order the existing route by window opening, so that it is often feasible.
    route = sorted(jobs[:n], key=lambda j: j.window)
    return distance, duration, vehicle, route, jobs[n]


def _assert_valid(distance, duration, vehicle: Vehicle, route: list[Job], timed: Schedule) -> None:
    visits = tuple(
        Visit(job.id, start, start, start + job.service)
        for job, start in zip(route, timed.starts, strict=True)
    )
    solved = Route(
        vehicle.id, visits, timed.departure, timed.arrival, timed.distance, timed.cost, timed.breaks
    )
    problem = Problem(distance, duration, route, [vehicle])
    assert_feasible(problem, Solution((solved,), (), timed.distance, timed.cost))


@pytest.mark.parametrize("seed", range(400))
def test_schedule_matches_the_brute_force_and_is_feasible(seed):
    distance, duration, vehicle, route, job = _case(seed)
    full = [*route, job]
    timed = schedule(distance, duration, vehicle, full)
    expected = _brute_cost(distance, duration, vehicle, full)
    assert (timed.cost if timed else None) == expected
    if timed is not None:
        _assert_valid(distance, duration, vehicle, full, timed)


@pytest.mark.parametrize("seed", range(600))
def test_cheapest_insertion_matches_the_brute_force(seed):
    distance, duration, vehicle, route, job = _case(seed)
    base = _brute_cost(distance, duration, vehicle, route)
    options = [
        cost - base
        for k in range(len(route) + 1)
        if base is not None
        and (cost := _brute_cost(distance, duration, vehicle, [*route[:k], job, *route[k:]]))
        is not None
    ]
    found = cheapest_insertion(distance, duration, vehicle, route, job)
    assert (found.added_cost if found else None) == (min(options) if options else None)
    if found is not None:
        new_route = [*route[: found.position], job, *route[found.position :]]
        assert [j.id for j in new_route if j is not job] == [j.id for j in route]
        _assert_valid(distance, duration, vehicle, new_route, found.schedule)


# A line: depot at 0, stops at 10, 20, 30; travel time equals distance.
LINE = [[abs(a - b) for b in (0, 10, 20, 30)] for a in (0, 10, 20, 30)]


def _van(**kw) -> Vehicle:
    return Vehicle(id="van", start=0, end=0, capacity=(10,), shift=(0, 1000), **kw)


def test_a_stop_on_the_way_goes_between_its_neighbours():
    route = [Job("a", 1, (1,), (0, 1000)), Job("c", 3, (1,), (0, 1000))]
    found = cheapest_insertion(LINE, LINE, _van(), route, Job("b", 2, (1,), (0, 1000)))
    assert found is not None and found.position == 1 and found.added_cost == 0


def test_a_window_forces_a_costlier_position():
    route = [Job("a", 1, (1,), (0, 1000)), Job("c", 3, (1,), (0, 40))]
    # Serving b (at 20) only after 100 pushes it behind c, whose window closes at 40.
    found = cheapest_insertion(LINE, LINE, _van(), route, Job("b", 2, (1,), (100, 200)))
    assert found is not None and found.position == 2


def test_no_room_left_means_no_insertion():
    route = [Job("a", 1, (6,), (0, 1000))]
    assert cheapest_insertion(LINE, LINE, _van(), route, Job("b", 2, (5,), (0, 1000))) is None


def test_the_break_is_kept_inside_its_window():
    van = _van(breaks=(Break(window=(15, 25), duration=30),))
    route = [Job("a", 1, (1,), (0, 1000)), Job("c", 3, (1,), (0, 1000))]
    found = cheapest_insertion(LINE, LINE, van, route, Job("b", 2, (1,), (0, 1000)))
    assert found is not None
    ((begin, end),) = found.schedule.breaks
    assert 15 <= begin <= 25 and end - begin == 30


def test_the_shift_end_bounds_the_insertion():
    route = [Job("a", 1, (1,), (0, 1000))]
    van = Vehicle(id="van", start=0, end=0, capacity=(10,), shift=(0, 50))
    assert cheapest_insertion(LINE, LINE, van, route, Job("c", 3, (1,), (0, 1000))) is None
