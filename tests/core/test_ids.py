"""Ids: prefix, Crockford base32 spelling of (milliseconds, random part), creation order."""

from __future__ import annotations

import re
import time
from itertools import pairwise

from services.core.ids import new_id

ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"


def value_of(identifier: str) -> int:
    value = 0
    for digit in identifier.partition("_")[2]:
        value = value * 32 + ALPHABET.index(digit)
    return value


def test_an_id_is_its_prefix_and_26_crockford_digits() -> None:
    identifier = new_id("dlv")
    assert re.fullmatch(r"dlv_[0-9a-hjkmnp-tv-z]{26}", identifier)


def test_the_digits_spell_the_creation_millisecond_then_the_random_part() -> None:
    before = int(time.time() * 1000)
    identifier = new_id("dlv")
    after = int(time.time() * 1000)
    assert before <= value_of(identifier) >> 80 <= after


def test_ids_sort_in_creation_order_within_and_across_milliseconds() -> None:
    made = [new_id("dev") for _ in range(20_000)]
    assert len(set(made)) == len(made)
    assert sorted(made) == made
    values = [value_of(identifier) for identifier in made]
    assert all(later > earlier for earlier, later in pairwise(values))
