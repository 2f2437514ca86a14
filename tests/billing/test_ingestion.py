"""Recording usage: idempotent by id, conflicts reported, bad input writes nothing."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import func
from sqlmodel import select

from services.billing import invoicing
from services.billing.metering import parse_usage, usage_for_status_change
from services.core.db import transaction
from services.core.models import Delivery, DeliveryStatus, UsageEvent
from services.core.usage import UsageError, record_usage
from tests.billing.conftest import usage


def _count() -> int:
    with transaction() as session:
        return session.exec(select(func.count()).select_from(UsageEvent)).one()


def test_repeats_are_no_ops_and_conflicting_repeats_are_reported(tenants, record):
    acme = tenants[0]
    first = record(usage("e1", acme), usage("e2", acme, "parcel_kg", "2.5"))
    assert (first.recorded, first.duplicates, first.conflicts) == (2, 0, [])
    again = record(usage("e1", acme), usage("e2", acme, "parcel_kg", "2.500"),
                   usage("e2", acme, "parcel_kg", "3"))  # fmt: skip
    assert (again.recorded, again.duplicates) == (0, 2)
    [conflict] = again.conflicts
    assert conflict.id == "e2" and conflict.differences == ("quantity",)
    assert _count() == 2


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (dict(meter="teleports"), "unknown meter 'teleports'"),
        (dict(quantity="-1"), "negative"),
        (dict(quantity="0.0000001"), "more than 6 decimals"),
    ],
)
def test_bad_events_name_the_event_and_write_nothing(tenants, bad, message):
    acme = tenants[0]
    kwargs = {"meter": "deliveries", "quantity": "1", **bad}
    with pytest.raises(UsageError, match=message) as error, transaction() as session:
        record_usage(session, [usage("ok", acme), usage("bad-1", acme, **kwargs)])
    assert "bad-1" in str(error.value)
    assert _count() == 0


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ({"quantity": 1}, "decimal string"),
        ({"quantity": "abc"}, "not a decimal"),
        ({"at": "2026-13-45T00:00:00Z"}, "malformed timestamp"),
        ({"at": "2026-11-03 10:00"}, "malformed timestamp"),
        ({"meter": "teleports"}, "unknown meter"),
    ],
)
def test_json_events_are_checked_like_billing_rate(line, message):
    event = {"id": "evt-9", "tenant": "t1", "meter": "deliveries", "quantity": "1",
             "at": "2026-11-03T10:00:00Z", **line}  # fmt: skip
    with pytest.raises(UsageError, match=message) as error:
        parse_usage(event, "line 3")
    assert "line 3" in str(error.value)


def test_dimensions_are_kept(tenants):
    event = parse_usage(
        {"id": "x", "tenant": tenants[0], "meter": "deliveries", "quantity": "1",
         "at": "2026-11-03T10:00:00Z", "area": "demo", "service_level": "same_day"}, "line 1"
    )  # fmt: skip
    assert (event.area_code, event.service_level) == ("demo", "same_day")


def test_late_events_go_to_the_first_open_period(tenants, record):
    acme = tenants[0]
    record(usage("n1", acme))
    with transaction() as session:
        invoicing.close_period(session, "2026-11", finalize=True)
    record(usage("n2", acme), usage("o1", acme, when="2026-10-30"))
    with transaction() as session:
        billed = dict(session.exec(select(UsageEvent.id, UsageEvent.billed_period)).all())
    assert billed == {"n1": "2026-11", "n2": "2026-12", "o1": "2026-12"}


def test_status_changes_have_documented_usage_ids():
    delivery = Delivery(id="dlv_1", tenant_id="ten_1")
    at = usage("x", "t").at
    assert usage_for_status_change(delivery, DeliveryStatus.PLANNED, at) == []
    [failed] = usage_for_status_change(delivery, DeliveryStatus.FAILED, at, attempt=2)
    assert (failed.id, failed.meter, failed.quantity) == ("dlv_1:failed:2", "failed_attempts",
                                                          Decimal(1))  # fmt: skip
    [cancelled] = usage_for_status_change(delivery, DeliveryStatus.CANCELLED, at)
    assert cancelled.id == "dlv_1:cancelled"
    [delivered] = usage_for_status_change(delivery, DeliveryStatus.DELIVERED, at)
    assert delivered.id == "dlv_1:delivered"
