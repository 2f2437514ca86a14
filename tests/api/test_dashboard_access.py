"""Signing up, verifying, signing in to the dashboard and out again, through the pages."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.people import csrf_of, make_user, sign_in


def test_sign_up_verify_and_reach_the_dashboard(client: TestClient, demo, mailbox):
    client.base_url = "https://testserver"
    page = client.get("/signup")
    answer = client.post(
        "/signup",
        data={"csrf_token": csrf_of(page.text), "company": "Pine Goods", "name": "Pat",
              "email": "pat@pine.example", "password": "pat's long password"},
    )  # fmt: skip
    assert answer.status_code == 200 and "Check your inbox" in answer.text
    refused = sign_in(client, "pat@pine.example", "pat's long password")
    assert refused.status_code == 401 and "Verify your e-mail" in refused.text
    link = mailbox.last_link("pat@pine.example")
    assert client.get(link).status_code == 200
    home = sign_in(client, "pat@pine.example", "pat's long password")
    assert home.status_code == 200 and "Overview" in home.text and "Pine Goods" in home.text
    assert home.url.path == "/dashboard"


def test_sign_up_shows_what_is_wrong(client: TestClient, db):
    client.base_url = "https://testserver"
    page = client.get("/signup")
    answer = client.post(
        "/signup",
        data={"csrf_token": csrf_of(page.text), "company": "", "name": "Pat",
              "email": "nope", "password": "short"},
    )  # fmt: skip
    assert answer.status_code == 422
    assert "Enter an e-mail address." in answer.text and "at least 10" in answer.text


def test_forms_without_the_csrf_token_are_refused(client: TestClient, demo):
    client.base_url = "https://testserver"
    make_user(demo["merchants"][0]["tenant_id"], "owner@acme.example")
    client.get("/signin")
    answer = client.post("/signin", data={"email": "owner@acme.example", "password": "x" * 12})
    assert answer.status_code == 403
    sign_in(client, "owner@acme.example")
    assert client.post("/signout", data={"csrf_token": "forged"}).status_code == 403


def test_the_dashboard_needs_a_signed_in_user(client: TestClient, db):
    client.base_url = "https://testserver"
    answer = client.get("/dashboard?x=1", follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"].startswith("/signin?next=")


def test_the_session_cookie_is_httponly_samesite_and_secure(client: TestClient, demo):
    client.base_url = "https://testserver"
    make_user(demo["merchants"][0]["tenant_id"], "owner@acme.example")
    page = client.get("/signin")
    answer = client.post(
        "/signin",
        data={"csrf_token": csrf_of(page.text), "email": "owner@acme.example",
              "password": "correct horse battery"},
        follow_redirects=False,
    )  # fmt: skip
    cookie = answer.headers["set-cookie"].lower()
    assert "lm_session=" in cookie and "httponly" in cookie and "secure" in cookie
    assert "samesite=lax" in cookie


def test_sign_out_everywhere_ends_every_session(app, demo):
    make_user(demo["merchants"][0]["tenant_id"], "owner@acme.example")
    with (
        TestClient(app, base_url="https://testserver") as laptop,
        TestClient(app, base_url="https://testserver") as phone,
    ):
        sign_in(laptop, "owner@acme.example")
        home = sign_in(phone, "owner@acme.example")
        assert laptop.get("/dashboard").status_code == 200
        phone.post("/signout/everywhere", data={"csrf_token": csrf_of(home.text)})
        gone = laptop.get("/dashboard", follow_redirects=False)
        assert gone.status_code == 303 and gone.headers["location"].startswith("/signin")


def test_a_wrong_password_is_refused_without_saying_which_part(client: TestClient, demo):
    client.base_url = "https://testserver"
    make_user(demo["merchants"][0]["tenant_id"], "owner@acme.example")
    wrong = sign_in(client, "owner@acme.example", "not the password")
    unknown = sign_in(client, "nobody@acme.example", "not the password")
    assert wrong.status_code == unknown.status_code == 401
    assert "The e-mail address or the password is wrong." in wrong.text
    assert "The e-mail address or the password is wrong." in unknown.text


def test_the_demo_seed_has_an_owner_who_signs_in(client: TestClient, db):
    from services.api.seed import seed_demo
    from services.core.db import transaction, utcnow

    client.base_url = "https://testserver"
    with transaction() as session:
        merchant = seed_demo(session, utcnow().date(), with_owners=True)["merchants"][0]
    home = sign_in(client, merchant["dashboard_email"], merchant["dashboard_password"])
    assert home.status_code == 200 and merchant["name"] in home.text
