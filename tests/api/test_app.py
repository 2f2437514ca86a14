"""The HTTP surface around GraphQL: health, the SDL, GraphiQL without a CDN."""

from __future__ import annotations

import re


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
