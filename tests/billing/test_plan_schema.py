"""The plan format's JSON Schema in docs/billing.md says what the pricing engine accepts.

Each example is judged by the schema and by `parse_plan`; they must agree, so the
documented format cannot drift from the code.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from services.billing.pricing import PricingError, parse_plan
from tests.billing.test_pricing import CONTRACT_PLAN

DOC = Path(__file__).resolve().parents[2] / "docs" / "billing.md"


def _schema() -> dict[str, Any]:
    section = DOC.read_text().split("### The plan format", 1)[1]
    block = re.search(r"```json\n(.*?)\n```", section, re.S)
    assert block is not None, "docs/billing.md shows the plan schema in a json block"
    schema: dict[str, Any] = json.loads(block.group(1))
    return schema


VALIDATOR = Draft202012Validator(_schema())


def _plan(change) -> dict[str, Any]:
    plan = copy.deepcopy(CONTRACT_PLAN)
    change(plan)
    return plan


def _engine_accepts(plan: object) -> bool:
    try:
        parse_plan(plan)
    except PricingError:
        return False
    return True


def test_the_schema_is_a_valid_json_schema():
    Draft202012Validator.check_schema(_schema())


EXAMPLES = {
    "the contract's plan": _plan(lambda p: None),
    "minimum null": _plan(lambda p: p.update(minimum=None)),
    "minimum left out": _plan(lambda p: p.pop("minimum")),
    "optional charge fields null": _plan(
        lambda p: p["charges"][2].update(
            aggregation=None, free_units=None, unit_price=None, package_size=None
        )
    ),
    "unit_price null on tiers": _plan(lambda p: p["charges"][0].update(unit_price=None)),
    "no currency": _plan(lambda p: p.pop("currency")),
    "an unknown field": _plan(lambda p: p.update(discount="5")),
    "an amount as a JSON number": _plan(lambda p: p["charges"][1].update(unit_price=1.0)),
    "per_unit without unit_price": _plan(lambda p: p["charges"][1].pop("unit_price")),
    "graduated without tiers": _plan(lambda p: p["charges"][0].pop("tiers")),
    "graduated with empty tiers": _plan(lambda p: p["charges"][0].update(tiers=[])),
    "package with tiers": _plan(
        lambda p: p["charges"][3].update(tiers=[{"up_to": None, "unit_price": "1"}])
    ),
    "no charges": _plan(lambda p: p.update(charges=[])),
    "an unknown aggregation": _plan(lambda p: p["charges"][1].update(aggregation="avg")),
    "the reserved meter": _plan(lambda p: p["charges"][1].update(meter="minimum_commitment")),
    "a negative price": _plan(lambda p: p["charges"][1].update(unit_price="-1.00")),
}


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_schema_and_engine_agree(name):
    plan = EXAMPLES[name]
    assert VALIDATOR.is_valid(plan) == _engine_accepts(plan), name


def test_null_optional_fields_mean_absent():
    with_nulls = parse_plan(EXAMPLES["minimum null"])
    without = parse_plan(EXAMPLES["minimum left out"])
    assert with_nulls == without
    assert parse_plan(EXAMPLES["optional charge fields null"]) == parse_plan(CONTRACT_PLAN)
