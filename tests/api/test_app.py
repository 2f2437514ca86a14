"""The HTTP surface around GraphQL: health, the SDL, GraphiQL without a CDN."""

from __future__ import annotations

import gc
import re

import pytest

from services.api.app import create_server_app
from tests.factories import merchant_access_token


def test_health_reports_a_reachable_database(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_the_sdl_is_served(client):
    response = client.get("/graphql/schema.graphql")
    assert response.status_code == 200
    assert "input BookDeliveryInput" in response.text
    assert "bookDeliveries(" in response.text
    assert "inputs: [BookDeliveryInput!]!" in response.text


def test_graphiql_loads_every_asset_from_the_api_itself(client):
    page = client.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sources, "GraphiQL page without scripts"
    for source in sources:
        if source.startswith("data:"):  # inline, nothing to fetch
            continue
        assert source.startswith("/graphiql/assets/"), source
        assert client.get(source).status_code == 200, source


def test_a_server_process_freezes_what_start_up_built_out_of_the_collectors_sight(db):
    before = gc.get_freeze_count()
    try:
        app = create_server_app()
        assert gc.get_freeze_count() > before + 10_000
        assert app.router.routes[0].path == "/graphql"  # the POST fast path comes first
    finally:
        gc.unfreeze()


@pytest.mark.parametrize(
    ("body", "content_type", "reason"),
    [
        (b'{"query": ', "application/json", "Unable to parse request body as JSON"),
        # Not JSON, though Python's own parser takes them: NaN, an unpaired surrogate.
        (
            b'{"query": "{ x }", "variables": {"n": NaN}}',
            "application/json",
            "Unable to parse request body as JSON",
        ),
        (
            b'{"query": "{ x }", "variables": {"s": "\\ud800"}}',
            "application/json",
            "Unable to parse request body as JSON",
        ),
        (b'{"variables": {}}', "application/json", "No GraphQL query found in the request"),
        (b"query=%7Bx%7D", "application/x-www-form-urlencoded", "Unsupported content type"),
    ],
)
def test_a_malformed_graphql_post_is_a_400_naming_the_problem(
    client, demo, body, content_type, reason
):
    response = client.post(
        "/graphql",
        content=body,
        headers={
            "Content-Type": content_type,
            "Authorization": f"Bearer {merchant_access_token(demo)}",
        },
    )
    assert (response.status_code, response.text) == (400, reason)
