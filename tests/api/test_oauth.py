"""The OAuth authorization server: token issuance, client errors, metadata, token checks."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient
from joserfc import jwt
from joserfc.jwk import KeySet, OctKey, RSAKey
from sqlalchemy import text
from sqlmodel import Session

from services.api.oauth.clients import (
    MERCHANT_SCOPES,
    OPERATOR_SCOPE,
    authenticate_client,
    create_client,
    rotate_secret,
)
from services.api.oauth.keys import _load_or_create_key_file, get_signing_key
from services.api.oauth.tokens import (
    LEEWAY_SECONDS,
    InvalidTokenError,
    audience,
    verify_access_token,
)
from services.core.models import OAuthClient, Tenant
from services.core.settings import get_settings

# TLS is required by the token endpoint, so tests address the app over https.
TOKEN_URL = "https://testserver/oauth/token"


@pytest.fixture
def merchant(session: Session) -> tuple[OAuthClient, str]:
    tenant = Tenant(name="Acme Books")
    session.add(tenant)
    session.flush()  # no ORM relationship orders the inserts: the tenant row must exist first
    client, secret = create_client(
        session, name="Acme integration", scope=MERCHANT_SCOPES, tenant_id=tenant.id
    )
    session.commit()
    return client, secret


@pytest.fixture
def operator(session: Session) -> tuple[OAuthClient, str]:
    client, secret = create_client(session, name="Ops", scope=OPERATOR_SCOPE, tenant_id=None)
    session.commit()
    return client, secret


def request_token(client: TestClient, client_id: str, secret: str, **form: str) -> Any:
    form.setdefault("grant_type", "client_credentials")
    return client.post(TOKEN_URL, data=form, auth=(client_id, secret))


def sign(claims: dict[str, Any], **header: Any) -> str:
    key = get_signing_key()
    header = {"alg": "RS256", "typ": "at+jwt", "kid": key.kid, **header}
    return jwt.encode(header, claims, key, algorithms=["RS256"])


def good_claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": get_settings().issuer,
        "aud": audience(),
        "sub": "lm_test",
        "client_id": "lm_test",
        "tenant_id": "ten_test",
        "scope": "deliveries:read",
        "iat": now,
        "exp": now + 300,
        "jti": "jti-1",
    }
    claims.update(overrides)
    return claims


def b64url(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def assert_oauth_error(response: Any, status: int, error: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"] == error
    assert response.headers["cache-control"] == "no-store"


# -- token endpoint ----------------------------------------------------------------------


def test_merchant_gets_an_rfc9068_access_token(client: TestClient, merchant) -> None:
    row, secret = merchant
    response = request_token(client, row.client_id, secret)

    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    ttl = get_settings().access_token_ttl_seconds
    assert body.keys() == {"access_token", "token_type", "expires_in", "scope"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == ttl
    assert body["scope"] == MERCHANT_SCOPES

    jwks = KeySet.import_key_set(client.get("/oauth/jwks.json").json())
    token = jwt.decode(body["access_token"], jwks, algorithms=["RS256"])
    (served_key,) = jwks.keys
    assert token.header == {"alg": "RS256", "typ": "at+jwt", "kid": served_key.thumbprint()}
    claims = token.claims
    issuer = get_settings().issuer
    assert claims["iss"] == issuer
    assert claims["aud"] == f"{issuer}/graphql"
    assert claims["sub"] == claims["client_id"] == row.client_id
    assert claims["tenant_id"] == row.tenant_id
    assert claims["scope"] == MERCHANT_SCOPES
    assert abs(claims["iat"] - time.time()) < 60
    assert claims["exp"] - claims["iat"] == ttl
    assert len(claims["jti"]) >= 16
    jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": issuer}, aud={"essential": True, "value": audience()}
    ).validate(claims)


def test_each_token_has_its_own_jti(client: TestClient, merchant) -> None:
    row, secret = merchant
    first = request_token(client, row.client_id, secret).json()["access_token"]
    second = request_token(client, row.client_id, secret).json()["access_token"]
    assert verify_access_token(first).jti != verify_access_token(second).jti


def test_operator_token_has_operator_scope_and_no_tenant(client: TestClient, operator) -> None:
    row, secret = operator
    response = request_token(client, row.client_id, secret)

    assert response.status_code == 200, response.text
    assert response.json()["scope"] == OPERATOR_SCOPE
    token = verify_access_token(response.json()["access_token"])
    assert token.scopes == {OPERATOR_SCOPE}
    assert token.tenant_id is None
    claims = jwt.decode(response.json()["access_token"], get_signing_key()).claims
    assert "tenant_id" not in claims


def test_a_narrower_scope_is_granted(client: TestClient, merchant) -> None:
    row, secret = merchant
    response = request_token(client, row.client_id, secret, scope="deliveries:read")

    assert response.status_code == 200, response.text
    assert response.json()["scope"] == "deliveries:read"
    assert verify_access_token(response.json()["access_token"]).scopes == {"deliveries:read"}


@pytest.mark.parametrize("scope", [OPERATOR_SCOPE, "deliveries:read admin", "admin"])
def test_a_scope_beyond_the_clients_is_refused(client: TestClient, merchant, scope: str) -> None:
    row, secret = merchant
    response = request_token(client, row.client_id, secret, scope=scope)
    assert_oauth_error(response, 400, "invalid_scope")


def test_wrong_secret_is_invalid_client_with_basic_challenge(client: TestClient, merchant) -> None:
    row, _ = merchant
    response = request_token(client, row.client_id, "lms_not-the-secret")

    assert_oauth_error(response, 401, "invalid_client")
    assert response.headers["www-authenticate"].startswith("Basic ")


def test_unknown_client_looks_like_a_wrong_secret(client: TestClient, merchant) -> None:
    row, _ = merchant
    unknown = request_token(client, "lm_nobody", "whatever")
    wrong_secret = request_token(client, row.client_id, "whatever")

    assert_oauth_error(unknown, 401, "invalid_client")
    assert unknown.json() == wrong_secret.json()
    assert unknown.headers["www-authenticate"] == wrong_secret.headers["www-authenticate"]


def test_missing_credentials_are_invalid_client(client: TestClient) -> None:
    response = client.post(TOKEN_URL, data={"grant_type": "client_credentials"})
    assert_oauth_error(response, 401, "invalid_client")
    assert response.headers["www-authenticate"].startswith("Basic ")


@pytest.mark.parametrize("header", ["Basic /w==", "Basic not-base64!", "Basic Zm9v", "Bearer x"])
def test_malformed_basic_header_is_invalid_client(client: TestClient, header: str) -> None:
    response = client.post(
        TOKEN_URL, data={"grant_type": "client_credentials"}, headers={"Authorization": header}
    )
    assert_oauth_error(response, 401, "invalid_client")


def test_client_secret_post_is_refused(client: TestClient, merchant) -> None:
    row, secret = merchant
    form = {"grant_type": "client_credentials", "client_id": row.client_id, "client_secret": secret}
    response = client.post(TOKEN_URL, data=form)

    assert_oauth_error(response, 401, "invalid_client")
    assert "client_secret_basic" not in response.json()["error_description"]
    assert "HTTP Basic" in response.json()["error_description"]


def test_missing_grant_type_is_invalid_request(client: TestClient, merchant) -> None:
    row, secret = merchant
    response = client.post(
        TOKEN_URL, data={"scope": "deliveries:read"}, auth=(row.client_id, secret)
    )
    assert_oauth_error(response, 400, "invalid_request")


@pytest.mark.parametrize(
    "grant_type", ["password", "implicit", "urn:ietf:params:oauth:grant-type:device_code"]
)
def test_unsupported_grant_type(client: TestClient, merchant, grant_type: str) -> None:
    row, secret = merchant
    response = request_token(client, row.client_id, secret, grant_type=grant_type)
    assert_oauth_error(response, 400, "unsupported_grant_type")
    assert "client_credentials" in response.json()["error_description"]


def test_repeated_parameters_are_invalid_request(client: TestClient, merchant) -> None:
    row, secret = merchant
    response = client.post(
        TOKEN_URL,
        content="grant_type=client_credentials&scope=operator&scope=deliveries:read",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        auth=(row.client_id, secret),
    )
    assert_oauth_error(response, 400, "invalid_request")


def test_json_body_is_invalid_request(client: TestClient, merchant) -> None:
    row, secret = merchant
    response = client.post(
        TOKEN_URL, json={"grant_type": "client_credentials"}, auth=(row.client_id, secret)
    )
    assert_oauth_error(response, 400, "invalid_request")


def test_plain_http_is_refused(client: TestClient, merchant) -> None:
    row, secret = merchant
    response = client.post(
        "http://testserver/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(row.client_id, secret),
    )
    assert_oauth_error(response, 400, "insecure_transport")


# -- client credentials ------------------------------------------------------------------


def test_rotated_secret_replaces_the_old_one(
    client: TestClient, session: Session, merchant
) -> None:
    row, old_secret = merchant
    new_secret = rotate_secret(session, row)
    session.commit()

    assert_oauth_error(request_token(client, row.client_id, old_secret), 401, "invalid_client")
    assert request_token(client, row.client_id, new_secret).status_code == 200
    assert authenticate_client(session, row.client_id, old_secret) is None
    assert authenticate_client(session, row.client_id, new_secret) == row


def test_secrets_are_stored_hashed(session: Session, merchant) -> None:
    _, secret = merchant
    stored = session.execute(text("SELECT * FROM oauth_client")).mappings().one()

    assert secret not in json.dumps(dict(stored), default=str)
    assert stored["secret_hash"] == "sha256$" + hashlib.sha256(secret.encode()).hexdigest()
    assert len(secret) >= 43  # 32 random bytes, base64url


def test_client_ids_and_secrets_are_random(session: Session) -> None:
    first, first_secret = create_client(session, name="a", scope=OPERATOR_SCOPE, tenant_id=None)
    second, second_secret = create_client(session, name="b", scope=OPERATOR_SCOPE, tenant_id=None)

    assert first.client_id.startswith("lm_")
    assert first.client_id != second.client_id
    assert first_secret != second_secret


@pytest.mark.parametrize(
    ("scope", "has_tenant"),
    [(MERCHANT_SCOPES, False), (OPERATOR_SCOPE, True), ("admin", True), ("", True)],
)
def test_tenancy_and_scope_must_agree(session: Session, scope: str, has_tenant: bool) -> None:
    """A tenantless merchant client would reach every tenant's data."""
    tenant_id = "ten_x" if has_tenant else None
    with pytest.raises(ValueError):
        create_client(session, name="bad", scope=scope, tenant_id=tenant_id)


# -- metadata and keys ---------------------------------------------------------------------


def test_authorization_server_metadata(client: TestClient) -> None:
    response = client.get("/.well-known/oauth-authorization-server")

    assert response.status_code == 200
    metadata = response.json()
    issuer = get_settings().issuer
    assert metadata["issuer"] == issuer
    assert metadata["token_endpoint"] == f"{issuer}/oauth/token"
    assert metadata["jwks_uri"] == f"{issuer}/oauth/jwks.json"
    assert metadata["grant_types_supported"] == [
        "client_credentials",
        "authorization_code",
        "refresh_token",
    ]
    assert metadata["token_endpoint_auth_methods_supported"] == ["client_secret_basic", "none"]
    assert metadata["introspection_endpoint_auth_methods_supported"] == ["client_secret_basic"]
    assert metadata["response_types_supported"] == ["code"]
    assert set(metadata["scopes_supported"]) == {*MERCHANT_SCOPES.split(), OPERATOR_SCOPE}


def test_jwks_shows_only_the_public_key(client: TestClient) -> None:
    (key,) = client.get("/oauth/jwks.json").json()["keys"]

    assert key["kty"] == "RSA"
    assert key["alg"] == "RS256"
    assert key["use"] == "sig"
    assert key["kid"] == get_signing_key().kid
    assert not {"d", "p", "q", "dp", "dq", "qi"} & key.keys()


def test_generated_key_file_is_private_and_created_once(tmp_path) -> None:
    path = tmp_path / "jwt-signing-key.pem"
    first = _load_or_create_key_file(path)
    second = _load_or_create_key_file(path)

    assert first == second
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary left behind


def test_processes_starting_together_share_one_key(tmp_path) -> None:
    path = tmp_path / "jwt-signing-key.pem"
    with ProcessPoolExecutor(max_workers=4) as pool:
        keys = set(pool.map(_load_or_create_key_file, [path] * 8))
    assert len(keys) == 1


# -- verify_access_token ---------------------------------------------------------------------


def test_verify_accepts_a_good_token() -> None:
    token = verify_access_token(sign(good_claims()))

    assert token.client_id == "lm_test"
    assert token.tenant_id == "ten_test"
    assert token.scopes == {"deliveries:read"}
    assert token.jti == "jti-1"


def test_verify_accepts_an_issued_token(client: TestClient, merchant) -> None:
    row, secret = merchant
    issued = request_token(client, row.client_id, secret).json()["access_token"]
    token = verify_access_token(issued)

    assert token.client_id == row.client_id
    assert token.tenant_id == row.tenant_id
    assert token.scopes == set(MERCHANT_SCOPES.split())


def _tampered() -> str:
    header, _, signature = sign(good_claims()).split(".")
    return ".".join([header, b64url(good_claims(tenant_id="ten_someone_else")), signature])


def _alg_none() -> str:
    header = {"alg": "none", "typ": "at+jwt", "kid": get_signing_key().kid}
    return f"{b64url(header)}.{b64url(good_claims())}."


def _hs256_with_public_key() -> str:
    """The classic confusion attack: HMAC keyed with the (public) RSA modulus."""
    public = get_signing_key().as_dict(private=False)
    key = OctKey.import_key(public["n"].encode())
    header = {"alg": "HS256", "typ": "at+jwt", "kid": get_signing_key().kid}
    return jwt.encode(header, good_claims(), key, algorithms=["HS256"])


def _foreign_key_same_kid() -> str:
    foreign = RSAKey.generate_key(2048)
    header = {"alg": "RS256", "typ": "at+jwt", "kid": get_signing_key().kid}
    return jwt.encode(header, good_claims(), foreign, algorithms=["RS256"])


@pytest.mark.parametrize(
    ("make_token", "reason"),
    [
        (lambda: sign(good_claims(exp=int(time.time()) - 120)), "token expired"),
        (_tampered, "bad signature"),
        (_foreign_key_same_kid, "bad signature"),
        (lambda: sign(good_claims(aud="https://elsewhere/graphql")), "wrong audience"),
        (lambda: sign(good_claims(iss="https://elsewhere")), "wrong issuer"),
        (lambda: sign(good_claims(), typ="JWT"), "not an access token"),
        (lambda: sign(good_claims(iat=int(time.time()) + 3600)), "invalid claim: iat"),
        (lambda: sign({k: v for k, v in good_claims().items() if k != "jti"}), "missing claim"),
        (lambda: sign(good_claims(), kid="someone-else"), "unknown key"),
        (_alg_none, "algorithm not accepted"),
        (_hs256_with_public_key, "algorithm not accepted"),
        (lambda: "not.a.jwt", "malformed token"),
        (lambda: "", "malformed token"),
    ],
)
def test_verify_rejects(make_token, reason: str) -> None:
    with pytest.raises(InvalidTokenError, match=reason):
        verify_access_token(make_token())


def test_verify_tolerates_small_clock_skew() -> None:
    token = verify_access_token(sign(good_claims(exp=int(time.time()) - 5)))
    assert token.client_id == "lm_test"


def test_a_remembered_token_is_refused_once_it_expires(monkeypatch) -> None:
    token = sign(good_claims(exp=int(time.time()) + 60))
    assert verify_access_token(token).jti == "jti-1"  # now remembered as valid
    later = time.time() + 60 + LEEWAY_SECONDS + 1
    monkeypatch.setattr(time, "time", lambda: later)
    with pytest.raises(InvalidTokenError, match="expired"):
        verify_access_token(token)
