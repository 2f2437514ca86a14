"""Route cost allocation: exact sums, largest remainder, Shapley fairness."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from fractions import Fraction
from itertools import permutations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.billing.allocation import (
    MAX_SHAPLEY_PLAYERS,
    allocate_proportional,
    allocate_shapley,
    shapley_shares,
)

merchants = st.lists(
    st.text(alphabet="abcdefgh", min_size=1, max_size=3), min_size=1, max_size=8, unique=True
)
weights_strategy = st.dictionaries(
    st.text(alphabet="abcdefgh", min_size=1, max_size=3),
    st.decimals(min_value=0, max_value=10**6, places=3),
    min_size=1,
    max_size=12,
)


def airport(costs: dict[str, Decimal]) -> Callable[[frozenset[str]], Decimal]:
    """A route costs what its most demanding merchant needs (the classic airport game)."""
    return lambda coalition: max(costs[m] for m in coalition)


def shapley_by_orders(players: list[str], cost_of) -> dict[str, Fraction]:
    """The definition itself: marginal costs averaged over every arrival order."""
    totals = dict.fromkeys(players, Fraction(0))
    orders = list(permutations(players))
    for order in orders:
        before: frozenset[str] = frozenset()
        for player in order:
            after = before | {player}
            totals[player] += Fraction(cost_of(after)) - (
                Fraction(cost_of(before)) if before else 0
            )
            before = after
    return {player: total / len(orders) for player, total in totals.items()}


def test_proportional_split_by_weight() -> None:
    shares = allocate_proportional(10000, {"a": Decimal(1), "b": Decimal(3)})
    assert shares == {"a": 2500, "b": 7500}


def test_leftover_units_go_to_largest_remainders_then_smaller_id() -> None:
    assert allocate_proportional(100, {"c": Decimal(1), "b": Decimal(1), "a": Decimal(1)}) == {
        "c": 33,
        "b": 33,
        "a": 34,
    }
    # quotas 1.4 / 3.6 / 5.0: the one leftover unit goes to the 0.6 remainder
    assert allocate_proportional(10, {"a": Decimal(7), "b": Decimal(18), "c": Decimal(25)}) == {
        "a": 1,
        "b": 4,
        "c": 5,
    }


def test_zero_weights() -> None:
    assert allocate_proportional(0, {"a": Decimal(0)}) == {"a": 0}
    assert allocate_proportional(0, {}) == {}
    assert allocate_proportional(5, {"a": Decimal(0), "b": Decimal(2)}) == {"a": 0, "b": 5}
    with pytest.raises(ValueError, match="every weight is zero"):
        allocate_proportional(5, {"a": Decimal(0)})
    with pytest.raises(ValueError, match="every weight is zero"):
        allocate_proportional(5, {})


@pytest.mark.parametrize(
    ("total", "weights", "error"),
    [
        (-1, {"a": Decimal(1)}, ValueError),
        (Decimal(1), {"a": Decimal(1)}, TypeError),
        (True, {"a": Decimal(1)}, TypeError),
        (1, {"a": Decimal(-1)}, ValueError),
        (1, {"a": Decimal("NaN")}, ValueError),
        (1, {"a": 1.5}, TypeError),
    ],
)
def test_bad_allocation_input_is_refused(total, weights, error) -> None:
    with pytest.raises(error):
        allocate_proportional(total, weights)


def test_airport_game_shapley_values() -> None:
    cost_of = airport({"a": Decimal(6), "b": Decimal(12), "c": Decimal(42)})
    assert shapley_shares(["a", "b", "c"], cost_of) == {
        "a": Decimal(2),
        "b": Decimal(5),
        "c": Decimal(35),
    }
    assert allocate_shapley(4200, ["a", "b", "c"], cost_of) == {"a": 200, "b": 500, "c": 3500}


def test_shapley_values_that_do_not_terminate_in_decimal() -> None:
    shares = shapley_shares(["a", "b", "c"], lambda coalition: Decimal(1))
    assert shares["a"] == Decimal("0.3333333333333333333333333333")
    assert allocate_shapley(100, ["a", "b", "c"], lambda coalition: Decimal(1)) == {
        "a": 34,
        "b": 33,
        "c": 33,
    }


def test_shapley_refuses_too_many_or_repeated_players() -> None:
    players = [f"m{i}" for i in range(MAX_SHAPLEY_PLAYERS + 1)]
    with pytest.raises(ValueError, match="allocate_proportional"):
        shapley_shares(players, lambda coalition: Decimal(len(coalition)))
    with pytest.raises(ValueError, match="distinct"):
        shapley_shares(["a", "a"], lambda coalition: Decimal(1))


def test_negative_shapley_value_asks_for_the_fallback() -> None:
    def cost_of(coalition: frozenset[str]) -> Decimal:
        return Decimal(5) if coalition == {"a"} else Decimal(1)

    with pytest.raises(ValueError, match="not monotone"):
        allocate_shapley(100, ["a", "b"], cost_of)


def test_shapley_never_asks_for_the_empty_coalition() -> None:
    asked: list[frozenset[str]] = []

    def cost_of(coalition: frozenset[str]) -> Decimal:
        asked.append(coalition)
        return Decimal(len(coalition))

    shapley_shares(["a", "b", "c"], cost_of)
    assert frozenset() not in asked
    assert len(asked) == 7


@given(total=st.integers(min_value=0, max_value=10**12), weights=weights_strategy)
def test_proportional_allocation_sums_exactly_and_stays_within_one_unit(
    total: int, weights: dict[str, Decimal]
) -> None:
    if not any(weights.values()):
        weights = {**weights, "z": Decimal(1)}
    shares = allocate_proportional(total, weights)
    assert sum(shares.values()) == total
    whole = sum(map(Fraction, weights.values()))
    for merchant, share in shares.items():
        quota = total * Fraction(weights[merchant]) / whole
        assert quota - 1 < share < quota + 1
        if weights[merchant] == 0:
            assert share == 0


@given(
    players=merchants,
    stand_alone=st.lists(st.integers(min_value=0, max_value=10**6), min_size=8, max_size=8),
    total=st.integers(min_value=0, max_value=10**9),
)
def test_shapley_is_efficient_symmetric_and_matches_the_definition(
    players: list[str], stand_alone: list[int], total: int
) -> None:
    costs = {player: Decimal(stand_alone[i]) for i, player in enumerate(players)}
    cost_of = airport(costs)
    values = shapley_shares(players, cost_of)
    grand = cost_of(frozenset(players))

    assert abs(sum(values.values()) - grand) < Decimal("1e-20")  # efficiency
    for a in players:  # symmetry: equal stand-alone needs in the airport game are interchangeable
        for b in players:
            if costs[a] == costs[b]:
                assert values[a] == values[b]
    if len(players) <= 5:
        exact = shapley_by_orders(players, cost_of)
        for player in players:
            assert abs(Fraction(values[player]) - exact[player]) < Fraction(1, 10**20)

    if grand > 0:
        shares = allocate_shapley(total, players, cost_of)
        assert sum(shares.values()) == total


@given(
    players=st.lists(st.sampled_from("abcdef"), min_size=2, max_size=6, unique=True),
    table=st.lists(st.integers(min_value=1, max_value=1000), min_size=64, max_size=64),
)
def test_shapley_null_player_pays_nothing(players: list[str], table: list[int]) -> None:
    """The first player adds nothing to any coalition: its value and share are zero."""
    null, others = players[0], players[1:]

    def cost_of(coalition: frozenset[str]) -> Decimal:
        rest = coalition - {null}
        if not rest:
            return Decimal(0)
        return Decimal(table[sum(1 << i for i, p in enumerate(others) if p in rest)])

    values = shapley_shares(players, cost_of)
    assert values[null] == 0
    assert abs(sum(values.values()) - cost_of(frozenset(players))) < Decimal("1e-20")
