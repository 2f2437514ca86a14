"""Sharing a route's cost among the merchants whose parcels ride it. Pure.

Amounts are integer minor units, and every split sums to the route's cost exactly:
nobody pays for a rounding cent that went nowhere, and no cent is left unbilled.
Splits are made with exact rationals and then rounded by the largest-remainder
method, so each merchant's share is its exact entitlement rounded down or up, never
further off than one minor unit.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from decimal import Context, Decimal
from fractions import Fraction

MAX_SHAPLEY_PLAYERS = 8
"""Exact Shapley values price all 2**n coalitions; 8 merchants is 255 cost look-ups."""

_DISPLAY = Context(prec=28)


def allocate_proportional(total_minor: int, weights: Mapping[str, Decimal]) -> dict[str, int]:
    """Split `total_minor` in proportion to each merchant's weight.

    Weights are any non-negative basis (parcels, kilograms, stand-alone cost); only
    their ratios matter. Leftover minor units go to the largest remainders, ties to
    the smaller merchant id, so the same input always gives the same split. A merchant
    with weight zero pays nothing.
    """
    _check_total(total_minor)
    exact = {
        merchant: _exact(weight, f"weight of {merchant!r}") for merchant, weight in weights.items()
    }
    return _split(total_minor, exact)


def shapley_shares(
    players: Sequence[str], cost_of: Callable[[frozenset[str]], Decimal]
) -> dict[str, Decimal]:
    """Each merchant's Shapley value: its marginal cost averaged over arrival orders.

    It is the one split with these fairness properties:
    - efficiency: the shares add up to the cost of serving everyone together;
    - symmetry: two merchants who change every coalition's cost alike pay the same;
    - null player: a merchant who never changes any coalition's cost pays nothing;
    - additivity: the shares of a sum of costs are the sums of the shares.

    `cost_of` is called once per non-empty coalition (2**n - 1 times, so it may run a
    solver); serving nobody costs nothing. The computation is exponential, hence at
    most `MAX_SHAPLEY_PLAYERS` merchants: above that, callers fall back to
    `allocate_proportional` weighted by each merchant's stand-alone cost.
    Values are exact rationals shown to 28 significant digits.
    """
    return {
        player: _DISPLAY.divide(Decimal(value.numerator), Decimal(value.denominator))
        for player, value in _shapley(players, cost_of).items()
    }


def allocate_shapley(
    total_minor: int, players: Sequence[str], cost_of: Callable[[frozenset[str]], Decimal]
) -> dict[str, int]:
    """Split `total_minor` in proportion to the merchants' Shapley values.

    Scaling to `total_minor` keeps the split exact when `cost_of` measures cost in
    other units than the bill, or re-estimates the shared route slightly differently.
    After rounding to minor units, symmetric merchants may differ by one minor unit
    (the tie-break by merchant id decides who carries it). A negative Shapley value
    (`cost_of` is not monotone: some merchant makes a coalition cheaper) raises
    `ValueError`; the caller then falls back to stand-alone-cost weights.
    """
    _check_total(total_minor)
    values = _shapley(players, cost_of)
    negative = sorted(player for player, value in values.items() if value < 0)
    if negative:
        raise ValueError(
            f"the Shapley value of {negative[0]!r} is negative: cost_of is not monotone"
        )
    return _split(total_minor, values)


def _split(total_minor: int, weights: Mapping[str, Fraction]) -> dict[str, int]:
    """Largest remainder: floor every exact quota, hand out the rest one unit each."""
    total_weight = sum(weights.values(), Fraction(0))
    if total_weight == 0:
        if total_minor == 0:
            return dict.fromkeys(weights, 0)
        raise ValueError("cannot share a non-zero cost when every weight is zero")
    quotas = {merchant: total_minor * weight / total_weight for merchant, weight in weights.items()}
    shares = {merchant: math.floor(quota) for merchant, quota in quotas.items()}
    leftover = total_minor - sum(shares.values())
    # Largest remainder first (most negative floor - quota), then the smaller id.
    by_remainder = sorted(quotas, key=lambda m: (shares[m] - quotas[m], m))
    for merchant in by_remainder[:leftover]:
        shares[merchant] += 1
    return shares


def _shapley(
    players: Sequence[str], cost_of: Callable[[frozenset[str]], Decimal]
) -> dict[str, Fraction]:
    count = len(players)
    if len(set(players)) != count:
        raise ValueError("players must be distinct")
    if count > MAX_SHAPLEY_PLAYERS:
        raise ValueError(
            f"{count} players is more than {MAX_SHAPLEY_PLAYERS}: use allocate_proportional"
            " with stand-alone costs instead"
        )
    # Coalitions are bit masks over `players`; cost[mask] is the coalition's cost.
    cost = [Fraction(0)]
    for mask in range(1, 1 << count):
        coalition = frozenset(player for bit, player in enumerate(players) if mask >> bit & 1)
        cost.append(_exact(cost_of(coalition), f"cost of {sorted(coalition)}"))
    # The probability that exactly the `size` players of a given coalition precede a
    # given player in a uniformly random arrival order.
    weight = [
        Fraction(math.factorial(size) * math.factorial(count - size - 1), math.factorial(count))
        for size in range(count)
    ]
    values = {}
    for bit, player in enumerate(players):
        flag = 1 << bit
        values[player] = sum(
            (
                weight[mask.bit_count()] * (cost[mask | flag] - cost[mask])
                for mask in range(1 << count)
                if not mask & flag
            ),
            Fraction(0),
        )
    return values


def _exact(value: Decimal, what: str) -> Fraction:
    if isinstance(value, bool) or not isinstance(value, Decimal | int):
        raise TypeError(f"{what} must be a Decimal, not {type(value).__name__}")
    if isinstance(value, Decimal) and not value.is_finite():
        raise ValueError(f"{what} is {value}")
    if value < 0:
        raise ValueError(f"{what} is negative: {value}")
    return Fraction(value)


def _check_total(total_minor: int) -> None:
    if isinstance(total_minor, bool) or not isinstance(total_minor, int):
        raise TypeError(f"total_minor must be an int, not {type(total_minor).__name__}")
    if total_minor < 0:
        raise ValueError(f"total_minor is negative: {total_minor}")
