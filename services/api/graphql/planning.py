"""GraphQL for the operator's planning: start a plan run and watch its progress."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

import strawberry

from services.api.graphql.context import context_of
from services.api.graphql.enums import describe_values
from services.api.graphql.errors import UserError
from services.api.graphql.permissions import Operator
from services.core.db import on_commit
from services.core.errors import UserErrors
from services.core.models import PlanRun as PlanRunRow
from services.core.models import PlanRunStatus as DomainPlanRunStatus
from services.planner import runs, tasks

PlanRunStatus = describe_values(
    strawberry.enum(
        DomainPlanRunStatus,
        name="PlanRunStatus",
        description="Where a plan run is. DONE and FAILED are final.",
    ),
    {
        "QUEUED": "Waiting for a worker to pick it up.",
        "SOLVING": "A worker is solving it; `bestCostMinor` shows progress.",
        "DONE": "Solved: its routes are written and the deliveries it fitted are PLANNED.",
        "FAILED": "It stopped with an error (see `error`); no routes were written.",
    },
)


MAX_TIME_LIMIT_SECONDS = 600  # an operator's request waits on a worker; waves use settings


@strawberry.type(description="One solve of an area's open deliveries for a day, and its outcome.")
class PlanRun:
    id: strawberry.ID = strawberry.field(description="The plan run's id.")
    service_area: str = strawberry.field(description='The service area\'s code, e.g. "demo".')
    date: date = strawberry.field(description="The delivery day planned, in the area's time zone.")
    status: PlanRunStatus = strawberry.field(description="Where the run is.")  # type: ignore[valid-type]
    trigger: str = strawberry.field(
        description='What started it: "wave HH:MM" (the area\'s scheduled cut-off), "cli" or "api".'
    )
    requested_at: datetime = strawberry.field(description="When it was asked for, in UTC.")
    started_at: datetime | None = strawberry.field(
        description="When solving began, in UTC; null while QUEUED."
    )
    finished_at: datetime | None = strawberry.field(
        description="When it ended (DONE or FAILED), in UTC; null until then."
    )
    time_limit_seconds: float = strawberry.field(
        description="The solver's time budget, in seconds."
    )
    deliveries_considered: int = strawberry.field(
        description="Open deliveries of the area's day it tried to plan; 0 while QUEUED."
    )
    deliveries_planned: int = strawberry.field(
        description="Deliveries it put on a route; 0 until DONE."
    )
    deliveries_unplanned: int = strawberry.field(
        description="Deliveries left BOOKED, each with its `unplannedReason`, for the next "
        "run; 0 until DONE."
    )
    routes: int = strawberry.field(description="Routes written; 0 until DONE.")
    distance_km: float = strawberry.field(
        description="Total driving distance of its routes, in kilometres; 0 until DONE."
    )
    cost_minor: int = strawberry.field(
        description="Total cost of its routes (fixed cost, distance and driver time), in "
        "minor units of the area's currency (e.g. cents); 0 until DONE."
    )
    best_cost_minor: int | None = strawberry.field(
        description="Best cost found so far while SOLVING (progress), in the same units; "
        "equals `costMinor` once DONE; null before the solver reports one."
    )
    error: str | None = strawberry.field(description="Why it FAILED; null otherwise.")

    @classmethod
    def from_row(cls, row: PlanRunRow, area_code: str) -> PlanRun:
        return cls(
            id=strawberry.ID(row.id),
            service_area=area_code,
            date=row.date,
            status=row.status,
            trigger=row.trigger,
            requested_at=row.requested_at,
            started_at=row.started_at,
            finished_at=row.finished_at,
            time_limit_seconds=row.time_limit_seconds,
            deliveries_considered=row.deliveries_considered,
            deliveries_planned=row.deliveries_planned,
            deliveries_unplanned=row.deliveries_unplanned,
            routes=row.routes,
            distance_km=row.distance_m / 1000,
            cost_minor=row.cost_minor,
            best_cost_minor=row.best_cost_minor,
            error=row.error,
        )


@strawberry.input(description="Plan an area's day now, in the background.")
class PlanAreaInput:
    service_area: str = strawberry.field(description='The service area\'s code, e.g. "demo".')
    date: date | None = strawberry.field(
        default=None, description="Delivery day (default: tomorrow in the area's time zone)."
    )
    time_limit_seconds: float = strawberry.field(
        default=10.0, description="The solver's time budget, in seconds: more than 0, at most 600."
    )


@strawberry.type(description="The result of asking for a plan run.")
class PlanAreaPayload:
    plan_run: PlanRun | None = strawberry.field(
        description="The queued run; poll `planRun(id)` for progress. Null when rejected."
    )
    user_errors: list[UserError] = strawberry.field(
        description="Why nothing was queued; empty on success."
    )


@strawberry.type
class PlanningQueries:
    @strawberry.field(permission_classes=[Operator], description="One plan run, with its progress.")
    def plan_run(
        self,
        info: strawberry.Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="The plan run's id.")],
    ) -> PlanRun | None:
        found = runs.find_run(context_of(info).session, str(id))
        return PlanRun.from_row(*found) if found else None

    @strawberry.field(
        permission_classes=[Operator], description="An area's most recent plan runs, newest first."
    )
    def plan_runs(
        self,
        info: strawberry.Info,
        service_area: Annotated[
            str,
            strawberry.argument(
                description="The service area's code; an unknown code gives an empty list."
            ),
        ],
        first: Annotated[
            int, strawberry.argument(description="How many runs, 1 to 100 (clamped).")
        ] = 20,
    ) -> list[PlanRun]:
        rows = runs.recent_runs(context_of(info).session, service_area, max(1, min(first, 100)))
        return [PlanRun.from_row(row, service_area) for row in rows]


@strawberry.type
class PlanningMutations:
    @strawberry.mutation(
        permission_classes=[Operator],
        description="Queue a plan run for an area's day; a worker solves it and reports progress.",
    )
    def plan_area(
        self,
        info: strawberry.Info,
        input: Annotated[
            PlanAreaInput, strawberry.argument(description="The area, day and time budget.")
        ],
    ) -> PlanAreaPayload:
        ctx = context_of(info)
        try:
            run = runs.request_plan(
                ctx.session,
                input.service_area,
                input.date,
                "api",
                input.time_limit_seconds,
                ctx.now,
                max_time_limit=MAX_TIME_LIMIT_SECONDS,
            )
        except UserErrors as rejected:
            return PlanAreaPayload(
                plan_run=None, user_errors=[UserError.from_domain(e) for e in rejected.errors]
            )
        run_id = run.id
        on_commit(ctx.session, lambda: tasks.execute_plan_run.delay(run_id))
        return PlanAreaPayload(plan_run=PlanRun.from_row(run, input.service_area), user_errors=[])
