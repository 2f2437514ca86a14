"""Plan runs: take an area's open deliveries for a day, solve, and write the routes.

The same function serves the scheduled wave (Celery), `lastmile plan` and the API.
`execute` reads the run's input and builds its one matrix (`plan_input`), puts late
bookings into routes an earlier wave published where that is feasible and cheapest
(`late_bookings`), solves what is left on the vans still free (`solver`) and prices the
new routes' cost bases (`cost_basis`), all outside any transaction; then one
transaction writes the result (`write`). Malformed input (`ProblemError`,
`ShiftError`) or a failing matrix provider (`MatrixError`) fails the run with a
message naming the culprit and writes nothing else. See docs/planning.md.
"""

from __future__ import annotations

import math
import time as clock
from collections.abc import Callable
from dataclasses import replace
from datetime import date, datetime

from sqlmodel import Session

from services.core import areas, logs, metrics
from services.core.db import transaction, utcnow
from services.core.errors import UserErrorCode, UserErrors
from services.core.models import PlanRun, PlanRunStatus
from services.planner import problem as p
from services.planner import repository
from services.planner.cost_basis import PlanPrices
from services.planner.late_bookings import insert_late_bookings
from services.planner.mapping import MILLI
from services.planner.plan_input import load_plan_input
from services.planner.solver import solve
from services.planner.write import write_solution

logger = logs.get_logger(__name__)


class PlanError(Exception):
    """The plan run cannot run (it does not exist); nothing was written."""


def request_plan(
    session: Session,
    area_code: str,
    day: date | None,
    trigger: str,
    time_limit: float,
    now: datetime | None = None,
    max_time_limit: float | None = None,
) -> PlanRun:
    """Queue a plan run of an area's day (default: its next delivery day after `now`).

    UserErrors, with nothing written, for an unknown area or a time limit that is not
    positive (or above `max_time_limit`). The scheduled wave, `lastmile plan` and the
    API all ask here.
    """
    area = areas.get_area(session, area_code)
    if area is None:
        raise UserErrors.one(
            ("serviceArea",),
            f"No service area has the code {area_code!r}.",
            UserErrorCode.SERVICE_AREA_NOT_FOUND,
        )
    if not 0 < time_limit <= (max_time_limit or math.inf):
        bound = f" and at most {max_time_limit:g} seconds" if max_time_limit else ""
        raise UserErrors.one(
            ("timeLimitSeconds",),
            f"The time limit must be more than 0{bound}.",
            UserErrorCode.INVALID,
        )
    if day is None:
        day = areas.next_delivery_date(area, now or utcnow())
    run = PlanRun(area_id=area.id, date=day, trigger=trigger, time_limit_seconds=time_limit)
    session.add(run)
    session.flush()
    return run


# The trigger of a run that only inserts new bookings into the day's published routes,
# queued when a booking arrives after they exist (`request_insertion`); what no route
# can take stays BOOKED with NO_ROUTE_FITS for the next wave, which may open new routes.
BOOKING_TRIGGER = "booking"
NO_ROUTE_FITS = "NO_ROUTE_FITS"


def request_insertion(session: Session, area_id: str, day: date) -> PlanRun | None:
    """Queue an insertion-only run of an area's day, or None when the day has no route
    that has not left yet (the next wave plans the bookings then)."""
    if not any(
        route.departure_at > utcnow() for route in repository.routes_of_day(session, area_id, day)
    ):
        return None
    run = PlanRun(area_id=area_id, date=day, trigger=BOOKING_TRIGGER, time_limit_seconds=1.0)
    session.add(run)
    session.flush()
    return run


def find_run(session: Session, run_id: str) -> tuple[PlanRun, str] | None:
    """A plan run and its area's code."""
    return repository.plan_run_with_area(session, run_id)


def recent_runs(session: Session, area_code: str, limit: int) -> list[PlanRun]:
    """An area's most recent plan runs, newest first; none for an unknown area."""
    area = areas.get_area(session, area_code)
    return [] if area is None else repository.recent_plan_runs(session, area.id, limit)


def execute(
    plan_run_id: str,
    on_progress: Callable[[PlanRun], None] | None = None,
    timings: dict[str, float] | None = None,
) -> PlanRun:
    """Solve a queued plan run and write its routes. Never leaves it SOLVING.

    The run's time limit covers all of it: the solver gets what reading the input
    left, less what writing the plan is expected to take. `timings`, if given, gets the
    seconds spent loading, solving and writing.
    """
    timings = {} if timings is None else timings
    began = clock.monotonic()
    try:
        with transaction() as session:
            run = repository.lock_plan_run(session, plan_run_id)
            if run is None:
                raise PlanError(f"No plan run {plan_run_id!r}.")
            if run.status != PlanRunStatus.QUEUED:
                return run
            run.status = PlanRunStatus.SOLVING
            run.started_at = utcnow()
            plan_input = load_plan_input(session, run)
            run.deliveries_considered = len(plan_input.deliveries)
        timings["load"] = clock.monotonic() - began
        if on_progress:
            on_progress(run)
        solving = clock.monotonic()
        insertions = insert_late_bookings(plan_input)
        left = [job for job in plan_input.problem.jobs if job.id not in insertions.inserted]
        budget = run.time_limit_seconds - (solving - began) - _write_seconds(len(left))
        if run.trigger == BOOKING_TRIGGER:
            unfit = tuple(p.Unassigned(job.id, NO_ROUTE_FITS) for job in left)
            solution = p.Solution(routes=(), unassigned=unfit, distance=0, cost=0)
        else:
            solution = _solve(
                replace(plan_input.problem, jobs=left),
                p.SolveOptions(
                    time_limit=max(budget, _MIN_SOLVE_SECONDS),
                    on_progress=_progress_recorder(run.id, run, on_progress),
                ),
            )
        # Priced from the plan input's matrices now, so the write only writes rows.
        prices = PlanPrices(plan_input)
        prices.price_solution(solution)
        timings["solve"] = clock.monotonic() - solving
        writing = clock.monotonic()
        with transaction() as session:
            run = write_solution(session, run.id, plan_input, solution, insertions, prices)
        timings["write"] = clock.monotonic() - writing
    except Exception as error:
        with transaction() as session:
            failed = session.get(PlanRun, plan_run_id)
            if failed is None:
                raise
            failed.status = PlanRunStatus.FAILED
            failed.error = f"{type(error).__name__}: {error}"
            failed.finished_at = utcnow()
            run = failed
    if on_progress:
        on_progress(run)
    _observe(run, clock.monotonic() - began)
    return run


def _observe(run: PlanRun, seconds: float) -> None:
    trigger = run.trigger.split()[0]  # "wave 18:00" is a wave: bounded labels
    metrics.PLAN_RUNS.labels(trigger, run.status.value).inc()
    metrics.PLAN_RUN_DURATION.labels(trigger).observe(seconds)
    if run.status == PlanRunStatus.DONE:
        metrics.PLAN_RUN_COST.labels(run.area_id).set(run.cost_minor)
        metrics.PLAN_RUN_UNASSIGNED.labels(run.area_id).set(run.deliveries_unplanned)
    logger.info(
        "plan run finished",
        plan_run_id=run.id,
        area_id=run.area_id,
        date=run.date.isoformat(),
        trigger=run.trigger,
        status=run.status.value,
        planned=run.deliveries_planned,
        unplanned=run.deliveries_unplanned,
        cost_minor=run.cost_minor,
        seconds=round(seconds, 3),
        error=run.error,
    )


# The solver always gets at least this long, however little of the budget is left: its
# first complete plan takes a fraction of it.
_MIN_SOLVE_SECONDS = 0.5


def _write_seconds(deliveries: int) -> float:
    """What writing a plan of this many deliveries is expected to take (PostgreSQL, on
    the 2-core machine the benchmarks run on: each delivery gets its stop, tracking
    event, usage and outbox event)."""
    return 0.3 + 0.002 * deliveries


def _solve(problem: p.Problem, options: p.SolveOptions) -> p.Solution:
    """Solve, short-cutting the two cases with nothing to search."""
    if not problem.jobs or not problem.vehicles:
        left = tuple(p.Unassigned(job.id, "NO_VEHICLE_AVAILABLE") for job in problem.jobs)
        return p.Solution(routes=(), unassigned=left, distance=0, cost=0)
    return solve(problem, options)


def _progress_recorder(
    run_id: str, run: PlanRun, on_progress: Callable[[PlanRun], None] | None
) -> p.ProgressCallback:
    """Store the best cost so far, at most once a second, so the API can show it."""
    last = [0.0]

    def record(cost: int) -> None:
        now = clock.monotonic()
        if now - last[0] < 1.0:
            return
        last[0] = now
        with transaction() as session:
            row = session.get(PlanRun, run_id)
            if row is not None:
                row.best_cost_minor = round(cost / MILLI)
                run.best_cost_minor = row.best_cost_minor
        if on_progress:
            on_progress(run)

    return record
