"""Fixtures shared by the API tests: the demo world and a merchant's access token."""

from __future__ import annotations

import pytest

from services.api.seed import seed_demo
from services.core.db import transaction, utcnow
from tests.factories import merchant_access_token


@pytest.fixture
def demo(db):
    """The seeded demo world: area `demo`, its fleet, two merchants, an operator."""
    with transaction() as session:
        return seed_demo(session, utcnow().date())


@pytest.fixture
def merchant_token(demo) -> str:
    return merchant_access_token(demo)


@pytest.fixture
def live(demo) -> str:
    """The first demo merchant's live token."""
    return merchant_access_token(demo)


@pytest.fixture
def sandbox(demo) -> str:
    """The first demo merchant's sandbox (test-mode) token."""
    return merchant_access_token(demo, sandbox=True)
