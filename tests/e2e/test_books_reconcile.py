"""Every path a delivery can take leaves exactly the usage reconciliation expects."""

from __future__ import annotations

from datetime import date

from services.api.seed import seed_demo
from services.billing.quoting import marginal_price
from services.billing.reconciliation import reconcile
from services.core.db import transaction, utcnow
from services.core.models import Delivery
from services.core.principal import Merchant
from services.deliveries import booking, lifecycle, quotes, repository, validation
from tests.factories import plan_demo_day


def _request(reference: str, **extra) -> booking.BookingRequest:
    return booking.BookingRequest(
        reference=reference,
        service_area="demo",
        dropoff=validation.Dropoff(lat=40.70 + len(reference) * 0.003, lng=-74.0),
        recipient=validation.Recipient(name=f"R {reference}"),
        parcel=validation.Parcel(weight_grams=1500),
        **extra,
    )


def _plan(day: date) -> None:
    assert plan_demo_day(day).status == "DONE"


def test_the_books_reconcile_after_every_kind_of_delivery_life(db):
    now = utcnow()
    with transaction() as session:
        tenant = seed_demo(session, now.date())["merchants"][0]["tenant_id"]
        ids = {
            name: booking.book(session, tenant, _request(name), now).id
            for name in ("delivered", "failed", "cancelled-early", "cancelled-late", "moved")
        }
        ids["sandbox"] = booking.book(session, tenant, _request("sandbox"), now, sandbox=True).id
        quote = quotes.create_quote(
            session,
            tenant,
            quotes.QuoteRequest("demo", _request("quoted").dropoff, _request("quoted").parcel),
            now,
            marginal_price,
        )
        ids["quoted"] = booking.book(
            session, tenant, _request("quoted", quote_id=quote.id, date=quote.date), now
        ).id
        day = session.get(Delivery, ids["delivered"]).date
    with transaction() as session:
        lifecycle.cancel(
            session, repository.lock(session, Merchant(tenant), ids["cancelled-early"]), now, None
        )
    _plan(day)

    def act(name: str, change) -> None:
        with transaction() as session:
            change(session, repository.lock(session, None, ids[name]))

    act("delivered", lambda s, d: lifecycle.start(s, d, utcnow(), None))
    act("delivered", lambda s, d: lifecycle.deliver(s, d, utcnow(), lifecycle.Proof(pin="1"), None))
    act("failed", lambda s, d: lifecycle.start(s, d, utcnow(), None))
    act(
        "failed",
        lambda s, d: lifecycle.fail(s, d, utcnow(), lifecycle.FailureReason.REFUSED, None, None),
    )
    act("cancelled-late", lambda s, d: lifecycle.cancel(s, d, utcnow(), "changed mind"))
    act("moved", lambda s, d: lifecycle.reschedule(s, d, utcnow(), None, None))
    act("sandbox", lambda s, d: lifecycle.simulate(
        s, d, utcnow(), lifecycle.DeliveryStatus.DELIVERED, lifecycle.FailureReason.OTHER
    ))  # fmt: skip

    with transaction() as session:
        result = reconcile(session)
    delivery_findings = [f for f in result.findings if f.check == "delivery_usage"]
    assert delivery_findings == []
