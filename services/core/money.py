"""Money as `Decimal` and integer minor units, never binary floats.

Every amount that leaves billing is rounded half-up to its currency's minor unit
(ISO 4217 exponent) and written as a plain decimal string with exactly that many
fractional digits, so "2900.00" USD, "2900" JPY and "2.900" KWD are the only
spellings a client ever sees.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import (
    ROUND_HALF_UP,
    Context,
    Decimal,
    DivisionByZero,
    InvalidOperation,
    Overflow,
)

MAX_DIGITS = 38
"""Digits a decimal input may carry: what a SQL `numeric(38, s)` column can hold."""

_DECIMAL = re.compile(r"-?(\d+)(?:\.(\d+))?", re.ASCII)

# Rounding needs a context that does not trap Inexact (rounding *is* inexact) but is
# wide enough that only the quantize step ever rounds.
_ROUNDING = Context(
    prec=200, rounding=ROUND_HALF_UP, traps=[InvalidOperation, DivisionByZero, Overflow]
)


@dataclass(frozen=True)
class Currency:
    """An ISO 4217 currency and the number of digits after its decimal point."""

    code: str
    minor_units: int

    @property
    def quantum(self) -> Decimal:
        """The smallest amount of this currency, e.g. 0.01 for USD, 1 for JPY."""
        return Decimal(1).scaleb(-self.minor_units)


CURRENCIES: Mapping[str, Currency] = {
    code: Currency(code, digits)
    for code, digits in (
        ("AED", 2), ("AUD", 2), ("BHD", 3), ("BRL", 2), ("CAD", 2), ("CHF", 2),
        ("CLP", 0), ("CNY", 2), ("CZK", 2), ("DKK", 2), ("EUR", 2), ("GBP", 2),
        ("HKD", 2), ("HUF", 2), ("ILS", 2), ("INR", 2), ("ISK", 0), ("JOD", 3),
        ("JPY", 0), ("KRW", 0), ("KWD", 3), ("MXN", 2), ("NOK", 2), ("NZD", 2),
        ("OMR", 3), ("PLN", 2), ("SAR", 2), ("SEK", 2), ("SGD", 2), ("TND", 3),
        ("TRY", 2), ("USD", 2), ("VND", 0), ("ZAR", 2),
    )
}  # fmt: skip


def currency_for(code: str) -> Currency:
    """Look up a currency by its ISO 4217 code; unknown codes raise `ValueError`."""
    try:
        return CURRENCIES[code]
    except (KeyError, TypeError):
        raise ValueError(f"unknown currency {code!r}") from None


def parse_decimal(text: str) -> Decimal:
    """Read a plain decimal string such as "12", "-3" or "0.0015".

    Exponents, NaN, infinities, blanks, "+1", ".5" and "1." are refused: inputs are
    written the way outputs are, so what a client sends is what it gets back.
    """
    match = _DECIMAL.fullmatch(text)
    if match is None:
        raise ValueError(f"{json.dumps(text)} is not a decimal number")
    whole, fraction = match.groups()
    if len(whole.lstrip("0")) + len(fraction or "") > MAX_DIGITS:
        raise ValueError(f"{json.dumps(text)} has more than {MAX_DIGITS} digits")
    return Decimal(text)


def round_half_up(amount: Decimal, currency: Currency) -> Decimal:
    """Round to the currency's minor unit, halves away from zero (not banker's)."""
    return amount.quantize(currency.quantum, context=_ROUNDING)


def format_amount(amount: Decimal, currency: Currency) -> str:
    """Write an amount with exactly the currency's minor-unit digits.

    Formatting never rounds: an amount with finer digits is a bug upstream, so it
    raises instead of silently changing the figure.
    """
    rounded = round_half_up(amount, currency)
    if rounded != amount:
        raise ValueError(f"{amount} is not a whole number of {currency.code} minor units")
    return _plain(rounded)


def format_quantity(value: Decimal) -> str:
    """Write a quantity plainly and canonically: "1200", "2.5", "0" (no exponent)."""
    return "0" if value.is_zero() else _plain(value.normalize(_ROUNDING))


def to_minor(amount: Decimal, currency: Currency) -> int:
    """Convert an amount to integer minor units; it must already be rounded."""
    if round_half_up(amount, currency) != amount:
        raise ValueError(f"{amount} is not a whole number of {currency.code} minor units")
    return int(amount.scaleb(currency.minor_units, _ROUNDING))


def from_minor(minor: int, currency: Currency) -> Decimal:
    """Convert integer minor units back to an amount with the currency's digits."""
    if isinstance(minor, bool) or not isinstance(minor, int):
        raise TypeError(f"minor units must be an int, not {type(minor).__name__}")
    return Decimal(minor).scaleb(-currency.minor_units, _ROUNDING)


def _plain(value: Decimal) -> str:
    """Fixed-point notation, whatever the exponent (str() would say "1E+3")."""
    return format(value, "f")
