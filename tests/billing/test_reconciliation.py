"""Reconciliation: a clean ledger has no findings; every planted discrepancy is found."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from click.testing import CliRunner
from sqlalchemy import text, update
from sqlmodel import select

from services.billing import invoicing
from services.billing.cli import billing
from services.billing.consolidation import allocate_route_shares
from services.core.db import transaction, utcnow
from services.core.meters import Usage
from services.core.models import (
    BillingAccount,
    Delivery,
    DeliveryStatus,
    ReconciliationFinding,
    RouteAllocation,
)
from services.core.usage import period_of, record_usage
from tests.billing.world import book, demo, plan_by_hand


def _ledger():
    """Two merchants, booked, planned, allocated, their month closed and finalized."""
    now = utcnow()
    with transaction() as session:
        acme, bluebird = demo(session, now)
        a = book(session, acme, 3, now)
        b = book(session, bluebird, 2, now, offset=0.002)
        routes = plan_by_hand(session, [[a[0], b[0], a[1]], [a[2], b[1]]], 9_999)
        allocate_route_shares(session)
    with transaction() as session:
        invoicing.close_period(session, period_of(now), finalize=True)
    return acme, bluebird, a, b, routes, period_of(now)


def _run(period=None):
    result = CliRunner().invoke(
        billing, ["reconcile", "--json"] + (["--period", period] if period else [])
    )
    return result.exit_code, json.loads(result.stdout)


def test_a_clean_ledger_reconciles(db):
    *_, period = _ledger()
    code, document = _run(period)
    assert (code, document["ok"], document["findings"]) == (0, True, [])
    assert document["checked"]["deliveries"] == 5 and document["checked"]["routes"] == 2


def test_every_planted_discrepancy_is_found_and_stored(db):
    acme, bluebird, a, b, routes, period = _ledger()
    now = utcnow()
    with transaction() as session:
        # 1. a delivery without any usage (written behind the booking service's back)
        fields = a[0].model_dump(exclude={"tracking_token"})
        ghost = Delivery(**{**fields, "id": "dlv_ghost", "route_id": None,
                            "status": DeliveryStatus.BOOKED})  # fmt: skip
        session.add(ghost)
        # 2. delivered, but its `delivered` event was never recorded
        session.execute(update(Delivery).where(Delivery.id == a[1].id)
                        .values(status=DeliveryStatus.DELIVERED))  # fmt: skip
        # 3. a cancellation billed for a delivery that was not cancelled
        record_usage(session, [Usage(id=f"{b[0].id}:cancelled", tenant_id=bluebird,
                                     meter="cancellations", quantity=1, at=now)])  # fmt: skip
        # 4. usage slipped into the finalized period behind the ledger's back
        # 5. and an event billed to a month before it happened
        session.execute(
            text(
                "INSERT INTO usage_event (id, tenant_id, meter, quantity, at, period, "
                "billed_period, recorded_at) VALUES "
                "('sneaky', :t, 'deliveries', 1, :at, :p, :p, :at), "
                "('early', :t, 'api_requests', 1, :late, '2099-01', :p, :at)"
            ),
            {"t": acme, "at": now, "p": period, "late": datetime(2099, 1, 5, tzinfo=UTC)},
        )
        # 6. a route whose shares no longer add up to its cost
        session.execute(update(RouteAllocation).where(RouteAllocation.route_id == routes[1].id,
                        RouteAllocation.tenant_id == acme).values(amount_minor=1))  # fmt: skip
        # 7. a gap in Bluebird's invoice numbers
        session.execute(update(BillingAccount).where(BillingAccount.tenant_id == bluebird)
                        .values(last_invoice_number=2))  # fmt: skip
    code, document = _run(period)
    assert code == 1 and not document["ok"]
    found = {(f["check"], f["subject"]) for f in document["findings"]}
    assert ("delivery_usage", "dlv_ghost") in found
    assert ("delivery_usage", a[1].id) in found
    assert ("delivery_usage", b[0].id) in found
    assert ("usage_period", "early") in found
    assert ("route_allocation", routes[1].id) in found
    assert ("invoice_numbering", bluebird) in found
    assert any(c == "invoice_amounts" for c, _ in found)
    # The ghost lacks 3 events; the route has a bad share and a bad sum.
    assert len(document["findings"]) == 10
    with transaction() as session:
        stored = session.exec(select(ReconciliationFinding)).all()
    assert {f.run_id for f in stored} == {document["run_id"]} and len(stored) == 10


def test_a_bad_period_is_a_usage_error(db):
    result = CliRunner().invoke(billing, ["reconcile", "--period", "2026-13"])
    assert result.exit_code == 2 and "invalid period" in result.stderr
