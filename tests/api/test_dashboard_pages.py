"""The Developers, Billing and Team pages, and who may do what on them."""

from __future__ import annotations

import re

from tests.api.test_dashboard_deliveries import browser_for, owner  # noqa: F401
from tests.people import csrf_of

TOKEN_URL = "https://testserver/oauth/token"


def shown_secret(html: str) -> tuple[str, str]:
    match = re.search(
        r'<span class="muted">([^<]+)</span><br><code id="shown-secret">([^<]+)<', html
    )
    assert match, html[:3000]
    return match.group(1), match.group(2)


def token_status(client, client_id: str, secret: str) -> int:
    response = client.post(
        TOKEN_URL, data={"grant_type": "client_credentials"}, auth=(client_id, secret)
    )
    return response.status_code


def test_an_api_client_is_created_shown_once_rotated_with_overlap_and_revoked(owner):  # noqa: F811
    created = owner.post(
        "/dashboard/developers/clients",
        data={
            "csrf_token": owner.csrf,
            "name": "Warehouse",
            "scope": ["deliveries:read", "deliveries:write"],
        },
    )
    client_id, first = shown_secret(created.text)
    assert token_status(owner, client_id, first) == 200
    assert first not in owner.get("/dashboard/developers").text  # shown once
    rotated = owner.post(
        f"/dashboard/developers/clients/{client_id}/rotate",
        data={"csrf_token": owner.csrf, "overlap_hours": "24"},
    )
    _, second = shown_secret(rotated.text)
    assert token_status(owner, client_id, first) == 200  # the overlap
    assert token_status(owner, client_id, second) == 200
    owner.post(f"/dashboard/developers/clients/{client_id}/revoke", data={"csrf_token": owner.csrf})
    assert token_status(owner, client_id, second) == 401


def test_a_webhook_endpoint_gets_a_test_event_in_its_log(owner):  # noqa: F811
    created = owner.post(
        "/dashboard/developers/webhooks",
        data={
            "csrf_token": owner.csrf,
            "url": "https://hooks.example/lastmile",
            "event_type": ["delivery.planned"],
        },
    )
    endpoint_id, secret = shown_secret(created.text)
    assert secret.startswith("whsec_")
    sent = owner.post(
        f"/dashboard/developers/webhooks/{endpoint_id}/test", data={"csrf_token": owner.csrf}
    )
    assert "Test event sent" in sent.text and "webhook.test" in sent.text


def test_graphiql_gets_a_sandbox_token(owner):  # noqa: F811
    page = owner.get("/dashboard/developers/graphiql")
    token = re.search(r'data-token="([^"]+)"', page.text).group(1)
    answer = owner.post(
        "/graphql",
        json={"query": "{ deliveries(first: 1) { edges { node { id sandbox } } } }"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 200 and "errors" not in answer.json()
    from services.api.oauth.tokens import verify_access_token

    assert verify_access_token(token).sandbox


def test_billing_is_shown_to_owners_and_viewers_not_developers(app, owner, demo):  # noqa: F811
    assert owner.get("/dashboard/billing").status_code == 200
    assert "Usage this month" in owner.get("/dashboard/billing").text
    tenant = demo["merchants"][0]["tenant_id"]
    developer = browser_for(app, tenant, "dev@acme.example", "developer")
    assert developer.get("/dashboard/billing").status_code == 403
    assert developer.get("/dashboard/billing/invoices.csv").status_code == 403
    assert 'href="/dashboard/billing"' not in developer.get("/dashboard").text
    viewer = browser_for(app, tenant, "eve@acme.example", "viewer")
    assert viewer.get("/dashboard/billing").status_code == 200


def test_a_developer_cannot_grant_billing_scope(app, demo):
    developer = browser_for(app, demo["merchants"][0]["tenant_id"], "dev@acme.example", "developer")
    refused = developer.post(
        "/dashboard/developers/clients",
        data={"csrf_token": developer.csrf, "name": "x", "scope": ["billing:read"]},
    )
    assert refused.status_code == 422 and "cannot grant" in refused.text


def test_a_viewer_changes_nothing_on_developers_and_team(app, demo):
    viewer = browser_for(app, demo["merchants"][0]["tenant_id"], "eve@acme.example", "viewer")
    assert viewer.get("/dashboard/developers").status_code == 200
    assert "New API client" not in viewer.get("/dashboard/developers").text
    for path, data in [
        ("/dashboard/developers/clients", {"name": "x", "scope": "deliveries:read"}),
        (
            "/dashboard/developers/webhooks",
            {"url": "https://x.example", "event_type": "delivery.planned"},
        ),
        ("/dashboard/team/invitations", {"email": "x@example.com", "role": "owner"}),
        ("/dashboard/team/profile", {"name": "Evil"}),
    ]:
        assert viewer.post(path, data={"csrf_token": viewer.csrf, **data}).status_code == 403, path


def test_an_invitation_joins_a_teammate(app, owner, demo, mailbox):  # noqa: F811
    sent = owner.post(
        "/dashboard/team/invitations",
        data={"csrf_token": owner.csrf, "email": "new@acme.example", "role": "developer"},
    )
    assert "Invitation sent" in sent.text
    link = mailbox.last_link("new@acme.example")
    from fastapi.testclient import TestClient

    newcomer = TestClient(app, base_url="https://testserver")
    form = newcomer.get(link)
    joined = newcomer.post(
        link,
        data={"csrf_token": csrf_of(form.text), "name": "Nia", "password": "nia's long password"},
    )
    assert joined.status_code == 200 and "developer" in joined.text
    assert "new@acme.example" in owner.get("/dashboard/team").text


def test_the_profile_and_default_area_are_saved(owner):  # noqa: F811
    saved = owner.post(
        "/dashboard/team/profile",
        data={
            "csrf_token": owner.csrf,
            "name": "Acme Outfitters Ltd",
            "default_service_area": "demo",
            "support_email": "help@acme.example",
        },
    )
    assert "Company profile saved." in saved.text and "Acme Outfitters Ltd" in saved.text
