"""Cheapest feasible insertion of a late job into an existing route, keeping its order.

A route an earlier wave published has been promised to drivers and recipients: its
stops keep their order and only the new job's position is chosen. Pure functions over
the solver's own dataclasses (`problem.Job`, `problem.Vehicle`) and matrices.

Timing model, shared by `schedule` and `cheapest_insertion` so added costs compare
like with like: the van leaves the depot as late as reaching its first stop when that
stop's window opens allows (never before the shift starts), then serves every stop as
early as it can. Breaks are taken in window order between stops (never during a
service), each starting inside its window; waiting for a window counts as resting, and
so does time off the route (before the van leaves, after it is back).
Which gap takes which break is chosen by dynamic programming over "breaks taken so
far": being ready earlier never hurts, because waiting is always allowed. Costs follow
the solver: fixed + cost_per_distance x distance + cost_per_time x (return - departure).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

from services.planner.problem import Break, Job, Matrix, Vehicle

# Per number of breaks taken so far: the earliest time the van can leave (None: never).
Ready = tuple[int | None, ...]
# How a state was reached: (breaks taken before this leg, breaks taken on it, service start).
Step = tuple[int, tuple[tuple[int, int], ...], int]


@dataclass(frozen=True)
class Schedule:
    """A feasible timing of a route under the module's timing model."""

    starts: tuple[int, ...]  # service start of each job, in route order
    breaks: tuple[tuple[int, int], ...]  # (start, end) of each break
    departure: int
    arrival: int
    distance: int
    cost: int


@dataclass(frozen=True)
class Insertion:
    position: int  # the job goes before route[position] (len(route): last)
    added_cost: int
    schedule: Schedule  # of the route with the job inserted


def schedule(
    distance: Matrix,
    duration: Matrix,
    vehicle: Vehicle,
    route: Sequence[Job],
    departure: int | None = None,
) -> Schedule | None:
    """Time `route` as driven by `vehicle`, or None if it breaks any constraint.

    `departure` overrides the model's own choice of when to leave (within the shift):
    a search that planned the route to leave later, so that it stays short enough,
    hands its departure in.
    """
    if not _fits(vehicle, route):
        return None
    rules = _rules(vehicle)
    if departure is None:
        departure = _departure(duration, vehicle, route[0] if route else None)
    elif not vehicle.shift[0] <= departure <= vehicle.shift[1]:
        return None
    before = _rest_before(vehicle, rules, departure)
    ready = _leaving(departure, len(before), rules)
    steps: list[tuple[Step | None, ...]] = []
    here = vehicle.start
    for job in route:
        ready, step = _leg(ready, int(duration[here][job.location]), job.window, job.service, rules)
        steps.append(step)
        here = job.location
    ready, step = _leg(ready, int(duration[here][vehicle.end]), vehicle.shift, 0, rules)
    steps.append(step)
    back = _back(ready, rules)
    if back is None or not _short_enough(vehicle, departure, back[0]):
        return None
    arrival, count, after = back
    starts: list[int] = []
    taken: list[tuple[int, int]] = list(after)
    for leg in reversed(steps):
        came = leg[count]
        assert came is not None  # every state on a reachable path has a step
        count, rested, start = came
        starts.append(start)
        taken[:0] = rested
    taken[:0] = before
    metres = _distance(distance, vehicle, route)
    return Schedule(
        starts=tuple(reversed(starts[1:])),  # starts[0] is the return to the depot
        breaks=tuple(taken),
        departure=departure,
        arrival=arrival,
        distance=metres,
        cost=_cost(vehicle, metres, departure, arrival),
    )


def cheapest_insertion(
    distance: Matrix, duration: Matrix, vehicle: Vehicle, route: Sequence[Job], job: Job
) -> Insertion | None:
    """Where `job` joins `route` at the least added cost, keeping the other stops' order;
    None if no position is feasible (or the route itself no longer is).

    Each position reuses the timing of the unchanged stops before it and stops walking
    once the timing after the new job matches the old one: from there on nothing moves.
    """
    if not _fits(vehicle, [*route, job]):
        return None
    base = schedule(distance, duration, vehicle, route)
    if base is None:
        return None
    rules = _rules(vehicle)
    prefix = _prefix_states(duration, vehicle, route, rules)
    best: tuple[int, int] | None = None  # (added cost, position)
    for position in range(len(route) + 1):
        if position == 0:
            departure = _departure(duration, vehicle, job)
            ready = _leaving(departure, len(_rest_before(vehicle, rules, departure)), rules)
            here = vehicle.start
        else:
            departure = base.departure
            ready = prefix[position]
            here = route[position - 1].location
        arrival = _arrival_after_insert(
            duration, vehicle, route, job, position, ready, here, prefix
        )
        if arrival is None:
            continue
        end = base.arrival if isinstance(arrival, _Unchanged) else arrival
        if not _short_enough(vehicle, departure, end):
            continue
        after = route[position].location if position < len(route) else vehicle.end
        metres = (
            base.distance
            + int(distance[here][job.location])
            + int(distance[job.location][after])
            - int(distance[here][after])
        )
        added = _cost(vehicle, metres, departure, end) - base.cost
        if best is None or added < best[0]:
            best = (added, position)
    if best is None:
        return None
    added, position = best
    timed = schedule(distance, duration, vehicle, [*route[:position], job, *route[position:]])
    assert timed is not None and timed.cost - base.cost == added
    return Insertion(position=position, added_cost=added, schedule=timed)


class _Unchanged:
    """Marks a walk that rejoined the old timing, so the old return time stands."""


_UNCHANGED = _Unchanged()


def _arrival_after_insert(
    duration: Matrix,
    vehicle: Vehicle,
    route: Sequence[Job],
    job: Job,
    position: int,
    ready: Ready,
    here: int,
    prefix: list[Ready],
) -> int | _Unchanged | None:
    """Return time with `job` inserted at `position`, given the state just before it."""
    rules = _rules(vehicle)
    ready, _ = _leg(ready, int(duration[here][job.location]), job.window, job.service, rules)
    here = job.location
    for k in range(position, len(route)):
        if all(t is None for t in ready):
            return None
        nxt = route[k]
        ready, _ = _leg(ready, int(duration[here][nxt.location]), nxt.window, nxt.service, rules)
        here = nxt.location
        if ready == prefix[k + 1]:
            return _UNCHANGED
    ready, _ = _leg(ready, int(duration[here][vehicle.end]), vehicle.shift, 0, rules)
    back = _back(ready, rules)
    return None if back is None else back[0]


def _prefix_states(
    duration: Matrix, vehicle: Vehicle, route: Sequence[Job], rules: Sequence[Break]
) -> list[Ready]:
    """The state after each prefix of the route: prefix[k] is after serving route[:k]."""
    departure = _departure(duration, vehicle, route[0] if route else None)
    ready = _leaving(departure, len(_rest_before(vehicle, rules, departure)), rules)
    states = [ready]
    here = vehicle.start
    for job in route:
        ready, _ = _leg(ready, int(duration[here][job.location]), job.window, job.service, rules)
        states.append(ready)
        here = job.location
    return states


def _leg(
    ready: Ready,
    travel: int,
    window: tuple[int, int],
    service: int,
    rules: Sequence[Break],
) -> tuple[Ready, tuple[Step | None, ...]]:
    """Drive to the next place, taking any number of the pending breaks on the way;
    the place must be reached by window[1] and is left `service` after its start."""
    best: list[int | None] = [None] * len(ready)
    steps: list[Step | None] = [None] * len(ready)
    for count, leave in enumerate(ready):
        if leave is None:
            continue
        free = leave  # when the driver is free of breaks
        rested: list[tuple[int, int]] = []
        for taken in range(count, len(ready)):
            if taken > count:
                rule = rules[taken - 1]
                begin = max(free, rule.window[0])
                if begin > rule.window[1]:
                    break
                rested.append((begin, begin + rule.duration))
                free = begin + rule.duration
            resting = sum(end - begin for begin, end in rested)
            start = max(leave + travel + resting, free, window[0])
            if start > window[1]:
                break
            finish = start + service
            current = best[taken]
            if current is None or finish < current:
                best[taken] = finish
                steps[taken] = (count, tuple(rested), start)
    return tuple(best), tuple(steps)


def _departure(duration: Matrix, vehicle: Vehicle, first: Job | None) -> int:
    """Leave as late as reaching the first stop when it opens allows, not before the
    shift; but no later than the next break must start, unless the breaks all fit in
    the time before leaving."""
    if first is None:
        return vehicle.shift[0]
    wanted = first.window[0] - int(duration[vehicle.start][first.location])
    departure = max(vehicle.shift[0], wanted)
    rules = _rules(vehicle)
    taken = len(_rest_before(vehicle, rules, departure))
    if taken < len(rules):
        departure = max(vehicle.shift[0], min(departure, rules[taken].window[1]))
    return departure


def _rest_before(
    vehicle: Vehicle, rules: Sequence[Break], departure: int
) -> tuple[tuple[int, int], ...]:
    """The breaks, in order, that the driver has already had when the van leaves: time
    off the route counts as resting."""
    taken = []
    free = vehicle.shift[0]
    for rule in rules:
        begin = max(free, rule.window[0])
        if begin > rule.window[1] or begin + rule.duration > departure:
            break
        taken.append((begin, begin + rule.duration))
        free = begin + rule.duration
    return tuple(taken)


def _leaving(departure: int, rested: int, rules: Sequence[Break]) -> Ready:
    """The state as the van leaves with `rested` breaks already had."""
    return tuple(departure if count == rested else None for count in range(len(rules) + 1))


def _back(
    ready: Ready, rules: Sequence[Break]
) -> tuple[int, int, tuple[tuple[int, int], ...]] | None:
    """(return time, breaks had on the route, breaks had after it) for the earliest
    return after which the remaining breaks can still start in their windows: time off
    the route counts as resting. None if there is none."""
    best = None
    for count, arrival in enumerate(ready):
        if arrival is None:
            continue
        after = []
        free = arrival
        for rule in rules[count:]:
            begin = max(free, rule.window[0])
            if begin > rule.window[1]:
                break
            after.append((begin, begin + rule.duration))
            free = begin + rule.duration
        else:
            if best is None or arrival < best[0]:
                best = (arrival, count, tuple(after))
    return best


def _rules(vehicle: Vehicle) -> tuple[Break, ...]:
    return tuple(sorted(vehicle.breaks, key=lambda rule: rule.window))


def _fits(vehicle: Vehicle, route: Sequence[Job]) -> bool:
    return all(
        sum(job.demand[d] for job in route) <= capacity
        for d, capacity in enumerate(vehicle.capacity)
    )


def _short_enough(vehicle: Vehicle, departure: int, arrival: int) -> bool:
    return vehicle.max_duration is None or arrival - departure <= vehicle.max_duration


def _distance(distance: Matrix, vehicle: Vehicle, route: Sequence[Job]) -> int:
    places = [vehicle.start, *(job.location for job in route), vehicle.end]
    return sum(int(distance[a][b]) for a, b in pairwise(places))


def _cost(vehicle: Vehicle, metres: int, departure: int, arrival: int) -> int:
    return (
        vehicle.fixed_cost
        + vehicle.cost_per_distance * metres
        + vehicle.cost_per_time * (arrival - departure)
    )
