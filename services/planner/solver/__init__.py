"""The planner's solver: a `Problem` in, a `Solution` out, with OR-Tools routing.

Pure computation: no database, no network. `solve` validates the input, leaves out jobs
that no vehicle could ever serve, builds an OR-Tools routing model over the rest and
searches for the cheapest plan inside the wall-clock budget (`solve_direct`: iterated
local search, with several starts when the plan has few long routes). Problems too large
for one model are split into geographic pieces solved in parallel worker processes, and
the plan then improved by re-solving groups of neighbouring routes (`solve_decomposed`).

The seams are modules: `validation` (checking the input, who can serve what), `model`
(the OR-Tools model, its search and reading plans out of it) and `decomposition`
(`solve` itself, and the pieces and route groups of large problems).
"""

from services.planner.solver.decomposition import DECOMPOSE_ABOVE, solve, solve_decomposed
from services.planner.solver.model import NO_CAPACITY, assemble, solve_direct
from services.planner.solver.validation import (
    TOO_LARGE,
    WINDOW_UNREACHABLE,
    Matrices,
    validate,
)

__all__ = [
    "DECOMPOSE_ABOVE",
    "NO_CAPACITY",
    "TOO_LARGE",
    "WINDOW_UNREACHABLE",
    "Matrices",
    "assemble",
    "solve",
    "solve_decomposed",
    "solve_direct",
    "validate",
]
