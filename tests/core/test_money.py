"""Money: minor units, half-up rounding, plain formatting, exact conversions."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.core.money import (
    CURRENCIES,
    currency_for,
    format_amount,
    format_quantity,
    from_minor,
    parse_decimal,
    round_half_up,
    to_minor,
)

USD, JPY, KWD = currency_for("USD"), currency_for("JPY"), currency_for("KWD")


@pytest.mark.parametrize(
    ("code", "digits"), [("USD", 2), ("EUR", 2), ("GBP", 2), ("JPY", 0), ("KWD", 3)]
)
def test_iso_4217_minor_units(code: str, digits: int) -> None:
    assert currency_for(code).minor_units == digits


@pytest.mark.parametrize("code", ["XYZ", "usd", ""])
def test_unknown_currency_is_refused(code: str) -> None:
    with pytest.raises(ValueError, match="unknown currency"):
        currency_for(code)


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        ("2.345", USD, "2.35"),
        ("2.344", USD, "2.34"),
        ("0.005", USD, "0.01"),
        ("0.5", JPY, "1"),
        ("1.5", JPY, "2"),
        ("2.5", JPY, "3"),  # half-up, not banker's rounding (which would give 2)
        ("2.49", JPY, "2"),
        ("1.2345", KWD, "1.235"),
        ("0.0005", KWD, "0.001"),
        ("0.00049", KWD, "0.000"),
    ],
)
def test_round_half_up(amount: str, currency, expected: str) -> None:
    assert format_amount(round_half_up(Decimal(amount), currency), currency) == expected


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        ("2900", USD, "2900.00"),
        ("2900", JPY, "2900"),
        ("2.9", KWD, "2.900"),
        ("1E+3", USD, "1000.00"),
    ],
)
def test_format_amount_has_exactly_the_minor_digits(amount: str, currency, expected: str) -> None:
    assert format_amount(Decimal(amount), currency) == expected


def test_format_amount_never_rounds_silently() -> None:
    with pytest.raises(ValueError, match="not a whole number of USD minor units"):
        format_amount(Decimal("1.005"), USD)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1200", "1200"), ("1.2E+3", "1200"), ("2.50", "2.5"), ("0.000", "0"), ("1E-7", "0.0000001")],
)
def test_format_quantity_is_plain_and_canonical(value: str, expected: str) -> None:
    assert format_quantity(Decimal(value)) == expected


@pytest.mark.parametrize("text", ["12", "-3", "0.0015", "007.50"])
def test_parse_decimal_reads_plain_decimals(text: str) -> None:
    assert parse_decimal(text) == Decimal(text)


@pytest.mark.parametrize(
    "text", ["", " 1", "1e3", "NaN", "Infinity", "+1", ".5", "1.", "1,5", "½", "١٢"]
)
def test_parse_decimal_refuses_anything_else(text: str) -> None:
    with pytest.raises(ValueError, match="is not a decimal number"):
        parse_decimal(text)


def test_parse_decimal_refuses_more_digits_than_a_numeric_38_column() -> None:
    assert parse_decimal("9" * 38) == Decimal("9" * 38)
    with pytest.raises(ValueError, match="more than 38 digits"):
        parse_decimal("1" + "0" * 38)


def test_minor_unit_conversions() -> None:
    assert to_minor(Decimal("2900.00"), USD) == 290000
    assert to_minor(Decimal("2900"), JPY) == 2900
    assert to_minor(Decimal("1.235"), KWD) == 1235
    assert str(from_minor(290000, USD)) == "2900.00"
    assert str(from_minor(1235, KWD)) == "1.235"
    with pytest.raises(ValueError, match="not a whole number"):
        to_minor(Decimal("0.5"), JPY)
    with pytest.raises(TypeError):
        from_minor(1.5, USD)  # type: ignore[arg-type]


@given(
    minor=st.integers(min_value=-(10**15), max_value=10**15),
    code=st.sampled_from(sorted(CURRENCIES)),
)
def test_minor_units_round_trip(minor: int, code: str) -> None:
    currency = currency_for(code)
    amount = from_minor(minor, currency)
    assert to_minor(amount, currency) == minor
    text = format_amount(amount, currency)
    assert "E" not in text
    assert len(text.partition(".")[2]) == currency.minor_units


@given(
    amount=st.decimals(min_value=0, max_value=10**9, places=6),
    code=st.sampled_from(sorted(CURRENCIES)),
)
def test_rounding_is_within_half_a_minor_unit_and_halves_go_up(amount: Decimal, code: str) -> None:
    currency = currency_for(code)
    rounded = round_half_up(amount, currency)
    error = rounded - amount
    half = currency.quantum / 2
    assert -half < error <= half
