"""Merchants read their usage, invoices and route shares over GraphQL and CSV."""

from __future__ import annotations

import csv
import io

from services.api.seed import seed_demo
from services.billing import invoicing
from services.billing.consolidation import allocate_route_shares
from services.core.db import transaction, utcnow
from services.core.usage import period_of
from tests.billing.world import book, plan_by_hand
from tests.factories import graphql, token

QUERY = """
query($from: Date!, $to: Date!) {
  usage(from: $from, to: $to) { day meter quantity events }
  invoices(first: 10) { edges { node { number period status total
                                       lines { kind meter quantity amount } } } }
  routeCostShares(from: $from, to: $to) { routeId stops amount currency method }
  invoicePreview { period total }
}"""


def test_a_merchant_sees_only_its_own_billing(client, db):
    now = utcnow()
    with transaction() as session:
        demo = seed_demo(session, now.date())
        acme, bluebird = (m["tenant_id"] for m in demo["merchants"])
        a = book(session, acme, 2, now)
        b = book(session, bluebird, 1, now, offset=0.002)
        routes = plan_by_hand(session, [[a[0], b[0], a[1]]], 5_000)
        allocate_route_shares(session)
        invoicing.close_period(session, period_of(now), finalize=True)
    merchant = demo["merchants"][0]
    access = token(client, merchant["client_id"], merchant["client_secret"])
    day = now.date().isoformat()
    later = routes[0].date.toordinal() + 1
    to = type(routes[0].date).fromordinal(later).isoformat()
    data = graphql(client, access, QUERY, {"from": day, "to": to})["data"]
    usage = {row["meter"]: row for row in data["usage"]}
    assert usage["deliveries"]["quantity"] == "2" and usage["route_km"]["events"] == 2
    [invoice] = [edge["node"] for edge in data["invoices"]["edges"]]
    assert (invoice["number"], invoice["status"]) == (1, "finalized")
    assert invoice["lines"][0] == {"kind": "charge", "meter": "deliveries", "quantity": "2",
                                   "amount": "5.00"}  # fmt: skip
    [share] = data["routeCostShares"]
    assert share["stops"] == 2 and share["currency"] == "USD"
    assert bluebird not in str(data)  # never another merchant's name or stops

    response = client.get("/billing/export/invoices.csv",
                          headers={"Authorization": f"Bearer {access}"})  # fmt: skip
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert rows[0]["meter"] == "deliveries" and rows[0]["amount"] == "5.00"
    usage_csv = client.get(f"/billing/export/usage.csv?from={day}&to={to}",
                           headers={"Authorization": f"Bearer {access}"})  # fmt: skip
    assert "deliveries" in usage_csv.text and bluebird not in usage_csv.text
    assert client.get("/billing/export/invoices.csv").status_code == 401
    bad = client.get(f"/billing/export/usage.csv?from={to}&to={day}",
                     headers={"Authorization": f"Bearer {access}"})  # fmt: skip
    assert bad.status_code == 422
