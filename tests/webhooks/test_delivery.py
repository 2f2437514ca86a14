"""Webhooks from the outbox to a real HTTP receiver: fan-out, retries, giving up, crashes.

The receiver is a small threaded HTTP server on 127.0.0.1 that fails a chosen number
of times and then recovers. Most tests drive `delivery.deliver` with a fake clock so
three days of retries take milliseconds; one runs everything through a real Celery
worker on the Redis broker.
"""

from __future__ import annotations

import itertools
import json
import random
import socket
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from sqlmodel import Session, col, select

from services.core.db import transaction, utcnow
from services.core.errors import UserErrors
from services.core.models import (
    OutboxEvent,
    Tenant,
    WebhookAttempt,
    WebhookEndpoint,
    WebhookMessage,
    WebhookMessageStatus,
)
from services.core.outbox import emit
from services.core.principal import Merchant
from services.core.settings import get_settings
from services.webhooks import delivery, dispatch, service, targets, tasks
from services.webhooks.signing import verify
from tests.factories import worker_on_own_queue
from tests.webhooks.receiver import Receiver

START = utcnow().replace(microsecond=0)  # fake clocks start here; real ones run on


class Clock:
    def __init__(self, now: datetime = START):
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, by: timedelta) -> None:
        self.now += by


@pytest.fixture
def receivers() -> Iterator[list[Receiver]]:
    running: list[Receiver] = []
    yield running
    for receiver in running:
        receiver.close()


@pytest.fixture
def receiver(receivers):
    def start(failures: int = 0, status: int = 500, delay: float = 0.0) -> Receiver:
        running = Receiver(failures, status, delay)
        receivers.append(running)
        return running

    return start


@pytest.fixture
def tenants(db) -> tuple[str, str]:
    with transaction() as session:
        acme, bluebird = Tenant(name="Acme"), Tenant(name="Bluebird")
        session.add_all([acme, bluebird])
    return acme.id, bluebird.id


def _endpoint(tenant_id: str, url: str, *event_types: str) -> WebhookEndpoint:
    with transaction() as session:
        return service.create_endpoint(
            session, Merchant(tenant_id), url, list(event_types) or ["delivery.booked"], START
        )


def _emit(tenant_id: str | None, topic: str = "delivery.booked", **payload) -> str:
    with transaction() as session:
        owner = Merchant(tenant_id) if tenant_id else None
        emit(session, topic, payload or {"delivery_id": "dlv_1", "status": "BOOKED"}, owner)
        session.flush()
        return session.exec(select(OutboxEvent.id).order_by(col(OutboxEvent.id).desc())).first()


def _dispatch(now: datetime = START) -> list[str]:
    with transaction() as session:
        return dispatch.dispatch_batch(session, now).message_ids


def _message(message_id: str) -> WebhookMessage:
    with transaction() as session:
        return session.get(WebhookMessage, message_id)


def _attempts(message_id: str) -> list[WebhookAttempt]:
    with transaction() as session:
        return list(
            session.exec(
                select(WebhookAttempt)
                .where(WebhookAttempt.message_id == message_id)
                .order_by(col(WebhookAttempt.at))
            ).all()
        )


def _secret(endpoint_id: str) -> str:
    with transaction() as session:
        return session.get(WebhookEndpoint, endpoint_id).secret


def test_an_event_fans_out_only_to_its_tenants_subscribed_enabled_endpoints(tenants):
    acme, bluebird = tenants
    booked = _endpoint(acme, "https://acme.example/booked", "delivery.booked")
    _endpoint(acme, "https://acme.example/delivered", "delivery.delivered")
    _endpoint(bluebird, "https://bluebird.example/all", "delivery.booked")
    paused = _endpoint(acme, "https://acme.example/paused", "delivery.booked")
    with transaction() as session:
        service.disable_endpoint(session, Merchant(acme), paused.id, START)

    event_id = _emit(acme, delivery_id="dlv_acme", status="BOOKED")
    _emit(None, "route.planned", route_id="rte_1")  # a platform event: not for merchants
    _emit(acme, "billing.usage_recorded", meter="deliveries")  # internal topic

    message_ids = _dispatch()

    assert len(message_ids) == 1
    message = _message(message_ids[0])
    assert (message.endpoint_id, message.tenant_id, message.event_id) == (booked.id, acme, event_id)
    assert message.payload == {
        "id": event_id,
        "type": "delivery.booked",
        "mode": "live",
        "created_at": message.payload["created_at"],
        "data": {"delivery_id": "dlv_acme", "status": "BOOKED"},
    }
    with transaction() as session:
        assert (
            session.exec(select(OutboxEvent).where(col(OutboxEvent.dispatched_at).is_(None))).all()
            == []
        )
    assert _dispatch() == []  # dispatched once only


def test_a_payload_naming_another_tenant_is_never_sent(tenants):
    acme, bluebird = tenants
    _endpoint(acme, "https://acme.example/hooks")
    _emit(acme, delivery_id="dlv_1", nested={"tenant_id": bluebird})
    assert _dispatch() == []


def test_a_receiver_that_fails_then_recovers_gets_the_message_with_every_attempt_logged(
    tenants, receiver
):
    acme, _ = tenants
    down_twice_then_up = receiver(failures=3, status=503)
    endpoint = _endpoint(acme, down_twice_then_up.url)
    _emit(acme)
    (message_id,) = _dispatch()
    clock, rng = Clock(), random.Random(7)

    outcomes = []
    for _ in range(4):
        outcome = delivery.deliver(message_id, clock=clock, rng=rng)
        outcomes.append(outcome.status)
        if outcome.retry_in is not None:
            # Not due yet: calling early sends nothing.
            assert delivery.deliver(message_id, clock=clock).status is None
            clock.advance(outcome.retry_in)

    assert outcomes == [WebhookMessageStatus.FAILED] * 3 + [WebhookMessageStatus.DELIVERED]
    attempts = _attempts(message_id)
    assert [a.status_code for a in attempts] == [503, 503, 503, 200]
    assert attempts[0].response_excerpt == "down for maintenance"
    gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(attempts)]
    for gap, planned in zip(gaps, delivery.RETRY_SCHEDULE, strict=False):
        assert planned <= gap <= planned * (1 + delivery.JITTER)
    message = _message(message_id)
    assert (message.status, message.attempt_count, message.next_attempt_at) == (
        WebhookMessageStatus.DELIVERED,
        4,
        None,
    )
    # Every request was the same message, properly signed, with the same body.
    requests = down_twice_then_up.requests
    assert {headers["webhook-id"] for headers, _ in requests} == {message_id}
    for headers, body in requests:
        verify(_secret(endpoint.id), headers, body, now=int(headers["webhook-timestamp"]))
        assert json.loads(body) == message.payload
    # Delivered means done: a duplicate task sends nothing.
    assert delivery.deliver(message_id, clock=clock).status is None
    assert len(requests) == 4


def test_sustained_failure_gives_up_and_disables_the_endpoint(tenants, receiver):
    acme, _ = tenants
    broken = receiver(failures=10_000)
    endpoint = _endpoint(acme, broken.url)
    _emit(acme)
    (message_id,) = _dispatch()
    clock = Clock()

    statuses = []
    while True:
        outcome = delivery.deliver(message_id, clock=clock)
        statuses.append(outcome.status)
        if outcome.retry_in is None:
            break
        clock.advance(outcome.retry_in)
        if len(statuses) == 3:  # meanwhile another event arrives for the same endpoint
            _emit(acme, delivery_id="dlv_2")
            (waiting_id,) = _dispatch(clock.now)

    assert statuses == [WebhookMessageStatus.FAILED] * 9 + [WebhookMessageStatus.DEAD]
    assert len(broken.requests) == len(delivery.RETRY_SCHEDULE) + 1
    assert clock.now - START > timedelta(days=3)
    with transaction() as session:
        disabled = session.get(WebhookEndpoint, endpoint.id)
    assert not disabled.enabled
    assert "HTTP 500" in disabled.disabled_reason
    assert _message(waiting_id).status == WebhookMessageStatus.DEAD
    # A disabled endpoint gets no new messages.
    _emit(acme, delivery_id="dlv_3")
    assert _dispatch(clock.now) == []


def test_an_enabled_endpoint_gets_a_replayed_message_again(tenants, receiver):
    acme, _ = tenants
    target = receiver()
    endpoint = _endpoint(acme, target.url)
    _emit(acme)
    (message_id,) = _dispatch()
    assert delivery.deliver(message_id).status == WebhookMessageStatus.DELIVERED

    with transaction() as session:
        service.replay_message(session, Merchant(acme), message_id, START)
    assert delivery.deliver(message_id).status == WebhookMessageStatus.DELIVERED

    assert len(_attempts(message_id)) == 2
    assert [h["webhook-id"] for h, _ in target.requests] == [message_id, message_id]
    with transaction() as session:
        service.disable_endpoint(session, Merchant(acme), endpoint.id, START)
    with pytest.raises(service.UserErrors) as rejected, transaction() as session:
        service.replay_message(session, Merchant(acme), message_id, START)
    assert rejected.value.errors[0].code == "WEBHOOK_ENDPOINT_DISABLED"


def test_an_unreachable_endpoint_is_logged_as_an_error_without_status(tenants):
    acme, _ = tenants
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    _endpoint(acme, f"http://127.0.0.1:{port}/hooks")
    _emit(acme)
    (message_id,) = _dispatch()

    assert delivery.deliver(message_id).status == WebhookMessageStatus.FAILED
    (attempt,) = _attempts(message_id)
    assert attempt.status_code is None
    assert attempt.error.startswith("ConnectError")


def test_concurrent_deliveries_of_one_message_send_it_once(tenants, receiver):
    acme, _ = tenants
    slow = receiver(delay=0.5)
    _endpoint(acme, slow.url)
    _emit(acme)
    (message_id,) = _dispatch()

    outcomes: list[delivery.Outcome] = []
    threads = [
        threading.Thread(target=lambda: outcomes.append(delivery.deliver(message_id)))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(o.status or "" for o in outcomes) == ["", "", "", "DELIVERED"]
    assert len(slow.requests) == 1


def test_a_crash_between_outbox_write_and_dispatch_loses_nothing(tenants, receiver):
    acme, _ = tenants
    target = receiver()
    _endpoint(acme, target.url)
    event_id = _emit(acme)

    # The dispatcher dies after fanning out but before committing.
    with pytest.raises(RuntimeError), transaction() as session:
        dispatch.dispatch_batch(session, START)
        raise RuntimeError("worker killed")
    with transaction() as session:
        assert session.exec(select(WebhookMessage)).all() == []
        assert session.get(OutboxEvent, event_id).dispatched_at is None

    # The next sweep (the beat's periodic dispatch) sends it.
    assert tasks.dispatch_outbox() == 1
    with transaction() as session:
        (message,) = session.exec(select(WebhookMessage)).all()
    assert delivery.deliver(message.id).status == WebhookMessageStatus.DELIVERED
    assert json.loads(target.requests[0][1])["id"] == event_id


def test_a_dispatcher_skips_the_events_another_one_holds(db, tenants):
    if db.dialect.name != "postgresql":
        pytest.skip("row locks are a PostgreSQL matter")
    acme, _ = tenants
    _endpoint(acme, "https://acme.example/hooks")
    first = _emit(acme, delivery_id="dlv_1")

    with Session(db) as holder:
        held = dispatch.dispatch_batch(holder, START)  # locks `first`, not yet committed
        second = _emit(acme, delivery_id="dlv_2")
        with transaction() as session:
            other = dispatch.dispatch_batch(session, START)
        holder.commit()

    assert held.events == 1 and other.events == 1
    with transaction() as session:
        events = {m.event_id for m in session.exec(select(WebhookMessage)).all()}
    assert events == {first, second}


def test_the_sweeper_picks_up_only_overdue_open_messages(tenants):
    acme, _ = tenants
    _endpoint(acme, "https://acme.example/hooks")
    for n in range(3):
        _emit(acme, delivery_id=f"dlv_{n}")
    overdue, upcoming, delivered = _dispatch()
    with transaction() as session:
        for message_id, status, due in (
            (overdue, WebhookMessageStatus.FAILED, START - timedelta(minutes=5)),
            (upcoming, WebhookMessageStatus.FAILED, START + timedelta(minutes=5)),
            (delivered, WebhookMessageStatus.DELIVERED, START - timedelta(minutes=5)),
        ):
            message = session.get(WebhookMessage, message_id)
            message.status, message.next_attempt_at = status, due
            session.add(message)
    with transaction() as session:
        assert delivery.due_message_ids(session, START) == [overdue]


@pytest.fixture
def webhook_worker(db, monkeypatch):
    """A real worker for webhook tasks; retries are made fast."""
    monkeypatch.setattr(delivery, "RETRY_SCHEDULE", (timedelta(seconds=0.2),) * 3)
    # A dispatch kick sent by an earlier test went to a queue no worker reads, so it
    # covers nothing here: the next commit must send its own.
    monkeypatch.setattr(dispatch, "_kick_runs_at", float("-inf"))
    with worker_on_own_queue("webhooks") as running:
        yield running


def test_a_worker_delivers_from_the_outbox_through_failures_to_recovery(
    tenants, receiver, webhook_worker
):
    acme, _ = tenants
    flaky = receiver(failures=2)
    _endpoint(acme, flaky.url)

    _emit(acme)  # committing the outbox row kicks a dispatch; the worker does the rest

    deadline = time.monotonic() + 60
    message = None
    while time.monotonic() < deadline:
        with transaction() as session:
            message = session.exec(select(WebhookMessage)).first()
        if message is not None and message.status == WebhookMessageStatus.DELIVERED:
            break
        time.sleep(0.2)
    assert message is not None and message.status == WebhookMessageStatus.DELIVERED
    assert [a.status_code for a in _attempts(message.id)] == [500, 500, 200]
    assert len(flaky.requests) == 3


@pytest.fixture
def guarded(monkeypatch):
    """Production's setting: webhooks go to public addresses only."""
    monkeypatch.setattr(get_settings(), "webhook_private_targets", False)


def test_a_delivery_to_a_private_address_is_refused_unsent(tenants, receiver, monkeypatch):
    acme, _ = tenants
    hook = receiver()
    _endpoint(acme, hook.url)  # registered when allowed (or a public name now resolving inside)
    monkeypatch.setattr(get_settings(), "webhook_private_targets", False)
    _emit(acme)
    (message_id,) = _dispatch()

    assert delivery.deliver(message_id).status == WebhookMessageStatus.FAILED
    (attempt,) = _attempts(message_id)
    assert attempt.status_code is None
    assert attempt.error == "Not sent: 127.0.0.1 is not a public address."
    assert hook.requests == []


@pytest.mark.parametrize(
    "url",
    [
        "https://10.1.2.3/hooks",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/hooks",
        "https://localhost/hooks",
        "http://127.0.0.1:9/hooks",
    ],
)
def test_registering_a_private_address_is_refused(tenants, guarded, url):
    acme, _ = tenants
    with pytest.raises(UserErrors) as refused, transaction() as session:
        service.create_endpoint(session, Merchant(acme), url, ["delivery.booked"], START)
    assert refused.value.errors[0].code == "INVALID_URL"
    assert "public addresses only" in refused.value.errors[0].message


@pytest.mark.parametrize(
    "url",
    [
        "https://2130706433/hooks",  # 127.0.0.1 as one number
        "https://0x7f000001/hooks",
        "https://127.1/hooks",
        "https://0177.0.0.1/hooks",  # octal
        "https://0/hooks",
        "https://[64:ff9b::a9fe:a9fe]/hooks",  # NAT64 of 169.254.169.254
        "https://[::ffff:10.0.0.1]/hooks",  # IPv4-mapped
        "https://[2002:7f00:1::]/hooks",  # 6to4 of 127.0.0.1
        "https://metadata.google.internal/computeMetadata/v1/",
        "https://printer.local/hooks",
        "https://api.localhost/hooks",
        "https://intranet/hooks",  # one label: resolved by the platform's own search path
    ],
)
def test_every_spelling_of_a_private_address_is_refused(tenants, guarded, url):
    acme, _ = tenants
    with pytest.raises(UserErrors) as refused, transaction() as session:
        service.create_endpoint(session, Merchant(acme), url, ["delivery.booked"], START)
    assert refused.value.errors[0].code == "INVALID_URL"


def test_a_delivery_connects_to_the_address_it_checked(tenants, receiver, guarded, monkeypatch):
    """DNS rebinding: the name resolves to a public address when checked and to this
    machine a moment later. Resolving once and connecting to what was checked never
    reaches this machine."""
    acme, _ = tenants
    hook = receiver()
    port = int(hook.url.split(":")[2].split("/")[0])
    answers = iter([("93.184.215.14", port), ("127.0.0.1", port)])
    resolved: list[str] = []
    connected: list[str] = []

    real_getaddrinfo, real_connect = socket.getaddrinfo, socket.create_connection

    def rebinding(host, *args, **kwargs):
        if host != "hooks.acme.example":  # the broker, say
            return real_getaddrinfo(host, *args, **kwargs)
        resolved.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", next(answers))]

    def connect(address, *args, **kwargs):
        if address[1] != port:
            return real_connect(address, *args, **kwargs)
        connected.append(address[0])
        raise ConnectionRefusedError("not on this network")

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    monkeypatch.setattr(socket, "create_connection", connect)
    _endpoint(acme, f"https://hooks.acme.example:{port}/hooks")
    _emit(acme)
    (message_id,) = _dispatch()

    assert delivery.deliver(message_id).status == WebhookMessageStatus.FAILED
    assert (resolved, connected) == (["hooks.acme.example"], ["93.184.215.14"])
    assert hook.requests == []


def test_a_public_address_passes_the_guard(guarded):
    assert targets.literal_refusal("93.184.215.14") is None
    assert targets.literal_refusal("hooks.acme.example") is None


def test_history_past_its_retention_is_pruned_and_open_messages_never(tenants, receiver):
    from services.webhooks import retention

    acme, _ = tenants
    hook = receiver()
    _endpoint(acme, hook.url)
    delivered, open_, recent = (_emit(acme) for _ in range(3))
    messages = dict(zip((delivered, open_, recent), _dispatch(), strict=True))
    delivery.deliver(messages[delivered])  # DELIVERED, with one attempt logged
    delivery.deliver(messages[recent])
    long_ago = START - retention.MESSAGE_RETENTION - timedelta(days=1)
    with transaction() as session:  # age every row but the recent ones
        for event_id in (delivered, open_):
            event = session.get(OutboxEvent, event_id)
            event.dispatched_at = long_ago
            message = session.get(WebhookMessage, messages[event_id])
            message.created_at = long_ago
            session.add_all([event, message])

    assert retention.prune(START) == (2, 1)
    with transaction() as session:
        assert set(session.exec(select(OutboxEvent.id)).all()) == {recent}
        assert set(session.exec(select(WebhookMessage.id)).all()) == {
            messages[open_],
            messages[recent],
        }
    assert _attempts(messages[delivered]) == [] and len(_attempts(messages[recent])) == 1


def test_dispatch_kicks_are_coalesced_never_dropped(monkeypatch):
    """At most one kick runs per interval, and every commit is followed by one."""
    clock = iter([100.0, 100.1, 100.5, 101.05, 102.5])
    monkeypatch.setattr(dispatch, "_kick_runs_at", float("-inf"))
    monkeypatch.setattr(dispatch.time, "monotonic", lambda: next(clock))
    countdowns = [dispatch._kick_countdown() for _ in range(5)]
    # 100.0 kicks now; 100.1 kicks to run at 101.0; 100.5 is covered by that one;
    # 101.05 comes after it ran, so kicks to run at 102.0; 102.5 kicks to run at 103.0.
    assert countdowns == [0.0, pytest.approx(0.9), None, pytest.approx(0.95), pytest.approx(0.5)]
