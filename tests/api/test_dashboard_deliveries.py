"""The dashboard's deliveries pages: the table, booking by form and by CSV, a delivery's
page, changes, export; and what a viewer and another merchant cannot do."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.factories import (
    BOOK,
    DELIVERY,
    booking_input,
    days_ahead,
    graphql,
    merchant_access_token,
)
from tests.people import csrf_of, make_user, sign_in


def browser_for(app, tenant_id: str, email: str, role: str = "owner") -> TestClient:
    client = TestClient(app, base_url="https://testserver")
    make_user(tenant_id, email, role=role)
    home = sign_in(client, email)
    assert home.status_code == 200, home.text
    client.csrf = csrf_of(home.text)  # type: ignore[attr-defined]
    return client


@pytest.fixture
def owner(app, demo) -> TestClient:
    return browser_for(app, demo["merchants"][0]["tenant_id"], "boss@acme.example")


def book_over_api(demo, reference: str, index: int = 0) -> str:
    from fastapi.testclient import TestClient as Client

    from services.api.app import create_app

    with Client(create_app()) as api:
        body = graphql(
            api, merchant_access_token(demo, index), BOOK, {"input": booking_input(reference)}
        )
    return body["data"]["bookDelivery"]["delivery"]["id"]


def form_for(reference: str, **overrides: str) -> dict[str, str]:
    values = booking_input(reference)
    form = {
        "reference": reference, "service_area": "demo", "lat": str(values["dropoff"]["lat"]),
        "lng": str(values["dropoff"]["lng"]), "line1": "1 Main St", "city": "Jersey City",
        "recipient_name": "Ada Lovelace", "recipient_email": "ada@example.com",
        "weight_grams": "1200", "date": days_ahead(1).isoformat(),
    }  # fmt: skip
    form.update(overrides)
    return form


def test_the_table_lists_and_searches_the_merchants_deliveries(owner, demo):
    book_over_api(demo, "ORDER-1")
    book_over_api(demo, "OTHER-2")
    book_over_api(demo, "THEIRS-3", index=1)
    page = owner.get("/dashboard/deliveries")
    assert "ORDER-1" in page.text and "OTHER-2" in page.text and "THEIRS-3" not in page.text
    found = owner.get("/dashboard/deliveries", params={"q": "order"})
    assert "ORDER-1" in found.text and "OTHER-2" not in found.text


def test_booking_by_form(owner):
    answer = owner.post(
        "/dashboard/deliveries", data={"csrf_token": owner.csrf, **form_for("WEB-1")}
    )
    assert answer.status_code == 200 and "Booked WEB-1" in answer.text
    assert "/dashboard/deliveries/dlv_" in str(answer.url)


def test_the_form_shows_the_domains_errors(owner):
    answer = owner.post(
        "/dashboard/deliveries",
        data={"csrf_token": owner.csrf, **form_for("WEB-2", lat="10.0", weight_grams="99999")},
    )
    assert answer.status_code == 422
    assert "outside service area" in answer.text and "at most 30000 g" in answer.text


def test_the_live_quote_offers_a_price_and_windows(owner):
    answer = owner.post(
        "/dashboard/deliveries/quote",
        data=form_for("Q-1"),
        headers={"X-CSRF-Token": owner.csrf},
    )
    assert answer.status_code == 200 and "USD" in answer.text and 'name="quote_id"' in answer.text


def test_csv_booking_reports_the_bad_row_and_books_the_rest(owner, demo):
    good = form_for("CSV-1")
    header = "reference,lat,lng,recipient_name,weight_grams,date\n"
    rows = [
        f"CSV-1,{good['lat']},{good['lng']},Ann,1000,{good['date']}",
        f"CSV-2,{good['lat']},{good['lng']},Ben,heavy,{good['date']}",
        f"CSV-3,10.0,10.0,Cy,1000,{good['date']}",
        f"CSV-4,{good['lat']},{good['lng']},Di,2000,{good['date']}",
    ]
    answer = owner.post(
        "/dashboard/deliveries/upload",
        data={"csrf_token": owner.csrf},
        files={"file": ("orders.csv", header + "\n".join(rows) + "\n", "text/csv")},
    )
    assert answer.status_code == 200
    assert "2 booked, 2 problems" in answer.text
    assert "Enter a whole number." in answer.text and "outside service area" in answer.text
    table = owner.get("/dashboard/deliveries").text
    assert "CSV-1" in table and "CSV-4" in table and "CSV-3" not in table


def test_a_delivery_page_cancel_and_export(owner, demo):
    delivery_id = book_over_api(demo, "PAGE-1")
    page = owner.get(f"/dashboard/deliveries/{delivery_id}")
    assert page.status_code == 200 and "Tracking timeline" in page.text and "data-map" in page.text
    done = owner.post(
        f"/dashboard/deliveries/{delivery_id}/cancel", data={"csrf_token": owner.csrf}
    )
    assert "Cancelled." in done.text
    exported = owner.get("/dashboard/deliveries/export.csv")
    assert exported.headers["content-type"].startswith("text/csv")
    assert "PAGE-1,CANCELLED" in exported.text


def test_another_merchants_delivery_is_not_found(app, owner, demo):
    theirs = book_over_api(demo, "THEIRS-1", index=1)
    assert owner.get(f"/dashboard/deliveries/{theirs}").status_code == 404
    refused = owner.post(f"/dashboard/deliveries/{theirs}/cancel", data={"csrf_token": owner.csrf})
    assert refused.status_code == 404  # back to a page that, for this merchant, does not exist
    theirs_now = graphql_delivery_status(demo, theirs, index=1)
    assert theirs_now == "BOOKED"


def graphql_delivery_status(demo, delivery_id: str, index: int) -> str:
    from services.api.app import create_app

    with TestClient(create_app()) as api:
        body = graphql(api, merchant_access_token(demo, index), DELIVERY, {"id": delivery_id})
    return body["data"]["delivery"]["status"]


def test_a_viewer_changes_nothing(app, demo):
    viewer = browser_for(app, demo["merchants"][0]["tenant_id"], "eve@acme.example", "viewer")
    delivery_id = book_over_api(demo, "VIEW-1")
    assert viewer.get("/dashboard/deliveries").status_code == 200
    assert "Book a delivery" not in viewer.get("/dashboard/deliveries").text
    assert viewer.get("/dashboard/deliveries/new").status_code == 403
    booked = viewer.post("/dashboard/deliveries", data={"csrf_token": viewer.csrf, **form_for("V")})
    assert booked.status_code == 403
    cancel = viewer.post(
        f"/dashboard/deliveries/{delivery_id}/cancel", data={"csrf_token": viewer.csrf}
    )
    assert cancel.status_code == 403
