"""Invoices from stored usage: drafts, finalizing, numbering, late usage, corrections."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy.exc import DBAPIError
from sqlmodel import select

from services.billing import invoicing
from services.billing.invoicing import InvoiceError
from services.core.db import transaction
from services.core.models import Invoice, InvoiceLine, InvoiceStatus
from tests.billing.conftest import usage


def _close(period: str, finalize: bool) -> invoicing.CloseReport:
    with transaction() as session:
        return invoicing.close_period(session, period, finalize)


def _invoices(period: str) -> dict[str, Invoice]:
    with transaction() as session:
        rows = session.exec(select(Invoice).where(Invoice.period == period)).all()
        return {row.tenant_id: row for row in rows}


def _lines(invoice_id: str) -> list[tuple[str, str, str, int, str | None]]:
    with transaction() as session:
        rows = session.exec(
            select(InvoiceLine)
            .where(InvoiceLine.invoice_id == invoice_id)
            .order_by(InvoiceLine.position)
        ).all()
        return [
            (r.kind.value, r.meter, format(r.quantity.normalize(), "f"), r.amount_minor,
             r.adjusts_period)
            for r in rows
        ]  # fmt: skip


def test_a_draft_is_priced_from_usage_and_rerunning_changes_nothing(tenants, record):
    acme, bluebird, _ = tenants
    record(*(usage(f"a{i}", acme) for i in range(1200)))
    record(usage("b1", bluebird, "parcel_kg", "600"), usage("x", acme, when="2026-12-01"))
    first = _close("2026-11", finalize=False)
    assert (first.drafted, first.finalized) == (2, 0)
    invoices = _invoices("2026-11")
    assert invoices[acme].status is InvoiceStatus.DRAFT and invoices[acme].number is None
    assert invoices[acme].total_minor == 290000  # 1000 x 2.50 + 200 x 2.00
    assert _lines(invoices[acme].id)[0] == ("charge", "deliveries", "1200", 290000, None)
    # Bluebird: 600 kg at the volume price 0.08 = 48.00, below the 100.00 minimum.
    assert _lines(invoices[bluebird].id)[-1] == ("minimum", "minimum_commitment", "1", 5200, None)
    assert invoices[bluebird].total_minor == 10000
    again = _close("2026-11", finalize=False)
    assert (again.drafted, again.updated, again.unchanged) == (0, 0, 2)


def test_usage_arriving_while_draft_updates_the_draft(tenants, record):
    acme = tenants[0]
    record(usage("a1", acme))
    _close("2026-11", finalize=False)
    record(usage("a2", acme, "parcel_kg", "2000"))
    assert _close("2026-11", finalize=False).updated == 1
    assert _invoices("2026-11")[acme].total_minor == 250 + 16000


def test_finalizing_numbers_per_tenant_without_gaps_and_is_idempotent(tenants, record):
    acme, bluebird, _ = tenants
    for month in ("2026-09", "2026-10", "2026-11"):
        record(usage(f"a-{month}", acme, when=f"{month}-05"))
        if month != "2026-10":
            record(usage(f"b-{month}", bluebird, when=f"{month}-05"))
        report = _close(month, finalize=True)
        assert report.finalized == (1 if month == "2026-10" else 2)
        assert _close(month, finalize=True).finalized == 0
    numbers = {
        tenant: [_invoices(m)[tenant].number for m in ("2026-09", "2026-10", "2026-11")
                 if tenant in _invoices(m)]
        for tenant in (acme, bluebird)
    }  # fmt: skip
    assert numbers == {acme: [1, 2, 3], bluebird: [1, 2]}


def test_late_usage_after_finalizing_is_billed_next_period_as_an_adjustment(tenants, record):
    acme = tenants[0]
    record(*(usage(f"a{i}", acme) for i in range(999)))
    _close("2026-10", finalize=False)  # nothing in October
    _close("2026-11", finalize=True)
    november = _invoices("2026-11")[acme]
    assert november.total_minor == 249750
    # Two late November deliveries: the 1000th at 2.50, the 1001st in the 2.00 tier.
    report = record(
        usage("late-1", acme), usage("late-2", acme), usage("d1", acme, when="2026-12-02")
    )
    assert report.recorded == 3
    _close("2026-11", finalize=True)
    assert _invoices("2026-11")[acme].total_minor == 249750  # never rewritten
    _close("2026-12", finalize=False)
    december = _invoices("2026-12")[acme]
    lines = _lines(december.id)
    assert ("adjustment", "deliveries", "2", 450, "2026-11") in lines
    assert lines[0] == ("charge", "deliveries", "1", 250, None)
    assert december.total_minor == 10000 + 450  # December's minimum plus the adjustment


def test_a_finalized_invoice_cannot_change(tenants, record, session):
    acme = tenants[0]
    record(usage("a1", acme))
    _close("2026-11", finalize=True)
    invoice = _invoices("2026-11")[acme]
    if session.get_bind().dialect.name == "postgresql":
        with pytest.raises(DBAPIError, match="finalized"), transaction() as tx:
            tx.get(Invoice, invoice.id).total_minor = 1
    with transaction() as tx, pytest.raises(InvoiceError, match="only finalized"):
        invoicing.void_invoice(tx, invoice.id, "wrong customer")
        invoicing.void_invoice(tx, invoice.id, "twice")


def test_credit_notes_are_numbered_and_never_exceed_the_invoice(tenants, record):
    acme = tenants[0]
    record(usage("a1", acme))
    _close("2026-11", finalize=True)
    invoice = _invoices("2026-11")[acme]
    with transaction() as session:
        first = invoicing.issue_credit_note(session, invoice.id, Decimal("60.00"), "goodwill")
        second = invoicing.issue_credit_note(session, invoice.id, Decimal("40.00"), "goodwill")
    assert (first.number, second.number) == (1, 2)
    with transaction() as session, pytest.raises(InvoiceError, match="exceeds"):
        invoicing.issue_credit_note(session, invoice.id, Decimal("0.01"), "too much")
    with transaction() as session, pytest.raises(InvoiceError, match="minor units"):
        invoicing.issue_credit_note(session, invoice.id, Decimal("0.001"), "fraction")
