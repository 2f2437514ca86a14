"""Per-value descriptions for domain enums exposed as GraphQL enums.

`strawberry.enum(DomainEnum, ...)` takes no per-value descriptions, and the domain
enums must not depend on strawberry (so `strawberry.enum_value` is out), so this sets
them on the enum's strawberry definition, which the schema reads when it is built.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import TypeVar

from strawberry.types.enum import StrawberryEnumDefinition

E = TypeVar("E", bound=type[Enum])


def describe_values(enum: E, descriptions: Mapping[str, str]) -> E:
    """Give each GraphQL value of a strawberry-wrapped enum its description.

    A name that is not one of the enum's values is a mistake and raises ValueError.
    A value left out keeps no description (tests/api/test_schema_file.py catches it).
    """
    definition = getattr(enum, "__strawberry_definition__", None)
    if not isinstance(definition, StrawberryEnumDefinition):
        raise TypeError(f"{enum!r} is not a strawberry enum: wrap it with strawberry.enum first.")
    unknown = set(descriptions) - {value.name for value in definition.values}
    if unknown:
        raise ValueError(f"{enum.__name__} has no values {sorted(unknown)}.")
    for value in definition.values:
        value.description = descriptions.get(value.name, value.description)
    return enum
