"""Relay-style pagination: opaque cursors over time-ordered ids, `first` capped at 100."""

from __future__ import annotations

import base64
import binascii
import json

import strawberry

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 50


@strawberry.type(description="Where a page stands in the whole list.")
class PageInfo:
    has_next_page: bool = strawberry.field(
        description="Whether more items follow this page: fetch them with `after: endCursor`."
    )
    has_previous_page: bool = strawberry.field(
        description="Whether this page was requested with an `after` cursor, i.e. it does not "
        "start at the beginning of the list."
    )
    start_cursor: str | None = strawberry.field(
        description="The cursor of the page's first item; null when the page is empty."
    )
    end_cursor: str | None = strawberry.field(
        description="The cursor of the page's last item, to pass as `after` for the next "
        "page; null when the page is empty."
    )


def encode_cursor(kind: str, row_id: str) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{row_id}".encode()).decode().rstrip("=")


def decode_cursor(kind: str, cursor: str) -> str:
    """The row id inside a cursor; ValueError if it is not one of ours for this list."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        decoded = base64.urlsafe_b64decode(padded.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as error:
        raise ValueError(f"Invalid cursor {cursor!r}.") from error
    prefix, _, row_id = decoded.partition(":")
    if prefix != kind or not row_id:
        raise ValueError(f"Invalid cursor {cursor!r}.")
    return row_id


def page_size(first: int | None) -> int:
    if first is None:
        return DEFAULT_PAGE_SIZE
    if not 0 <= first <= MAX_PAGE_SIZE:
        raise ValueError(f"`first` must be between 0 and {MAX_PAGE_SIZE}, got {first}.")
    return first


def encode_position(kind: str, values: list[str]) -> str:
    """A cursor for keyset pagination: the sort values of the last row shown."""
    return encode_cursor(kind, json.dumps(values, separators=(",", ":")))


def decode_position(kind: str, cursor: str) -> list[str]:
    try:
        values = json.loads(decode_cursor(kind, cursor))
    except json.JSONDecodeError as error:
        raise ValueError(f"Invalid cursor {cursor!r}.") from error
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise ValueError(f"Invalid cursor {cursor!r}.")
    return values
