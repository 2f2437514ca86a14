"""Matrix providers: great circle, an OSRM table server on loopback, the cache, failures."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from services.core.db import transaction
from services.core.models import DeliveryStatus, PlanRunStatus
from services.core.settings import get_settings
from services.planner.matrix import (
    GreatCircle,
    MatrixCache,
    MatrixError,
    OsrmTable,
    great_circle_matrix,
    shared_cache,
)
from tests.planner import world

POINTS = [(40.73, -74.17), (40.72, -74.0), (40.70, -74.05)]


class FakeOsrm(BaseHTTPRequestHandler):
    """Answers the table API: point i to j is 1000 |i - j| metres and 100 |i - j| s."""

    answer: bytes | None = None  # a canned body instead of the table
    requests: list[str]

    def do_GET(self) -> None:
        self.requests.append(self.path)
        coordinates = urlsplit(self.path).path.rsplit("/", 1)[-1].split(";")
        n = len(coordinates)
        body = (
            self.answer
            or json.dumps(
                {
                    "code": "Ok",
                    "distances": [[1000.4 * abs(i - j) for j in range(n)] for i in range(n)],
                    "durations": [[100.0 * abs(i - j) for j in range(n)] for i in range(n)],
                }
            ).encode()
        )
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def osrm() -> Iterator[tuple[str, type[FakeOsrm]]]:
    handler = type("Handler", (FakeOsrm,), {"requests": [], "answer": None})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()


def _closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def test_great_circle_is_symmetric_and_zero_on_the_diagonal():
    distance, duration = GreatCircle(1.3, 24.0)(POINTS)
    assert [distance[i][i] for i in range(3)] == [0, 0, 0]
    assert distance[0][1] == distance[1][0] > 14_000
    assert duration[0][1] == round(distance[0][1] / (24 / 3.6))


def test_osrm_table_is_read_and_rounded(osrm):
    url, handler = osrm
    distance, duration = OsrmTable(url)(POINTS)
    assert distance[0].tolist() == [0, 1000, 2001]
    assert duration[2].tolist() == [200, 100, 0]
    (request,) = handler.requests
    assert request.startswith("/table/v1/driving/-74.170000,40.730000;-74.000000,40.720000;")
    assert parse_qs(urlsplit(request).query) == {"annotations": ["distance,duration"]}


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (b"<html>busy</html>", "malformed answer (HTTP 200, not JSON)"),
        (b'{"code": "NoTable", "message": "no route"}', "answered code 'NoTable'"),
        (b'{"code": "Ok", "distances": [[0]], "durations": [[0]]}', "malformed answer"),
        (
            b'{"code": "Ok", "distances": [[0, null, 1], [1, 0, 1], [1, 1, 0]],'
            b' "durations": [[0, 1, 1], [1, 0, 1], [1, 1, 0]]}',
            "no road from point 0 to point 1",
        ),
    ],
)
def test_a_bad_osrm_answer_is_a_clear_matrix_error(osrm, answer, message):
    url, handler = osrm
    handler.answer = answer
    with pytest.raises(MatrixError, match=message.replace("(", r"\(").replace(")", r"\)")):
        OsrmTable(url)(POINTS)


def test_osrm_down_is_a_clear_matrix_error():
    url = _closed_port()
    with pytest.raises(MatrixError, match=f"OSRM at {url} is unreachable"):
        OsrmTable(url, timeout=2)(POINTS)


def test_the_cache_reuses_a_point_set_in_any_order(osrm):
    url, handler = osrm
    cache, provider = MatrixCache(size=4, ttl=60), OsrmTable(url)
    first = cache.get(("area",), POINTS, provider)
    reordered = cache.get(("area",), [POINTS[2], POINTS[0], POINTS[1]], provider)
    assert len(handler.requests) == 1
    distance, _ = first
    assert reordered[0][0].tolist() == [0, distance[2][0], distance[2][1]]
    cache.get(("other area",), POINTS, provider)
    assert len(handler.requests) == 2


def test_cached_matrices_expire_and_the_least_recent_is_evicted():
    calls = []

    def provider(points):
        calls.append(len(points))
        return great_circle_matrix(points, 1.3, 24.0)

    expired = MatrixCache(size=4, ttl=-1)
    expired.get(("a",), POINTS, provider)
    expired.get(("a",), POINTS, provider)
    assert len(calls) == 2
    small = MatrixCache(size=1, ttl=60)
    small.get(("a",), POINTS, provider)
    small.get(("b",), POINTS, provider)
    small.get(("a",), POINTS, provider)
    assert len(calls) == 5


@pytest.fixture
def osrm_settings(monkeypatch):
    settings = get_settings()
    monkeypatch.setattr(settings, "matrix_provider", "osrm")
    shared_cache.cache_clear()
    yield settings
    shared_cache.cache_clear()


def _planning_world() -> list[str]:
    with transaction() as session:
        area = world.area(session)
        world.van(session, area)
        acme = world.tenant(session)
        return [world.delivery(session, area, acme, at=at).id for at in POINTS[1:]]


def test_a_plan_run_uses_osrm_when_configured(db, osrm, osrm_settings, monkeypatch):
    url, handler = osrm
    monkeypatch.setattr(osrm_settings, "osrm_url", url)
    _planning_world()

    run = world.plan()

    assert run.status == PlanRunStatus.DONE and run.deliveries_planned == 2
    assert len(handler.requests) == 1
    assert run.distance_m == 1000 + 1000 + 2001  # any round trip of three fake points


def test_a_plan_run_fails_with_the_reason_when_osrm_is_down(db, osrm_settings, monkeypatch):
    url = _closed_port()
    monkeypatch.setattr(osrm_settings, "osrm_url", url)
    monkeypatch.setattr(osrm_settings, "osrm_timeout_seconds", 2.0)
    ids = _planning_world()
    before = world.counts()

    run = world.plan()

    assert run.status == PlanRunStatus.FAILED
    assert run.error.startswith(f"MatrixError: OSRM at {url} is unreachable")
    assert world.counts() == before
    assert {world.fetch(i).status for i in ids} == {DeliveryStatus.BOOKED}


def test_osrm_without_a_url_fails_the_run_saying_so(db, osrm_settings, monkeypatch):
    monkeypatch.setattr(osrm_settings, "osrm_url", "")
    _planning_world()

    run = world.plan()

    assert run.error == "MatrixError: matrix_provider is osrm but LASTMILE_OSRM_URL is not set"
