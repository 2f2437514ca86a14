"""The cost budget: leaky buckets in memory and in Redis, throttling, and document limits."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import redis
from fastapi.testclient import TestClient
from graphql import get_introspection_query
from sqlalchemy import func
from sqlmodel import select

from services.api.app import create_app
from services.api.graphql.limits.throttle import (
    Level,
    LocalBucket,
    RedisBucket,
    bucket_key,
    new_bucket,
)
from services.api.oauth.tokens import AccessToken, issue_access_token
from services.core.db import transaction
from services.core.models import Delivery, OutboxEvent
from services.core.settings import Settings, get_settings
from tests.factories import BOOK, DELIVERIES, booking_input, graphql

REDIS_URL = "redis://127.0.0.1:6379/14"


class FrozenClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


# The in-process bucket, on a clock the test moves.


def test_a_bucket_refills_continuously_up_to_its_capacity():
    clock = FrozenClock()
    bucket = LocalBucket(100, 10.0, clock=clock)
    assert bucket.take("t", 80).available == 20
    assert not bucket.take("t", 30).granted
    clock.now += 1.5
    assert bucket.take("t", 30) == Level(True, 5)
    clock.now += 3600
    assert bucket.take("t", 0).available == 100


def test_a_refund_never_overfills_and_buckets_are_per_key():
    bucket = LocalBucket(100, 10.0, clock=FrozenClock())
    bucket.take("a", 10)
    assert bucket.take("a", -50).available == 100
    bucket.take("a", 60)
    assert bucket.take("b", 0).available == 100


def test_concurrent_takes_never_overdraw():
    bucket = LocalBucket(1000, 0.0)
    granted = _take_concurrently(bucket.take, 100, threads=25)
    assert granted == 10


def test_merchants_share_their_tenant_budget_and_operators_have_their_own():
    expires = datetime.now(UTC)
    merchant = AccessToken("c1", "t1", frozenset(), "j", expires)
    other_client = AccessToken("c2", "t1", frozenset(), "j", expires)
    operator = AccessToken("ops", None, frozenset(), "j", expires)
    assert bucket_key(merchant) == bucket_key(other_client) == "tenant:t1"
    assert bucket_key(operator) == "client:ops"


# The Redis bucket: the same rules, atomically, on Redis's clock.


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL)
    yield client
    client.close()


@pytest.fixture
def prefix(redis_client) -> Iterator[str]:
    """A key prefix of this test alone; its keys are removed afterwards."""
    prefix = f"lastmile-test:{uuid.uuid4().hex}:"
    yield prefix
    for key in redis_client.scan_iter(f"{prefix}*"):
        redis_client.delete(key)


def test_two_processes_drain_one_redis_budget(redis_client, prefix):
    first = RedisBucket(redis.Redis.from_url(REDIS_URL), 1000, 0.001, prefix=prefix)
    second = RedisBucket(redis.Redis.from_url(REDIS_URL), 1000, 0.001, prefix=prefix)
    assert first.take("t", 600).granted
    refused = second.take("t", 600)
    assert not refused.granted
    assert 400 <= refused.available < 401
    assert second.take("t", 400).granted
    assert not first.take("t", 1).granted


def test_a_redis_bucket_refills_by_redis_time(redis_client, prefix):
    bucket = RedisBucket(redis_client, 1000, 1.0, prefix=prefix)
    seconds, microseconds = redis_client.time()
    redis_client.hset(f"{prefix}t", mapping={"level": 0, "at": seconds - 100 + microseconds / 1e6})
    level = bucket.take("t", 0)
    # 100 s at 1 point a second, plus however long the test took since.
    assert 100 <= level.available < 150


def test_a_redis_bucket_expires_once_it_would_be_full(redis_client, prefix):
    bucket = RedisBucket(redis_client, 1000, 50.0, prefix=prefix)
    bucket.take("t", 500)
    assert 0 < redis_client.pttl(f"{prefix}t") <= 10_000
    bucket.take("t", -500)
    assert not redis_client.exists(f"{prefix}t")


def test_concurrent_redis_takes_never_overdraw(prefix):
    bucket = RedisBucket(redis.Redis.from_url(REDIS_URL), 1000, 0.001, prefix=prefix)
    assert _take_concurrently(bucket.take, 100, threads=25) == 10


def test_an_unreachable_redis_does_not_take_the_api_down():
    bucket = RedisBucket(redis.Redis.from_url("redis://127.0.0.1:1/0"), 1000, 50.0)
    assert bucket.take("t", 10).granted


def test_redis_is_used_when_configured():
    assert isinstance(new_bucket(Settings(redis_url=REDIS_URL)), RedisBucket)
    assert isinstance(new_bucket(Settings(redis_url="")), LocalBucket)
    with pytest.raises(ValueError, match="must be positive"):
        new_bucket(Settings(graphql_restore_rate=0))


def _take_concurrently(take, amount: float, threads: int) -> int:
    barrier = threading.Barrier(threads)
    results: list[bool] = []

    def worker() -> None:
        barrier.wait()
        results.append(take("t", amount).granted)

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return sum(results)


# Over HTTP: throttling refuses before anything runs; limits refuse before execution.


def _count(model) -> int:
    with transaction() as session:
        return session.exec(select(func.count()).select_from(model)).one()


def test_a_throttled_booking_runs_nothing_and_writes_nothing(app, client, merchant_token):
    clock = FrozenClock()
    app.state.graphql_bucket = LocalBucket(20, 1.0, clock=clock)
    assert graphql(client, merchant_token, BOOK, {"input": booking_input("a")})["data"]
    before = (_count(Delivery), _count(OutboxEvent))

    response = client.post(
        "/graphql",
        json={"query": BOOK, "variables": {"input": booking_input("b")}},
        headers={"Authorization": f"Bearer {merchant_token}"},
    )
    assert response.status_code == 200
    body = response.json()
    assert body["data"] is None
    assert [e["extensions"]["code"] for e in body["errors"]] == ["THROTTLED"]
    assert body["extensions"]["cost"] == {
        "requestedQueryCost": 13,
        "actualQueryCost": 0,
        "throttleStatus": {"maximumAvailable": 20.0, "currentlyAvailable": 7, "restoreRate": 1.0},
    }
    assert response.headers["retry-after"] == "6"
    assert (_count(Delivery), _count(OutboxEvent)) == before

    clock.now += 6
    retried = graphql(client, merchant_token, BOOK, {"input": booking_input("b")})
    assert retried["data"]["bookDelivery"]["delivery"]["reference"] == "b"


def test_two_api_instances_share_the_redis_budget(db, merchant_token, prefix):
    apps = [create_app(), create_app()]
    for app in apps:
        app.state.graphql_bucket = RedisBucket(
            redis.Redis.from_url(REDIS_URL), 20, 0.001, prefix=prefix
        )
    with TestClient(apps[0]) as first, TestClient(apps[1]) as second:
        assert graphql(first, merchant_token, BOOK, {"input": booking_input("a")})["data"]
        refused = graphql(second, merchant_token, BOOK, {"input": booking_input("b")})
    assert refused["errors"][0]["extensions"]["code"] == "THROTTLED"
    assert _count(Delivery) == 1


def test_an_operation_above_the_single_query_limit_is_refused(client, merchant_token):
    fields = " ".join(
        f"p{i}: deliveries(first: 100) {{ edges {{ node {{ id }} }} }}" for i in range(10)
    )
    body = graphql(client, merchant_token, f"{{ {fields} }}")
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "MAX_COST_EXCEEDED"
    assert "1020 points" in body["errors"][0]["message"]
    assert body["extensions"]["cost"]["requestedQueryCost"] == 1020
    assert body["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"] == 1000


def test_too_deep_a_document_is_refused(client, merchant_token, monkeypatch):
    monkeypatch.setattr(get_settings(), "graphql_max_depth", 3)
    body = graphql(client, merchant_token, DELIVERIES, {"first": 1})
    assert body["data"] is None
    error = body["errors"][0]
    assert error["extensions"]["code"] == "MAX_DEPTH_EXCEEDED"
    assert error["message"].startswith("`Deliveries` is nested 4 fields deep; the limit is 3.")
    assert body["extensions"]["cost"]["requestedQueryCost"] == 0


def test_introspection_is_exempt_from_the_depth_limit(client, merchant_token):
    body = graphql(client, merchant_token, get_introspection_query())
    assert "errors" not in body
    assert body["data"]["__schema"]["queryType"]["name"] == "Query"
    assert body["extensions"]["cost"]["requestedQueryCost"] > 0


def test_too_many_aliases_are_refused(client, merchant_token):
    fields = " ".join(f"a{i}: __typename" for i in range(31))
    body = graphql(client, merchant_token, f"{{ {fields} }}")
    assert body["errors"][0]["extensions"]["code"] == "MAX_ALIASES_EXCEEDED"
    assert body["errors"][0]["message"] == "The document uses 31 aliases; the limit is 30."
    assert "cost" in body["extensions"]


def test_too_many_tokens_are_refused(client, merchant_token):
    body = graphql(client, merchant_token, "{ " + "__typename " * 5000 + "}")
    assert body["errors"][0]["extensions"]["code"] == "MAX_TOKENS_EXCEEDED"
    assert "more than 5000 tokens" in body["errors"][0]["message"]
    assert "cost" in body["extensions"]


def test_a_subscription_is_charged_once_and_refused_when_throttled(app, client, demo):
    merchant = demo["merchants"][0]
    access_token, _ = issue_access_token(
        client_id=merchant["client_id"], tenant_id=merchant["tenant_id"], scope="deliveries:read"
    )
    app.state.graphql_bucket = bucket = LocalBucket(2, 1.0, clock=FrozenClock())
    subscribe = {"query": "subscription { deliveryUpdates { deliveryId status } }"}
    with client.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as ws:
        ws.send_json(
            {"type": "connection_init", "payload": {"Authorization": f"Bearer {access_token}"}}
        )
        assert ws.receive_json()["type"] == "connection_ack"
        ws.send_json({"id": "1", "type": "subscribe", "payload": subscribe})
        ws.send_json({"id": "2", "type": "subscribe", "payload": subscribe})
        ws.send_json({"id": "3", "type": "subscribe", "payload": subscribe})
        refused = ws.receive_json()
    assert (refused["type"], refused["id"]) == ("next", "3")
    assert refused["payload"]["errors"][0]["extensions"]["code"] == "THROTTLED"
    assert refused["payload"]["extensions"]["cost"]["actualQueryCost"] == 0
    assert bucket.take(f"tenant:{merchant['tenant_id']}", 0).available == 0
