"""Authorization code + PKCE, refresh-token rotation, revocation and introspection: the
grants through which people give access, and each way they must refuse."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.api.oauth.clients import create_app, create_client
from services.core.db import transaction
from tests.factories import DELIVERIES, graphql
from tests.people import csrf_of, make_user, pkce_pair, query_of, sign_in

TOKEN_URL = "https://testserver/oauth/token"
REDIRECT = "https://app.example/callback"


@pytest.fixture
def app_client(db) -> tuple[str, str]:
    """A third-party confidential app (its id and secret)."""
    with transaction() as session:
        row, secret = create_app(
            session, name="Route Insights", redirect_uris=[REDIRECT], public=False
        )
    assert secret is not None
    return row.client_id, secret


@pytest.fixture
def browser(client: TestClient, demo) -> TestClient:
    """A browser signed in as the owner of the first demo merchant."""
    client.base_url = "https://testserver"
    make_user(demo["merchants"][0]["tenant_id"], "owner@acme.example")
    assert sign_in(client, "owner@acme.example").status_code == 200
    return client


def authorize(browser: TestClient, client_id: str, **overrides: Any) -> Any:
    verifier, challenge = pkce_pair()
    params = {
        "response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT,
        "scope": "deliveries:read billing:read", "state": "xyz",
        "code_challenge": challenge, "code_challenge_method": "S256", **overrides,
    }  # fmt: skip
    params = {k: v for k, v in params.items() if v is not None}
    response = browser.get("/oauth/authorize", params=params, follow_redirects=False)
    return response, verifier


def consent(browser: TestClient, response: Any, decision: str = "allow") -> Any:
    assert response.status_code == 200 and "Allow" in response.text
    action = response.text.split('action="', 2)[1].split('"')[0].replace("&amp;", "&")
    return browser.post(
        action, data={"csrf_token": csrf_of(response.text), "decision": decision},
        follow_redirects=False,
    )  # fmt: skip


def code_for(browser: TestClient, client_id: str) -> tuple[str, str]:
    response, verifier = authorize(browser, client_id)
    answer = consent(browser, response)
    assert answer.status_code == 302, answer.text
    assert answer.headers["location"].startswith(REDIRECT)
    query = query_of(answer.headers["location"])
    assert query["state"] == "xyz"
    return query["code"], verifier


def exchange(
    client: TestClient, app: tuple[str, str], code: str, verifier: str | None, **form: str
) -> Any:
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, **form}
    if verifier is not None:
        data["code_verifier"] = verifier
    return client.post(TOKEN_URL, data=data, auth=app)


def refresh(client: TestClient, app: tuple[str, str], token: str) -> Any:
    return client.post(
        TOKEN_URL, data={"grant_type": "refresh_token", "refresh_token": token}, auth=app
    )


def tokens(browser: TestClient, app: tuple[str, str]) -> dict[str, Any]:
    code, verifier = code_for(browser, app[0])
    response = exchange(browser, app, code, verifier)
    assert response.status_code == 200, response.text
    return response.json()


def test_a_user_grants_an_app_access_to_their_merchant(browser, app_client, demo):
    body = tokens(browser, app_client)
    assert body["token_type"] == "Bearer" and body["refresh_token"].startswith("lmr_")
    assert set(body["scope"].split()) == {"deliveries:read", "billing:read"}
    answer = graphql(browser, body["access_token"], DELIVERIES, {"first": 1})
    assert "errors" not in answer


def test_the_consent_screen_can_deny(browser, app_client):
    response, _ = authorize(browser, app_client[0])
    answer = consent(browser, response, "deny")
    assert query_of(answer.headers["location"])["error"] == "access_denied"


def test_signed_out_people_are_sent_to_sign_in_first(client, app_client):
    client.base_url = "https://testserver"
    response, _ = authorize(client, app_client[0])
    assert response.status_code == 303 and response.headers["location"].startswith("/signin?")


def test_pkce_is_required(browser, app_client):
    response, _ = authorize(browser, app_client[0], code_challenge=None, code_challenge_method=None)
    assert query_of(response.headers["location"])["error"] == "invalid_request"


def test_plain_pkce_is_refused(browser, app_client):
    response, _ = authorize(
        browser, app_client[0], code_challenge="a" * 43, code_challenge_method="plain"
    )
    assert query_of(response.headers["location"])["error"] == "invalid_request"


def test_a_missing_verifier_is_refused(browser, app_client):
    code, _ = code_for(browser, app_client[0])
    response = exchange(browser, app_client, code, None)
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"


def test_a_wrong_verifier_is_refused(browser, app_client):
    code, verifier = code_for(browser, app_client[0])
    response = exchange(browser, app_client, code, verifier[::-1])
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


@pytest.mark.parametrize(
    "uri",
    [REDIRECT + "/more", REDIRECT + "?x=1", "https://evil.example/callback", REDIRECT.upper()],
)
def test_an_unregistered_redirect_uri_is_refused_without_redirecting(browser, app_client, uri):
    response, _ = authorize(browser, app_client[0], redirect_uri=uri)
    assert response.status_code == 400 and "location" not in response.headers
    assert "not registered" in response.text


def test_the_token_request_must_name_the_same_redirect_uri(browser, app_client):
    code, verifier = code_for(browser, app_client[0])
    response = exchange(browser, app_client, code, verifier, redirect_uri=REDIRECT + "/other")
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


def test_a_code_works_once_and_its_replay_revokes_what_it_gave(browser, app_client):
    code, verifier = code_for(browser, app_client[0])
    first = exchange(browser, app_client, code, verifier).json()
    again = exchange(browser, app_client, code, verifier)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    assert refresh(browser, app_client, first["refresh_token"]).json()["error"] == "invalid_grant"
    assert graphql_status(browser, first["access_token"]) == 401


def test_another_client_cannot_use_the_code(browser, app_client):
    code, verifier = code_for(browser, app_client[0])
    with transaction() as session:
        other, secret = create_app(session, name="Other", redirect_uris=[REDIRECT], public=False)
    response = exchange(browser, (other.client_id, secret), code, verifier)
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


def test_refresh_tokens_rotate(browser, app_client):
    first = tokens(browser, app_client)
    second = refresh(browser, app_client, first["refresh_token"])
    assert second.status_code == 200, second.text
    assert second.json()["refresh_token"] != first["refresh_token"]
    assert refresh(browser, app_client, second.json()["refresh_token"]).status_code == 200


def test_reusing_a_rotated_refresh_token_revokes_the_family(browser, app_client):
    first = tokens(browser, app_client)
    second = refresh(browser, app_client, first["refresh_token"]).json()
    reuse = refresh(browser, app_client, first["refresh_token"])
    assert reuse.status_code == 400 and reuse.json()["error"] == "invalid_grant"
    # the thief's reuse also kills the legitimate holder's newer tokens
    assert refresh(browser, app_client, second["refresh_token"]).json()["error"] == "invalid_grant"
    assert graphql_status(browser, second["access_token"]) == 401


def test_client_credentials_get_no_refresh_token(client, demo):
    merchant = demo["merchants"][0]
    body = client.post(
        TOKEN_URL, data={"grant_type": "client_credentials"},
        auth=(merchant["client_id"], merchant["client_secret"]),
    ).json()  # fmt: skip
    assert "refresh_token" not in body


def test_a_merchant_client_cannot_use_the_user_grants(client, demo):
    merchant = demo["merchants"][0]
    response = client.post(
        TOKEN_URL, data={"grant_type": "refresh_token", "refresh_token": "lmr_x"},
        auth=(merchant["client_id"], merchant["client_secret"]),
    )  # fmt: skip
    assert response.json()["error"] == "unauthorized_client"


def graphql_status(client: TestClient, access_token: str) -> int:
    return client.post(
        "/graphql", json={"query": "{ deliveries(first: 1) { edges { cursor } } }"},
        headers={"Authorization": f"Bearer {access_token}"},
    ).status_code  # fmt: skip


def test_a_revoked_refresh_token_and_its_access_token_stop_working(browser, app_client):
    body = tokens(browser, app_client)
    revoked = browser.post(
        "https://testserver/oauth/revoke", data={"token": body["refresh_token"]}, auth=app_client
    )
    assert revoked.status_code == 200
    assert refresh(browser, app_client, body["refresh_token"]).json()["error"] == "invalid_grant"
    assert graphql_status(browser, body["access_token"]) == 401


def test_a_revoked_access_token_is_refused(client, demo):
    merchant = demo["merchants"][0]
    auth = (merchant["client_id"], merchant["client_secret"])
    token = client.post(TOKEN_URL, data={"grant_type": "client_credentials"}, auth=auth).json()
    assert graphql_status(client, token["access_token"]) == 200
    client.post("https://testserver/oauth/revoke", data={"token": token["access_token"]}, auth=auth)
    assert graphql_status(client, token["access_token"]) == 401
    assert introspect(client, auth, token["access_token"]).json() == {"active": False}


def test_another_client_cannot_revoke_a_token(client, demo):
    first, second = demo["merchants"][0], demo["merchants"][1]
    token = client.post(
        TOKEN_URL, data={"grant_type": "client_credentials"},
        auth=(first["client_id"], first["client_secret"]),
    ).json()["access_token"]  # fmt: skip
    response = client.post(
        "https://testserver/oauth/revoke", data={"token": token},
        auth=(second["client_id"], second["client_secret"]),
    )  # fmt: skip
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"
    assert graphql_status(client, token) == 200


def introspect(client: TestClient, auth: tuple[str, str] | None, token: str) -> Any:
    return client.post("https://testserver/oauth/introspect", data={"token": token}, auth=auth)


def test_introspection_describes_an_active_token(client, demo):
    merchant = demo["merchants"][0]
    auth = (merchant["client_id"], merchant["client_secret"])
    token = client.post(TOKEN_URL, data={"grant_type": "client_credentials"}, auth=auth).json()
    body = introspect(client, auth, token["access_token"]).json()
    assert body["active"] is True and body["client_id"] == merchant["client_id"]
    assert body["tenant_id"] == merchant["tenant_id"]
    assert introspect(client, auth, "garbage").json() == {"active": False}


def test_introspection_needs_client_authentication(client, demo):
    merchant = demo["merchants"][0]
    auth = (merchant["client_id"], merchant["client_secret"])
    token = client.post(TOKEN_URL, data={"grant_type": "client_credentials"}, auth=auth).json()
    response = introspect(client, None, token["access_token"])
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"
    wrong = introspect(client, (merchant["client_id"], "lms_wrong"), token["access_token"])
    assert wrong.status_code == 401


def test_a_client_cannot_introspect_another_clients_token(client, demo):
    first, second = demo["merchants"][0], demo["merchants"][1]
    token = client.post(
        TOKEN_URL, data={"grant_type": "client_credentials"},
        auth=(first["client_id"], first["client_secret"]),
    ).json()["access_token"]  # fmt: skip
    body = introspect(client, (second["client_id"], second["client_secret"]), token).json()
    assert body == {"active": False}


def test_a_public_app_uses_pkce_without_a_secret(browser, demo):
    with transaction() as session:
        row, secret = create_app(session, name="CLI", redirect_uris=[REDIRECT], public=True)
    assert secret is None
    response, verifier = authorize(browser, row.client_id)
    code = query_of(consent(browser, response).headers["location"])["code"]
    answer = browser.post(
        TOKEN_URL,
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
              "client_id": row.client_id, "code_verifier": verifier},
    )  # fmt: skip
    assert answer.status_code == 200, answer.text


def test_a_users_role_bounds_the_scope(client, demo, app_client):
    client.base_url = "https://testserver"
    make_user(demo["merchants"][0]["tenant_id"], "dev@acme.example", role="developer")
    sign_in(client, "dev@acme.example")
    body = tokens(client, app_client)
    assert body["scope"] == "deliveries:read"  # billing:read asked, not the developer's


def test_the_metadata_lists_the_new_endpoints(client):
    body = client.get("/.well-known/oauth-authorization-server").json()
    assert body["code_challenge_methods_supported"] == ["S256"]
    assert set(body["grant_types_supported"]) == {
        "client_credentials",
        "authorization_code",
        "refresh_token",
    }
    assert body["response_types_supported"] == ["code"]
    for name in ("authorization_endpoint", "revocation_endpoint", "introspection_endpoint"):
        assert body[name].startswith(body["issuer"] + "/oauth/")


def test_merchant_clients_keep_their_tenant(session, db):
    """(The relaxed rule for apps does not let a tenantless client hold merchant scopes.)"""
    with pytest.raises(ValueError):
        create_client(session, name="x", scope="deliveries:read", tenant_id=None)
