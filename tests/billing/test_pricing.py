"""The pure pricing engine against the contract's rules, by example and by property."""

from __future__ import annotations

import copy
import math
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.billing.pricing import (
    MINIMUM_COMMITMENT,
    Charge,
    ChargeModel,
    Period,
    Plan,
    PricingError,
    RatingResult,
    UsageEvent,
    aggregate,
    parse_event,
    parse_period,
    parse_plan,
    price_invoice,
    price_line,
    rate,
)
from services.core.meters import Aggregation
from services.core.money import currency_for, round_half_up

CONTRACT_PLAN: dict[str, Any] = {
    "code": "growth",
    "currency": "USD",
    "minimum": "100.00",
    "charges": [
        {
            "meter": "deliveries",
            "model": "graduated",
            "tiers": [
                {"up_to": "1000", "unit_price": "2.50"},
                {"up_to": None, "unit_price": "2.00"},
            ],
        },
        {"meter": "failed_attempts", "model": "per_unit", "unit_price": "1.00", "free_units": "10"},
        {
            "meter": "parcel_kg",
            "model": "volume",
            "tiers": [
                {"up_to": "500", "unit_price": "0.10"},
                {"up_to": None, "unit_price": "0.08"},
            ],
        },
        {
            "meter": "api_requests",
            "model": "package",
            "package_size": "10000",
            "package_price": "5.00",
            "free_units": "100000",
        },
        {
            "meter": "active_recipients",
            "model": "per_unit",
            "aggregation": "unique_count",
            "unit_price": "0.01",
        },
    ],
}
GROWTH = parse_plan(CONTRACT_PLAN)
NOVEMBER = parse_period("2026-11")
USD, JPY, KWD = currency_for("USD"), currency_for("JPY"), currency_for("KWD")
_counter = iter(range(10**9))


def event(
    meter: str,
    quantity: str = "1",
    *,
    tenant: str = "t1",
    at: str = "2026-11-03T10:00:00Z",
    key: str | None = None,
    id: str | None = None,
) -> UsageEvent:
    data = {"id": id or f"evt-{next(_counter)}", "tenant": tenant, "meter": meter}
    data |= {"quantity": quantity, "at": at} | ({"key": key} if key else {})
    return parse_event(data)


def plan(*charges: dict[str, Any], currency: str = "USD", minimum: str = "0") -> Plan:
    return parse_plan(
        {"code": "test", "currency": currency, "minimum": minimum, "charges": list(charges)}
    )


def line(result: RatingResult, tenant: str, meter: str) -> tuple[str, str]:
    """(quantity, amount) of one line of one tenant's invoice, as the contract prints them."""
    invoice = next(i for i in result.as_json()["invoices"] if i["tenant"] == tenant)
    found = next(entry for entry in invoice["lines"] if entry["meter"] == meter)
    return found["quantity"], found["amount"]


def growth_line(meter: str, *events: UsageEvent) -> tuple[str, str]:
    return line(rate(GROWTH, events, NOVEMBER), "t1", meter)


# --- the contract's charge models, by hand ---------------------------------------------


def test_contract_example_1200_deliveries_on_graduated_tiers() -> None:
    result = rate(GROWTH, [event("deliveries", "1200")], NOVEMBER)
    invoice = result.as_json()["invoices"][0]
    assert invoice["lines"][0] == {"meter": "deliveries", "quantity": "1200", "amount": "2900.00"}
    assert (invoice["subtotal"], invoice["total"]) == ("2900.00", "2900.00")


def test_1200_single_delivery_events_sum_like_one_event_of_1200() -> None:
    events = [event("deliveries") for _ in range(1200)]
    assert growth_line("deliveries", *events) == ("1200", "2900.00")


@pytest.mark.parametrize(
    ("quantity", "amount"),
    [("0", "0.00"), ("1000", "2500.00"), ("1001", "2502.00"), ("1000.5", "2501.00")],
)
def test_graduated_up_to_is_inclusive(quantity: str, amount: str) -> None:
    assert growth_line("deliveries", event("deliveries", quantity)) == (quantity, amount)


@pytest.mark.parametrize(
    ("quantity", "amount"), [("7", "0.00"), ("10", "0.00"), ("15", "5.00"), ("10.5", "0.50")]
)
def test_per_unit_after_free_units_quantity_is_before_free_units(
    quantity: str, amount: str
) -> None:
    assert growth_line("failed_attempts", event("failed_attempts", quantity)) == (quantity, amount)


@pytest.mark.parametrize(
    ("quantity", "amount"),
    [("499", "49.90"), ("500", "50.00"), ("500.5", "40.04"), ("600", "48.00")],
)
def test_volume_prices_every_unit_at_the_tier_of_the_whole(quantity: str, amount: str) -> None:
    assert growth_line("parcel_kg", event("parcel_kg", quantity)) == (quantity, amount)


@pytest.mark.parametrize(
    ("quantity", "amount"),
    [("100000", "0.00"), ("100001", "5.00"), ("110000", "5.00"), ("250000", "75.00"),
     ("250001", "80.00")],
)  # fmt: skip
def test_package_is_ceil_of_packages_after_free_units(quantity: str, amount: str) -> None:
    assert growth_line("api_requests", event("api_requests", quantity)) == (quantity, amount)


def test_a_cost_plus_plan_prices_the_merchants_route_cost_shares() -> None:
    """Shares of shared vans (the route_cost meter, in currency units) plus a 15% margin."""
    cost_plus = parse_plan(
        {
            "code": "cost-plus",
            "currency": "USD",
            "charges": [{"meter": "route_cost", "model": "per_unit", "unit_price": "1.15"}],
        }
    )
    shares = [event("route_cost", "41.37"), event("route_cost", "12.08")]
    assert line(rate(cost_plus, shares, NOVEMBER), "t1", "route_cost") == ("53.45", "61.47")


def test_unique_count_counts_distinct_keys() -> None:
    keys = ["r1", "r2", "r1", "r3", "r2"]
    events = [event("active_recipients", "5", key=key) for key in keys]
    assert growth_line("active_recipients", *events) == ("3", "0.03")


@pytest.mark.parametrize(
    ("aggregation", "quantity", "amount"),
    [("sum", "9.5", "9.50"), ("count", "3", "3.00"), ("max", "5", "5.00"),
     ("unique_count", "2", "2.00")],
)  # fmt: skip
def test_aggregations(aggregation: str, quantity: str, amount: str) -> None:
    priced = plan(
        {"meter": "m", "model": "per_unit", "unit_price": "1", "aggregation": aggregation}
    )
    events = [event("m", "4.5", key="a"), event("m", "5", key="b"), event("m", "0", key="a")]
    assert line(rate(priced, events, NOVEMBER), "t1", "m") == (quantity, amount)


def test_quantities_are_written_canonically() -> None:
    events = [event("parcel_kg", "2.50"), event("parcel_kg", "2.50")]
    assert growth_line("parcel_kg", *events) == ("5", "0.50")


def test_whole_contract_invoice_with_every_line_in_plan_order() -> None:
    events = [
        event("deliveries", "1200"),
        event("failed_attempts", "12"),
        event("parcel_kg", "600"),
        event("api_requests", "250000"),
        event("active_recipients", key="r1"),
        event("active_recipients", key="r2"),
    ]
    assert rate(GROWTH, events, NOVEMBER).as_json() == {
        "period": "2026-11",
        "currency": "USD",
        "invoices": [
            {
                "tenant": "t1",
                "lines": [
                    {"meter": "deliveries", "quantity": "1200", "amount": "2900.00"},
                    {"meter": "failed_attempts", "quantity": "12", "amount": "2.00"},
                    {"meter": "parcel_kg", "quantity": "600", "amount": "48.00"},
                    {"meter": "api_requests", "quantity": "250000", "amount": "75.00"},
                    {"meter": "active_recipients", "quantity": "2", "amount": "0.02"},
                ],
                "subtotal": "3025.02",
                "total": "3025.02",
            }
        ],
        "errors": [],
    }


def test_minimum_commitment_line_tops_up_to_the_minimum() -> None:
    invoice = rate(GROWTH, [event("parcel_kg", "2.5")], NOVEMBER).as_json()["invoices"][0]
    assert [entry["meter"] for entry in invoice["lines"]][-2:] == [
        "active_recipients",
        MINIMUM_COMMITMENT,
    ]
    assert invoice["lines"][-1] == {"meter": MINIMUM_COMMITMENT, "quantity": "1", "amount": "99.75"}
    assert (invoice["subtotal"], invoice["total"]) == ("0.25", "100.00")


def test_no_minimum_line_when_the_subtotal_reaches_the_minimum() -> None:
    invoice = rate(GROWTH, [event("deliveries", "40")], NOVEMBER).as_json()["invoices"][0]
    assert MINIMUM_COMMITMENT not in [entry["meter"] for entry in invoice["lines"]]
    assert invoice["total"] == "100.00"


def test_a_plan_without_minimum_has_no_minimum_line() -> None:
    priced = plan({"meter": "m", "model": "per_unit", "unit_price": "1"})
    invoice = rate(priced, [event("m", "0")], NOVEMBER).as_json()["invoices"][0]
    assert invoice["lines"] == [{"meter": "m", "quantity": "0", "amount": "0.00"}]
    assert invoice["total"] == "0.00"


@pytest.mark.parametrize(
    ("currency", "unit_price", "quantity", "amount"),
    [
        ("JPY", "0.5", "5", "3"),  # 2.5 rounds half-up to 3
        ("JPY", "0.5", "3", "2"),  # 1.5 → 2
        ("JPY", "0.49", "1", "0"),
        ("KWD", "0.0005", "3", "0.002"),  # 0.0015 → 0.002
        ("KWD", "0.0005", "1", "0.001"),
        ("KWD", "1.2345", "1", "1.235"),
        ("USD", "0.005", "1", "0.01"),
    ],
)
def test_lines_round_half_up_to_the_currency_minor_unit(
    currency: str, unit_price: str, quantity: str, amount: str
) -> None:
    priced = plan({"meter": "m", "model": "per_unit", "unit_price": unit_price}, currency=currency)
    assert line(rate(priced, [event("m", quantity)], NOVEMBER), "t1", "m") == (quantity, amount)


def test_subtotal_is_the_sum_of_rounded_lines() -> None:
    priced = plan(
        {"meter": "a", "model": "per_unit", "unit_price": "0.005"},
        {"meter": "b", "model": "per_unit", "unit_price": "0.005"},
    )
    invoice = rate(priced, [event("a"), event("b")], NOVEMBER).as_json()["invoices"][0]
    assert invoice["subtotal"] == "0.02"  # 0.01 + 0.01, not round(0.010)


def test_jpy_minimum_line_has_no_decimals() -> None:
    priced = plan(
        {"meter": "m", "model": "per_unit", "unit_price": "3"}, currency="JPY", minimum="1000"
    )
    invoice = rate(priced, [event("m", "10")], NOVEMBER).as_json()["invoices"][0]
    assert invoice["lines"][-1] == {"meter": MINIMUM_COMMITMENT, "quantity": "1", "amount": "970"}
    assert (invoice["subtotal"], invoice["total"]) == ("30", "1000")


# --- tenants, dedup, errors, period ------------------------------------------------------


def test_one_invoice_per_tenant_sorted_by_tenant_id() -> None:
    events = [event("deliveries", tenant=tenant) for tenant in ["t9", "t10", "a"]]
    tenants = [i["tenant"] for i in rate(GROWTH, events, NOVEMBER).as_json()["invoices"]]
    assert tenants == ["a", "t10", "t9"]


def test_a_tenant_with_only_zero_quantities_is_still_invoiced() -> None:
    result = rate(GROWTH, [event("deliveries", "0")], NOVEMBER)
    assert result.as_json()["invoices"][0]["total"] == "100.00"


def test_identical_repeats_are_ignored() -> None:
    first = event("deliveries", "1200", id="evt-1")
    repeat = event("deliveries", "1200.0", id="evt-1", at="2026-11-03T11:00:00+01:00")
    result = rate(GROWTH, [first, repeat, first], NOVEMBER)
    assert line(result, "t1", "deliveries") == ("1200", "2900.00")
    assert result.errors == ()


def test_a_conflicting_repeat_is_not_counted_and_is_reported() -> None:
    result = rate(
        GROWTH,
        [event("deliveries", "1200", id="evt-1"), event("deliveries", "5", id="evt-1")],
        NOVEMBER,
    )
    assert line(result, "t1", "deliveries") == ("1200", "2900.00")
    [error] = result.as_json()["errors"]
    assert error["event"] == "evt-1"
    assert 'quantity "5" instead of "1200"' in error["message"]
    assert error["message"].endswith("not counted")


def test_an_event_whose_meter_is_not_in_the_plan_is_reported_not_counted() -> None:
    result = rate(GROWTH, [event("teleports", id="evt-3"), event("deliveries")], NOVEMBER)
    assert result.as_json()["errors"] == [
        {"event": "evt-3", "message": 'meter "teleports" is not in plan "growth"; not counted'}
    ]
    assert len(result.invoices) == 1


def test_uncounted_events_alone_do_not_bill_a_minimum() -> None:
    result = rate(GROWTH, [event("teleports", tenant="t2")], NOVEMBER)
    assert result.invoices == {}
    assert len(result.errors) == 1


def test_a_unique_count_event_without_key_is_reported_not_counted() -> None:
    result = rate(GROWTH, [event("active_recipients", id="evt-4")], NOVEMBER)
    [error] = result.errors
    assert str(error) == (
        'event "evt-4": meter "active_recipients" counts distinct keys'
        ' but the event has no "key"; not counted'
    )


def test_duplicates_are_detected_across_periods() -> None:
    october = event("deliveries", "1", id="evt-1", at="2026-10-31T23:00:00Z")
    november = event("deliveries", "1", id="evt-1", at="2026-11-01T01:00:00Z")
    result = rate(GROWTH, [october, november], NOVEMBER)
    assert result.invoices == {}
    assert [error.event for error in result.errors] == ["evt-1"]


@pytest.mark.parametrize(
    ("at", "counted"),
    [
        ("2026-11-01T00:00:00Z", True),
        ("2026-10-31T23:59:59.999999Z", False),
        ("2026-11-30T23:59:59.999999Z", True),
        ("2026-12-01T00:00:00Z", False),
        ("2026-12-01T00:30:00+01:00", True),  # 23:30 UTC on 30 November
        ("2026-11-30T23:30:00-01:00", False),  # 00:30 UTC on 1 December
    ],
)
def test_period_is_start_inclusive_end_exclusive_in_utc(at: str, counted: bool) -> None:
    result = rate(GROWTH, [event("deliveries", at=at)], NOVEMBER)
    assert bool(result.invoices) is counted


def test_price_invoice_counts_absent_meters_as_zero() -> None:
    invoice = price_invoice(GROWTH, {"deliveries": Decimal(1200)})
    assert [(line.meter, line.amount) for line in invoice.lines] == [
        ("deliveries", Decimal("2900.00")),
        ("failed_attempts", Decimal("0.00")),
        ("parcel_kg", Decimal("0.00")),
        ("api_requests", Decimal("0.00")),
        ("active_recipients", Decimal("0.00")),
    ]


def test_price_invoice_refuses_a_meter_not_in_the_plan() -> None:
    with pytest.raises(PricingError, match='meter "teleports" is not in plan "growth"'):
        price_invoice(GROWTH, {"teleports": Decimal(1)})


def test_price_line_refuses_a_negative_quantity() -> None:
    with pytest.raises(PricingError, match='quantity "-1" is negative'):
        price_line(GROWTH.charges[0], Decimal(-1), USD)


def test_aggregate_refuses_unique_count_events_without_key() -> None:
    with pytest.raises(PricingError, match='event "e1": meter "m" counts distinct keys'):
        aggregate(Aggregation.UNIQUE_COUNT, [event("m", id="e1")])


def test_charges_check_their_invariants_when_built_directly() -> None:
    with pytest.raises(PricingError, match='model package needs "package_price"'):
        Charge("m", ChargeModel.PACKAGE, package_size=Decimal(10))


# --- bad plans, events and periods ---------------------------------------------------------


def broken(edit) -> dict[str, Any]:
    data = copy.deepcopy(CONTRACT_PLAN)
    edit(data)
    return data


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda p: p["charges"][2]["tiers"].insert(0, {"up_to": "600", "unit_price": "1"}),
            'charge 2 (meter "parcel_kg"): tiers are not in ascending up_to order',
        ),
        (
            lambda p: p["charges"][0]["tiers"].insert(1, {"up_to": "1000", "unit_price": "1"}),
            'charge 0 (meter "deliveries"): tiers are not in ascending up_to order',
        ),
        (
            lambda p: p["charges"][0]["tiers"].insert(0, {"up_to": None, "unit_price": "1"}),
            'charge 0 (meter "deliveries"): tier 0: up_to null is only allowed on the last tier',
        ),
        (
            lambda p: p["charges"][0]["tiers"].pop(),
            'charge 0 (meter "deliveries"): the last tier must have "up_to": null',
        ),
        (
            lambda p: p["charges"][0]["tiers"][0].update(up_to="0"),
            'charge 0 (meter "deliveries"): tier 0: up_to "0" must be positive',
        ),
        (
            lambda p: p["charges"][0]["tiers"][1].pop("up_to"),
            'charge 0 (meter "deliveries"): tier 1: "up_to" is missing',
        ),
        (
            lambda p: p["charges"][0].update(tiers=[]),
            'charge 0 (meter "deliveries"): "tiers" must be a non-empty list',
        ),
        (
            lambda p: p["charges"][0].update(model="flat"),
            'charge 0 (meter "deliveries"): unknown model "flat"'
            " (expected per_unit, graduated, volume, package)",
        ),
        (
            lambda p: p["charges"][1].pop("unit_price"),
            'charge 1 (meter "failed_attempts"): model per_unit needs "unit_price"',
        ),
        (
            lambda p: p["charges"][1].update(tiers=[{"up_to": None, "unit_price": "1"}]),
            'charge 1 (meter "failed_attempts"): "tiers" does not apply to model per_unit',
        ),
        (
            lambda p: p["charges"][1].update(unit_price="-1.00"),
            'charge 1 (meter "failed_attempts"): unit_price "-1.00" is negative',
        ),
        (
            lambda p: p["charges"][1].update(unit_price=1.0),
            'charge 1 (meter "failed_attempts"): unit_price 1.0 must be a decimal string',
        ),
        (
            lambda p: p["charges"][1].update(unit_price="one"),
            'charge 1 (meter "failed_attempts"): unit_price "one" is not a decimal number',
        ),
        (
            lambda p: p["charges"][1].update(free_unit="10"),
            'charge 1 (meter "failed_attempts"): unknown field "free_unit"',
        ),
        (
            lambda p: p["charges"][3].update(package_size="0"),
            'charge 3 (meter "api_requests"): package_size "0" must be positive',
        ),
        (
            lambda p: p["charges"][4].update(aggregation="avg"),
            'charge 4 (meter "active_recipients"): unknown aggregation "avg"'
            " (expected sum, count, max, unique_count)",
        ),
        (lambda p: p["charges"][4].pop("meter"), 'charge 4: "meter" is missing'),
        (
            lambda p: p["charges"][4].update(meter=MINIMUM_COMMITMENT),
            'charge 4 (meter "minimum_commitment"): meter "minimum_commitment" is reserved',
        ),
        (
            lambda p: p["charges"].append(p["charges"][0]),
            'plan: charge 5 (meter "deliveries") repeats the meter of charge 0',
        ),
        (lambda p: p.update(currency="XYZ"), 'plan: unknown currency "XYZ"'),
        (lambda p: p.update(currency=None), "plan: unknown currency null"),
        (
            lambda p: p.update(minimum="100.005"),
            'plan: minimum "100.005" has more digits than USD allows (2)',
        ),
        (lambda p: p.update(minimum="-1"), 'plan: minimum "-1" is negative'),
        (lambda p: p.update(charges=[]), 'plan: "charges" must be a non-empty list'),
        (lambda p: p.pop("code"), 'plan: "code" is missing'),
        (lambda p: p.update(code=""), 'plan: "code" must be a non-empty string, not ""'),
        (lambda p: p.update(name="Growth"), 'plan: unknown field "name"'),
    ],
)
def test_bad_plans_are_refused_naming_the_item(edit, message: str) -> None:
    with pytest.raises(PricingError) as raised:
        parse_plan(broken(edit))
    assert str(raised.value).startswith(message)


def test_a_plan_must_be_an_object() -> None:
    with pytest.raises(PricingError, match=r"plan: expected a JSON object, not \[\]"):
        parse_plan([])


GOOD_EVENT = {"id": "evt-7", "tenant": "t1", "meter": "deliveries", "quantity": "3",
              "at": "2026-11-03T10:00:00Z"}  # fmt: skip


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"quantity": "-3"}, 'event "evt-7": quantity "-3" is negative'),
        ({"quantity": "abc"}, 'event "evt-7": quantity "abc" is not a decimal number'),
        ({"quantity": "1e3"}, 'event "evt-7": quantity "1e3" is not a decimal number'),
        ({"quantity": 3}, 'event "evt-7": quantity 3 must be a decimal string'),
        ({"quantity": None}, 'event "evt-7": quantity null must be a decimal string'),
        ({"at": "2026-13-01"}, 'event "evt-7": malformed timestamp "2026-13-01"'),
        (
            {"at": "2026-13-01T00:00:00Z"},
            'event "evt-7": malformed timestamp "2026-13-01T00:00:00Z"',
        ),
        (
            {"at": "2026-11-01T00:00:00"},
            'event "evt-7": timestamp "2026-11-01T00:00:00" has no UTC offset',
        ),
        ({"at": 1793000000}, 'event "evt-7": timestamp 1793000000 must be a string'),
        ({"tenant": ""}, 'event "evt-7": "tenant" must be a non-empty string, not ""'),
        ({"meter": 5}, 'event "evt-7": "meter" must be a non-empty string, not 5'),
        ({"key": 5}, 'event "evt-7": "key" must be a string, not 5'),
        ({"key": ""}, 'event "evt-7": "key" must be a non-empty string when given'),
        ({"extra": 1}, 'event "evt-7": unknown field "extra"'),
        ({"id": ""}, 'event: "id" must be a non-empty string, not ""'),
    ],
)
def test_bad_events_are_refused_naming_the_event(change: dict[str, Any], message: str) -> None:
    with pytest.raises(PricingError) as raised:
        parse_event(GOOD_EVENT | change)
    assert str(raised.value).startswith(message)


def test_an_event_must_be_an_object_with_an_id() -> None:
    with pytest.raises(PricingError, match=r'^event: "id" is missing$'):
        parse_event({k: v for k, v in GOOD_EVENT.items() if k != "id"})
    with pytest.raises(PricingError, match=r"^event: expected a JSON object, not \[1\]$"):
        parse_event([1])


def test_an_event_without_key_reads_as_key_none() -> None:
    assert parse_event(GOOD_EVENT | {"key": None}).key is None


@pytest.mark.parametrize(
    "text", ["2026-13", "2026-00", "2026-1", "26-11", "2026/11", "", "0000-01"]
)
def test_invalid_periods_are_refused(text: str) -> None:
    with pytest.raises(PricingError, match=f'^invalid period "{text}": expected YYYY-MM'):
        parse_period(text)


def test_the_last_representable_period_is_refused() -> None:
    with pytest.raises(PricingError, match="past year 9999"):
        parse_period("9999-12")


def test_december_ends_at_the_next_new_year() -> None:
    december = parse_period("2026-12")
    assert (december.start, december.end) == (
        datetime(2026, 12, 1, tzinfo=UTC),
        datetime(2027, 1, 1, tzinfo=UTC),
    )
    assert str(december) == "2026-12"


# --- properties ---------------------------------------------------------------------------

amounts = st.decimals(min_value=0, max_value=100, places=4).map(lambda d: format(d, "f"))
quantities = st.decimals(min_value=0, max_value=5000, places=3)


@st.composite
def tier_lists(draw, bound=st.integers(min_value=1, max_value=300)) -> list[dict[str, Any]]:
    bounds = sorted(draw(st.sets(bound, max_size=4)))
    prices = draw(st.lists(amounts, min_size=len(bounds) + 1, max_size=len(bounds) + 1))
    ups: list[str | None] = [str(b) for b in bounds]
    return [{"up_to": up, "unit_price": p} for up, p in zip([*ups, None], prices, strict=True)]


@st.composite
def charge_dicts(draw, meter: str = "m") -> dict[str, Any]:
    model = draw(st.sampled_from(list(ChargeModel)))
    charge: dict[str, Any] = {"meter": meter, "model": str(model)}
    if model is ChargeModel.PER_UNIT:
        charge["unit_price"] = draw(amounts)
    elif model is ChargeModel.PACKAGE:
        charge["package_size"] = str(draw(st.integers(min_value=1, max_value=1000)))
        charge["package_price"] = draw(amounts)
    else:
        charge["tiers"] = draw(tier_lists())
    if draw(st.booleans()):
        charge["free_units"] = format(draw(quantities), "f")
    return charge


def single(charge: dict[str, Any], currency: str = "USD") -> Charge:
    return plan(charge, currency=currency).charges[0]


@given(tiers=tier_lists(), quantity=st.integers(min_value=0, max_value=400))
def test_graduated_equals_per_unit_pricing_of_each_unit_in_its_tier(
    tiers: list[dict[str, Any]], quantity: int
) -> None:
    def price_of_unit(n: int) -> Decimal:
        return next(
            Decimal(t["unit_price"]) for t in tiers if t["up_to"] is None or n <= int(t["up_to"])
        )

    expected = sum((price_of_unit(n) for n in range(1, quantity + 1)), Decimal(0))
    charge = single({"meter": "m", "model": "graduated", "tiers": tiers})
    assert price_line(charge, Decimal(quantity), USD).amount == round_half_up(expected, USD)


@given(tiers=tier_lists(), data=st.data())
def test_volume_charges_the_whole_quantity_at_one_tier_price(
    tiers: list[dict[str, Any]], data: st.DataObject
) -> None:
    for tier in tiers:  # two decimals and whole quantities: amounts need no rounding
        tier["unit_price"] = format(Decimal(tier["unit_price"]).quantize(Decimal("0.01")), "f")
    charge = single({"meter": "m", "model": "volume", "tiers": tiers})
    low, high = sorted(data.draw(st.lists(st.integers(1, 400), min_size=2, max_size=2)))
    price = {q: price_line(charge, Decimal(q), USD).amount / q for q in (low, high)}
    tier_of = {
        q: next(i for i, t in enumerate(tiers) if t["up_to"] is None or q <= int(t["up_to"]))
        for q in (low, high)
    }
    for q in (low, high):
        assert price[q] == Decimal(tiers[tier_of[q]]["unit_price"])
    if tier_of[low] == tier_of[high]:  # within one tier the amount only grows
        assert (
            price_line(charge, Decimal(low), USD).amount
            <= price_line(charge, Decimal(high), USD).amount
        )


@given(
    quantity=quantities,
    free=quantities,
    size=st.decimals(min_value="0.001", max_value=1000, places=3),
    price=amounts,
)
def test_package_is_ceil_of_billable_over_size(
    quantity: Decimal, free: Decimal, size: Decimal, price: str
) -> None:
    charge = single(
        {"meter": "m", "model": "package", "package_size": format(size, "f"),
         "package_price": price, "free_units": format(free, "f")}
    )  # fmt: skip
    billable = max(Fraction(quantity) - Fraction(free), Fraction(0))
    packages = math.ceil(billable / Fraction(size))
    expected = round_half_up(packages * Decimal(price), USD)
    assert price_line(charge, quantity, USD).amount == expected


@given(charge=charge_dicts(), quantity=quantities, extra_free=quantities)
def test_free_units_never_make_a_line_negative(
    charge: dict[str, Any], quantity: Decimal, extra_free: Decimal
) -> None:
    assert price_line(single(charge), quantity, USD).amount >= 0
    charge["free_units"] = format(quantity + extra_free, "f")
    assert price_line(single(charge), quantity, USD).amount == 0


@given(
    charges=st.lists(charge_dicts(), min_size=1, max_size=5),
    minimum=st.decimals(min_value=0, max_value=10000, places=2),
    currency=st.sampled_from(["USD", "JPY", "KWD"]),
    data=st.data(),
)
def test_invoice_arithmetic(
    charges: list[dict[str, Any]], minimum: Decimal, currency: str, data: st.DataObject
) -> None:
    for index, charge in enumerate(charges):
        charge["meter"] = f"m{index}"
    digits = currency_for(currency).minor_units
    minimum = round_half_up(minimum, currency_for(currency))
    priced = plan(*charges, currency=currency, minimum=format(minimum, "f"))
    quantities_by_meter = {c["meter"]: data.draw(quantities) for c in charges}
    invoice = price_invoice(priced, quantities_by_meter)

    charge_lines = [line for line in invoice.lines if line.meter != MINIMUM_COMMITMENT]
    assert [line.meter for line in charge_lines] == [c["meter"] for c in charges]
    assert sum(line.amount for line in charge_lines) == invoice.subtotal
    assert invoice.total >= minimum
    assert invoice.total == max(invoice.subtotal, minimum)
    assert (invoice.lines[-1].meter == MINIMUM_COMMITMENT) == (invoice.subtotal < minimum)
    assert sum(line.amount for line in invoice.lines) == invoice.total

    printed = invoice.as_json()
    for amount in [
        *(entry["amount"] for entry in printed["lines"]),
        printed["subtotal"],
        printed["total"],
    ]:
        whole, _, fraction = amount.partition(".")
        assert whole.isdigit() and "E" not in amount
        assert len(fraction) == digits


def random_events(draw) -> list[UsageEvent]:
    count = draw(st.integers(min_value=0, max_value=30))
    return [
        event(
            draw(
                st.sampled_from(
                    [
                        "deliveries",
                        "failed_attempts",
                        "parcel_kg",
                        "api_requests",
                        "active_recipients",
                    ]
                )
            ),
            format(draw(quantities), "f"),
            tenant=draw(st.sampled_from(["t1", "t2", "t3"])),
            key=draw(st.sampled_from(["r1", "r2", "r3"])),
            at=draw(st.sampled_from(["10-31", "11-01", "11-30", "12-01"])).join(
                ["2026-", "T00:00:00Z"]
            ),
            id=f"evt-{index}",
        )
        for index in range(count)
    ]


@given(data=st.data())
def test_replaying_a_stream_with_duplicates_gives_the_same_invoices(data: st.DataObject) -> None:
    events = random_events(data.draw)
    original = rate(GROWTH, events, NOVEMBER).as_json()
    replayed = events + data.draw(st.lists(st.sampled_from(events))) if events else []
    random.Random(data.draw(st.integers())).shuffle(replayed)
    assert rate(GROWTH, replayed, NOVEMBER).as_json() == original


@given(
    offsets=st.lists(st.integers(min_value=-3 * 86400, max_value=3 * 86400), max_size=20),
    boundary=st.sampled_from([NOVEMBER.start, NOVEMBER.end]),
)
def test_only_events_inside_the_period_count(offsets: list[int], boundary: datetime) -> None:
    instants = [boundary + timedelta(seconds=offset) for offset in [*offsets, 0]]
    events = [
        event("deliveries", at=instant.isoformat().replace("+00:00", "Z")) for instant in instants
    ]
    inside = sum(NOVEMBER.start <= instant < NOVEMBER.end for instant in instants)
    result = rate(GROWTH, events, NOVEMBER)
    if inside:
        assert line(result, "t1", "deliveries")[0] == str(inside)
    else:
        assert result.invoices == {}


def test_period_boundaries_are_what_the_contract_says() -> None:
    assert NOVEMBER.contains(NOVEMBER.start)
    assert not NOVEMBER.contains(NOVEMBER.end)
    assert Period(2026, 11) == NOVEMBER
