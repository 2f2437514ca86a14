"""Billing fixtures: tenants on a plan, and a helper to record usage events."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from services.billing.plans import DEFAULT_PLAN, store_plan, subscribe
from services.core import usage as usage_module
from services.core.db import transaction
from services.core.meters import Usage
from services.core.models import PricePlan, Tenant
from services.core.usage import IngestReport, record_usage


def at(day: str, hour: int = 12) -> datetime:
    return datetime.fromisoformat(f"{day}T{hour:02d}:00:00").replace(tzinfo=UTC)


@pytest.fixture
def plan(db) -> PricePlan:
    with transaction() as session:
        return store_plan(session, DEFAULT_PLAN)


@pytest.fixture
def tenants(db, plan) -> list[str]:
    """Three merchants on the default plan since 2026-01-01."""
    ids = []
    with transaction() as session:
        for name in ("Acme", "Bluebird", "Corvid"):
            tenant = Tenant(name=name)
            session.add(tenant)
            session.flush()
            subscribe(session, tenant.id, plan, date(2026, 1, 1))
            ids.append(tenant.id)
    return ids


@pytest.fixture(params=["statement", "copy"])
def ingest_path(request, monkeypatch) -> str:
    """Both ways a batch reaches PostgreSQL: small ones as one statement, big ones by COPY."""
    threshold = 1 if request.param == "copy" else 10**9
    monkeypatch.setattr(usage_module, "COPY_THRESHOLD", threshold)
    return request.param


@pytest.fixture
def record() -> Callable[..., IngestReport]:
    def record(*events: Usage) -> IngestReport:
        with transaction() as session:
            return record_usage(session, list(events))

    return record


def usage(id: str, tenant: str, meter: str = "deliveries", quantity: Any = "1",
          when: str = "2026-11-03", **extra: Any) -> Usage:  # fmt: skip
    return Usage(id=id, tenant_id=tenant, meter=meter, quantity=Decimal(quantity), at=at(when),
                 **extra)  # fmt: skip
