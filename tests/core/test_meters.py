"""The usage-id contract: every id is spelled by one builder, and reconciliation expects
exactly the ids those builders make for a delivery's history."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from services.core import meters

AT = datetime(2026, 11, 3, 10, tzinfo=UTC)


def test_a_booking_is_billed_per_delivery_and_kg_or_at_its_quoted_price():
    plain = meters.booking_usage("dlv_1", "ten_1", AT, "demo", 2500, "Ada", None)
    assert {(u.id, u.meter, u.quantity) for u in plain} == {
        ("dlv_1:booked", "deliveries", Decimal(1)),
        ("dlv_1:parcel_kg", "parcel_kg", Decimal("2.5")),
        ("dlv_1:recipient", "active_recipients", Decimal(1)),
    }
    quoted = meters.booking_usage("dlv_1", "ten_1", AT, "demo", 2500, "Ada", Decimal("4.10"))
    assert {(u.id, u.meter, u.quantity) for u in quoted} == {
        ("dlv_1:quoted", "quoted_amount", Decimal("4.10")),
        ("dlv_1:recipient", "active_recipients", Decimal(1)),
    }


def test_the_same_recipient_written_differently_counts_once():
    first = meters.booking_usage("dlv_1", "t", AT, "demo", 1, " Ada@Example.com ", None)[-1]
    second = meters.booking_usage("dlv_2", "t", AT, "demo", 1, "ada@example.com", None)[-1]
    assert first.key == second.key is not None


def test_expected_ids_follow_the_builders_for_a_whole_history():
    expected = meters.expected_delivery_usage_ids(
        "dlv_1", quoted=False, planned=True, delivered=False, cancelled=True,
        cancelled_late=True, failures=2,
    )  # fmt: skip
    built = {
        *(u.id for u in meters.booking_usage("dlv_1", "t", AT, "demo", 1, "Ada", None)),
        meters.route_km_usage("dlv_1", "t", Decimal(1), AT, "demo").id,
        meters.cancelled_usage("dlv_1", "t", AT).id,
        meters.late_cancellation_usage("dlv_1", "t", AT, "demo").id,
        meters.failed_attempt_usage("dlv_1", "t", 1, AT).id,
        meters.failed_attempt_usage("dlv_1", "t", 2, AT).id,
    }
    assert expected == built


def test_route_cost_revisions_after_the_first_carry_their_number():
    first = meters.route_cost_usage("rte_1", "ten_1", 1, Decimal("3.10"), AT, "demo")
    assert (first.id, first.meter) == ("rte_1:ten_1:route_cost", "route_cost")
    assert meters.route_cost_usage_id("rte_1", "ten_1", 3) == "rte_1:ten_1:route_cost:3"


def test_attempts_are_numbered_from_one():
    with pytest.raises(ValueError, match="attempt must be 1 or more"):
        meters.failed_attempt_usage("dlv_1", "t", 0, AT)


def test_every_meter_is_described_and_delivery_meters_are_meters():
    assert set(meters.DELIVERY_METERS) <= meters.METERS == set(meters.CATALOGUE)
