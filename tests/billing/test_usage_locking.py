"""Recording usage against a concurrent period close: one statement, and no event lost."""

from __future__ import annotations

import threading

import pytest
from sqlmodel import select

from services.billing import invoicing
from services.core.db import transaction
from services.core.models import BillingAccount, Invoice, Tenant, UsageEvent
from services.core.usage import record_usage
from tests.billing.conftest import usage
from tests.factories import statements_sent


@pytest.fixture
def postgresql(db):
    if db.dialect.name != "postgresql":
        pytest.skip("row locks and the single-statement insert are PostgreSQL's")
    return db


def test_every_tenant_has_a_billing_account_from_its_creation(db):
    with transaction() as session:
        tenant = Tenant(name="Dunlin")
        session.add(tenant)
        session.flush()
        account = session.get(BillingAccount, tenant.id)
    assert account is not None and account.closed_through is None


def test_recording_a_booking_is_one_statement(postgresql, tenants):
    acme = tenants[0]
    booking = [usage("d:booked", acme), usage("d:parcel_kg", acme, "parcel_kg", "2"),
               usage("d:recipient", acme, "active_recipients", key="r")]  # fmt: skip
    with transaction() as session:
        session.connection()  # begin first: BEGIN is not the recording's cost
        with statements_sent() as statements:
            assert record_usage(session, booking).recorded == 3
    assert len(statements) == 1 and statements[0].lstrip().startswith("WITH account")


def _record_in_thread(*events):
    """Record in another transaction; returns the thread and a dict it fills when done."""
    done: dict[str, object] = {}

    def run():
        with transaction() as session:
            done["report"] = record_usage(session, list(events))

    thread = threading.Thread(target=run)
    thread.start()
    return thread, done


def _billed() -> dict[str, str]:
    with transaction() as session:
        return dict(session.exec(select(UsageEvent.id, UsageEvent.billed_period)).all())


def test_usage_recorded_during_a_close_waits_and_is_billed_next_month(
    postgresql, tenants, record, ingest_path
):
    acme = tenants[0]
    record(usage("before", acme))
    with transaction() as session:
        invoicing.close_period(session, "2026-11", finalize=True)
        thread, done = _record_in_thread(usage("during", acme))
        thread.join(timeout=1)
        assert thread.is_alive() and not done  # held by the close's lock
    thread.join(timeout=10)
    assert _billed() == {"before": "2026-11", "during": "2026-12"}
    with transaction() as session:
        [invoice] = session.exec(select(Invoice).where(Invoice.period == "2026-11")).all()
    assert invoice.event_count == 1


def test_a_close_waits_for_usage_being_recorded_and_invoices_it(
    postgresql, tenants, record, ingest_path
):
    acme = tenants[0]
    record(usage("before", acme))
    closed: dict[str, invoicing.CloseReport] = {}

    def close():
        with transaction() as session:
            closed["report"] = invoicing.close_period(session, "2026-11", finalize=True)

    with transaction() as session:
        record_usage(session, [usage("during", acme)])
        closer = threading.Thread(target=close)
        closer.start()
        closer.join(timeout=1)
        assert closer.is_alive() and not closed  # waits for this recording to commit
    closer.join(timeout=10)
    assert closed["report"].finalized == 1
    assert _billed() == {"before": "2026-11", "during": "2026-11"}
    with transaction() as session:
        [invoice] = session.exec(select(Invoice).where(Invoice.period == "2026-11")).all()
    assert invoice.event_count == 2
