"""The committed SDL (schema.graphql) is exactly what the code serves: it never drifts."""

from __future__ import annotations

from pathlib import Path

from services.api.graphql.schema import schema

SDL = Path(__file__).resolve().parents[2] / "schema.graphql"


def test_the_committed_schema_matches_the_code():
    assert SDL.read_text() == schema.as_str() + "\n", (
        "schema.graphql is stale: run `make schema` and commit it"
    )
