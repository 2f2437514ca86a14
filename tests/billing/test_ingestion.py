"""Recording usage: idempotent by id, conflicts reported, bad input writes nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, func
from sqlmodel import select

from services.billing import invoicing
from services.billing.metering import parse_usage
from services.core.db import transaction
from services.core.models import BillingAccount, UsageEvent
from services.core.usage import COPY_THRESHOLD, UsageError, record_usage
from tests.billing.conftest import usage


def _count() -> int:
    with transaction() as session:
        return session.exec(select(func.count()).select_from(UsageEvent)).one()


def test_repeats_are_no_ops_and_conflicting_repeats_are_reported(tenants, record, ingest_path):
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
        (dict(key="nul\x00"), "NUL character"),
    ],
)
def test_bad_events_name_the_event_and_write_nothing(tenants, bad, message, ingest_path):
    acme = tenants[0]
    kwargs = {"meter": "deliveries", "quantity": "1", **bad}
    with pytest.raises(UsageError, match=message) as error, transaction() as session:
        record_usage(session, [usage("ok", acme), usage("bad-1", acme, **kwargs)])
    assert "bad-1" in str(error.value)
    assert _count() == 0


def test_an_unknown_tenant_names_the_event_and_nothing_of_the_batch_is_written(
    tenants, ingest_path
):
    acme = tenants[0]
    batch = [usage("ok", acme), usage("bad-1", "ten_nobody"), usage("bad-2", "ten_other")]
    with transaction() as session:  # even a caller that carries on commits nothing of it
        with pytest.raises(UsageError) as error:
            record_usage(session, batch)
        record_usage(session, [usage("after", acme)])
    assert str(error.value) == "usage event 'bad-1': unknown tenant 'ten_nobody'"
    with transaction() as session:
        assert session.exec(select(UsageEvent.id)).all() == ["after"]


def test_a_big_batch_sorts_new_duplicate_and_conflicting_events(tenants, record):
    acme, bluebird = tenants[:2]
    record(usage("e-0", acme), usage("e-1", acme, "parcel_kg", "2"))
    fresh = [usage(f"e-{n}", (acme, bluebird)[n % 2]) for n in range(2, COPY_THRESHOLD + 10)]
    report = record(usage("e-0", acme), usage("e-1", acme, "parcel_kg", "3"), *fresh,
                    usage("e-5", acme))  # fmt: skip
    assert (report.recorded, report.duplicates) == (len(fresh), 1)
    assert [(c.id, c.differences) for c in report.conflicts] == [
        ("e-5", ("tenant_id",)), ("e-1", ("quantity",))]  # fmt: skip
    assert _count() == len(fresh) + 2


@pytest.mark.parametrize(
    "text", ["tab\there", "new\nline", "cr\rlf", "back\\slash", "\\N", "ünïcode ✓", "a\\tb"]
)
def test_any_text_is_stored_exactly_and_repeats_as_a_duplicate(tenants, record, ingest_path,
                                                               text):  # fmt: skip
    acme = tenants[0]
    odd = usage(f"id {text}", acme, "active_recipients", key=text, area_code=text,
                service_level=text)  # fmt: skip
    assert record(odd, usage("plain", acme)).recorded == 2
    with transaction() as session:
        stored = session.get_one(UsageEvent, odd.id)
    assert (stored.key, stored.area_code, stored.service_level) == (text, text, text)
    assert record(odd).duplicates == 1


def test_an_account_with_usage_cannot_be_deleted(tenants, record, db):
    if db.dialect.name != "postgresql":
        pytest.skip("the guard is a PostgreSQL trigger, as usage's append-only ones")
    acme = tenants[0]
    record(usage("e1", acme))
    with pytest.raises(Exception, match="has usage events"), transaction() as session:
        session.execute(delete(BillingAccount).where(BillingAccount.tenant_id == acme))  # type: ignore[arg-type]


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


def test_late_events_go_to_the_first_open_period(tenants, record, ingest_path):
    acme = tenants[0]
    record(usage("n1", acme))
    with transaction() as session:
        invoicing.close_period(session, "2026-11", finalize=True)
    record(usage("n2", acme), usage("o1", acme, when="2026-10-30"))
    with transaction() as session:
        billed = dict(session.exec(select(UsageEvent.id, UsageEvent.billed_period)).all())
    assert billed == {"n1": "2026-11", "n2": "2026-12", "o1": "2026-12"}
