"""plain_input builds the same values strawberry's own conversion would, only faster."""

from datetime import date
from enum import Enum

import pytest
import strawberry

from services.api.graphql.inputs import plain_input


@plain_input
@strawberry.input
class Inner:
    when: date
    note: str | None = None


@plain_input
@strawberry.input
class Outer:
    first_name: str
    inner: Inner | None
    maybe: int | None
    count: int = 3


@strawberry.input
class SlowInner:
    when: date
    note: str | None = None


@strawberry.input
class SlowOuter:
    first_name: str
    inner: SlowInner | None
    maybe: int | None
    count: int = 3


def _echo(outer_type: type) -> strawberry.Schema:
    @strawberry.type
    class Query:
        @strawberry.field
        def echo(self, value: outer_type) -> str:  # type: ignore[valid-type]
            inner = value.inner
            parts = [value.first_name, value.maybe, value.count]
            parts += [None, None] if inner is None else [inner.when, inner.note]
            return repr(parts)

    return strawberry.Schema(query=Query)


@pytest.mark.parametrize(
    "value",
    [
        '{firstName: "a", inner: {when: "2026-11-23"}, maybe: 1}',
        '{firstName: "b", inner: {when: "2026-11-23", note: null}, count: 7}',
        '{firstName: "c", inner: null}',
    ],
)
def test_plain_inputs_match_strawberrys_conversion(value):
    fast = _echo(Outer).execute_sync(f"{{ echo(value: {value}) }}")
    slow = _echo(SlowOuter).execute_sync(f"{{ echo(value: {value}) }}")
    assert fast.errors is None and fast.data == slow.data


def test_an_input_needing_conversion_is_refused():
    class Colour(Enum):
        RED = "red"

    @plain_input
    @strawberry.input
    class Painted:
        colour: strawberry.enum(Colour)  # type: ignore[valid-type]

    result = _echo_painted(Painted).execute_sync("{ echo(value: {colour: RED}) }")
    assert result.errors and "not a scalar or an input" in result.errors[0].message


def _echo_painted(painted: type) -> strawberry.Schema:
    @strawberry.type
    class Query:
        @strawberry.field
        def echo(self, value: painted) -> str:  # type: ignore[valid-type]
            return "unreachable"

    return strawberry.Schema(query=Query)
