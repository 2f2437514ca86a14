"""Identifiers: a type prefix plus a time-ordered random part (like Stripe's `ch_...`).

Time ordering keeps B-tree inserts local and makes ids usable as stable cursors. Ids
made by one process in the same millisecond still sort in creation order (the random
part is incremented, as monotonic ULIDs do), so histories written in one transaction
keep their order. That makes an id predictable from its neighbours: anything that grants
access by itself gets an `unguessable_id` instead.
"""

from __future__ import annotations

import os
import secrets
import threading
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case
# Two digits (10 bits) per lookup: 13 lookups spell the 26 digits, twice as fast as a
# divmod per digit (bulk bookings make ids by the thousand).
_DIGIT_PAIRS = [high + low for high in _ALPHABET for low in _ALPHABET]
_PAIR_SHIFTS = range(120, -1, -10)
_RANDOM_BITS = 80
_lock = threading.Lock()
_last = (0, 0)  # (millisecond, random part) of the last id made here


def unguessable_id(prefix: str) -> str:
    """A handle that grants access by itself (a recipient's tracking link): the prefix
    and 128 random bits, unrelated to any id or to any other handle."""
    return f"{prefix}_{secrets.token_urlsafe(16)}"


def new_id(prefix: str) -> str:
    global _last
    with _lock:
        millis = int(time.time() * 1000)
        last_millis, last_random = _last
        if millis <= last_millis:
            millis, random_part = last_millis, last_random + 1
        else:
            random_part = int.from_bytes(os.urandom(_RANDOM_BITS // 8), "big") >> 1
        _last = (millis, random_part)
    value = (millis << _RANDOM_BITS) | random_part
    digits = "".join([_DIGIT_PAIRS[(value >> shift) & 1023] for shift in _PAIR_SHIFTS])
    return f"{prefix}_{digits}"
