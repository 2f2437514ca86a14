"""The planner's solver: a `Problem` in, a `Solution` out.

Pure computation: no database, no network. `solve` validates the input, leaves out jobs
that no vehicle could ever serve (with the reason), builds a first complete plan in a
fraction of a second and improves it with PyVRP's iterated local search until the
deadline, on every core; large problems are cut into geographic pieces. The plan is
then checked against the product's exact timing model (breaks included) and repaired,
OR-Tools planning on idle vans what cheapest insertion could not place.

The seams are modules: `validation` (checking the input, who can serve what),
`engine` (PyVRP: the model, the first plan, the search), `repair` (exact feasibility),
`model` (the OR-Tools routing model, and reading any plan out into a `Solution`),
`workers` (child processes any process may start) and `decomposition` (`solve`).
"""

from services.planner.solver.decomposition import PIECES_ABOVE, solve
from services.planner.solver.model import NO_CAPACITY, assemble, solve_direct
from services.planner.solver.validation import (
    TOO_LARGE,
    WINDOW_UNREACHABLE,
    Matrices,
    validate,
)

__all__ = [
    "NO_CAPACITY",
    "PIECES_ABOVE",
    "TOO_LARGE",
    "WINDOW_UNREACHABLE",
    "Matrices",
    "assemble",
    "solve",
    "solve_direct",
    "validate",
]
