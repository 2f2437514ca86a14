"""What each merchant's deliveries would cost re-planned alone: billing's other figure.

The consolidation report compares what merchants pay on shared routes with what their
deliveries would cost on routes of their own. `PlannerCostModel` re-plans each
merchant's planned deliveries of a day alone, with the whole fleet, the planner's
matrix and solver; the `lastmile` assembler (`services/cli.py`) hands it to billing,
which may not import the planner. It prices with the cost model that priced the
routes: the van's fixed cost, its running cost per km and the driver's wage.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date

from sqlmodel import Session

from services.core import areas
from services.core.models import Delivery, ServiceArea
from services.planner import problem as p
from services.planner import repository
from services.planner.mapping import MILLI
from services.planner.plan_input import problem_for
from services.planner.solver import solve


class PlannerCostModel:
    """Stand-alone costs in minor units from the planner's matrix, vehicles and solver."""

    def __init__(self, time_limit: float = 2.0) -> None:
        self.time_limit = time_limit

    def standalone_costs(self, session: Session, area: ServiceArea, day: date) -> dict[str, int]:
        """Each tenant's deliveries planned on the day, re-planned alone with the whole fleet."""
        by_tenant: defaultdict[str, list[Delivery]] = defaultdict(list)
        for delivery in repository.planned_deliveries(session, area.id, day):
            by_tenant[delivery.tenant_id].append(delivery)
        shifts = repository.fleet(session, area.id)
        midnight = areas.local_midnight(area, day)
        costs = {}
        for tenant_id, own in sorted(by_tenant.items()):
            problem = problem_for(area, midnight, own, shifts)
            solution = solve(problem, p.SolveOptions(time_limit=self.time_limit))
            costs[tenant_id] = round(sum(route.cost for route in solution.routes) / MILLI)
        return costs
