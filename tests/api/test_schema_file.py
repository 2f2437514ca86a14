"""The committed SDL (schema.graphql) is exactly what the code serves: it never drifts.

And every type, field, argument and enum value in it is described, for integrators.
"""

from __future__ import annotations

from pathlib import Path

from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLUnionType,
    specified_scalar_types,
)

from services.api.graphql.schema import schema

SDL = Path(__file__).resolve().parents[2] / "schema.graphql"


def test_the_committed_schema_matches_the_code():
    assert SDL.read_text() == schema.as_str() + "\n", (
        "schema.graphql is stale: run `make schema` and commit it"
    )


def _described(description: str | None) -> bool:
    return bool(description and description.strip())


def _undocumented() -> list[str]:
    """Every schema element an integrator would read without a description."""
    missing = []
    for name, type_ in sorted(schema._schema.type_map.items()):
        if name.startswith("__") or name in specified_scalar_types:
            continue
        if not _described(type_.description):
            missing.append(f"type {name}")
        if isinstance(type_, GraphQLObjectType | GraphQLInterfaceType):
            for field_name, field in type_.fields.items():
                if not _described(field.description):
                    missing.append(f"field {name}.{field_name}")
                missing.extend(
                    f"argument {name}.{field_name}({arg_name})"
                    for arg_name, arg in field.args.items()
                    if not _described(arg.description)
                )
        elif isinstance(type_, GraphQLInputObjectType):
            missing.extend(
                f"input field {name}.{field_name}"
                for field_name, field in type_.fields.items()
                if not _described(field.description)
            )
        elif isinstance(type_, GraphQLEnumType):
            missing.extend(
                f"enum value {name}.{value_name}"
                for value_name, value in type_.values.items()
                if not _described(value.description)
            )
        else:
            assert isinstance(type_, GraphQLScalarType | GraphQLUnionType), type_
    return missing


def test_every_type_field_and_argument_is_documented():
    missing = _undocumented()
    assert not missing, (
        f"{len(missing)} schema elements have no description; add one in "
        "services/api/graphql (strawberry.field/type/argument/enum_value description=...):\n  "
        + "\n  ".join(missing)
    )
