"""Building input objects from GraphQL input values with a plan made once per type.

Strawberry converts an input value field by field, resolving each field's type every
time; for a bulk booking of 250 inputs that was a third of the request. graphql-core
has already coerced every scalar (dates and datetimes included) by the time resolvers
run, so an input made only of scalars and nested inputs needs no conversion beyond
renaming fields: `plain_input` plans that once and hands it to strawberry's own hook
for building input values (`StrawberryObjectDefinition.from_input`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING
from typing import Any, TypeVar

from strawberry.types.arguments import InputContext
from strawberry.types.base import (
    StrawberryContainer,
    StrawberryOptional,
    get_object_definition,
    has_object_definition,
)
from strawberry.types.enum import StrawberryEnumDefinition

T = TypeVar("T")


def plain_input(cls: type[T]) -> type[T]:
    """Class decorator, over `@strawberry.input`: build this input by a fixed plan.

    Every field must be a scalar or a nested input that is a `plain_input` too; lists
    and enums need strawberry's conversion and are refused on first use.
    """
    definition = get_object_definition(cls, strict=True)
    # (GraphQL name, python name, nested input type or None), made on first use, when
    # the schema's name converter is known (two threads may both make it: same result).
    plan: list[tuple[str, str, type | None]] | None = None
    # Like strawberry: a field without a default is None when the client omits it.
    implicit = {
        field.python_name: None
        for field in definition.fields
        if field.default_value is MISSING and field.default_factory is MISSING
    }

    def build(type_: type, value: Mapping[str, Any], context: InputContext) -> Any:
        nonlocal plan
        if plan is None:
            plan = _plan(cls, context)
        kwargs = dict(implicit)
        for graphql_name, python_name, nested in plan:
            if graphql_name not in value:
                continue
            given = value[graphql_name]
            if nested is not None and given is not None:
                inner = get_object_definition(nested, strict=True).from_input
                assert inner is not None
                given = inner(nested, given, context)
            kwargs[python_name] = given
        return type_(**kwargs)

    definition.from_input = build
    return cls


def _plan(cls: type, context: InputContext) -> list[tuple[str, str, type | None]]:
    definition = get_object_definition(cls, strict=True)
    plan = []
    for field in definition.fields:
        field_type = field.resolve_type(type_definition=definition)
        if isinstance(field_type, StrawberryOptional):
            field_type = field_type.of_type
        kind = getattr(field_type, "__strawberry_definition__", field_type)
        if isinstance(kind, StrawberryEnumDefinition | StrawberryContainer):
            raise TypeError(f"{cls.__name__}.{field.python_name}: not a scalar or an input")
        nested = None
        if has_object_definition(field_type):
            if get_object_definition(field_type, strict=True).from_input is None:
                raise TypeError(f"{field_type.__name__} must be a plain_input too")
            nested = field_type
        name = context.config.name_converter.from_field(field)
        plan.append((name, field.python_name, nested))
    return plan
