"""Row-level security on PostgreSQL, failing closed.

Three roles: the owner of the tables runs migrations only; merchants' requests run as
`lastmile_app`, which sees a tenant's rows of one mode once its transaction names them
and nothing otherwise; the platform's jobs run as `lastmile_platform`, which sees every
row. Serving refuses an owner, a superuser or a BYPASSRLS role."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError, ProgrammingError
from sqlmodel import SQLModel, select

from services.core.db import (
    UnsafeDatabaseRole,
    across_tenants,
    check_role,
    get_merchant_engine,
    merchant_transaction,
    transaction,
)
from services.core.migrate import MERCHANT_ROLE, PLATFORM_ROLE
from services.core.models import Delivery, IdempotencyRecord, OutboxEvent, Tenant
from services.core.principal import Merchant
from tests.factories import BOOK, booking_input, graphql, merchant_access_token

# Tables that hold no tenant's data at all: every merchant transaction reads all of them
# or none (the platform's plan runs and reconciliation, the cost bases of whole routes).
PLATFORM_TABLES = {
    "plan_run",
    "reconciliation_run",
    "reconciliation_finding",
    "route_cost_basis",
    "lease",
}


@pytest.fixture(autouse=True)
def _postgresql_only(engine):
    if engine.dialect.name != "postgresql":
        pytest.skip("row-level security is PostgreSQL's")


@pytest.fixture
def tenants(client, demo) -> tuple[str, str]:
    """The two demo merchants, each with one live delivery booked over the API, and the
    first with a sandbox one too."""
    for index, reference, sandbox in ((0, "first-1", False), (1, "second-1", False)):
        body = graphql(
            client,
            merchant_access_token(demo, index, sandbox=sandbox),
            BOOK,
            {"input": booking_input(reference)},
        )
        assert body["data"]["bookDelivery"]["delivery"], body
    test = graphql(
        client, merchant_access_token(demo, 0, sandbox=True), BOOK, {"input": booking_input("t")}
    )
    assert test["data"]["bookDelivery"]["delivery"], test
    return demo["merchants"][0]["tenant_id"], demo["merchants"][1]["tenant_id"]


def _count(connection, table: str = "delivery") -> int:
    return int(connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


def test_a_merchant_connection_that_names_no_tenant_sees_nothing(tenants):
    with get_merchant_engine().connect() as connection:
        assert _count(connection) == 0
        connection.execute(text("SELECT set_config('lastmile.tenant_id', '', false)"))
        connection.execute(text("SELECT set_config('lastmile.mode', 'live', false)"))
        assert _count(connection) == 0
        for table in ("tenant", "usage_event", "webhook_endpoint", "idempotency_record"):
            assert _count(connection, table) == 0, table


def test_the_merchant_role_cannot_take_the_wall_down(tenants):
    with (
        pytest.raises(ProgrammingError, match="must be owner"),
        get_merchant_engine().begin() as connection,
    ):
        connection.execute(text("ALTER TABLE delivery DISABLE ROW LEVEL SECURITY"))
    with pytest.raises(DBAPIError), get_merchant_engine().begin() as connection:
        connection.execute(text("TRUNCATE delivery"))
    with (
        pytest.raises(ProgrammingError, match="row-level security"),
        get_merchant_engine().begin() as connection,
    ):
        connection.execute(text("SET LOCAL row_security = off"))
        connection.execute(text("SELECT count(*) FROM delivery"))


def test_every_table_has_the_wall_and_a_policy_for_each_role_that_needs_one(engine):
    tables = {t.name for t in SQLModel.metadata.sorted_tables}
    with engine.connect() as connection:
        secured = set(
            connection.execute(
                text("SELECT relname FROM pg_class WHERE relrowsecurity AND relkind = 'r'")
            ).scalars()
        )
        policies = {
            (table, role)
            for table, role in connection.execute(
                text(
                    "SELECT c.relname, r.rolname FROM pg_policy p "
                    "JOIN pg_class c ON c.oid = p.polrelid "
                    "JOIN pg_roles r ON r.oid = ANY (p.polroles)"
                )
            )
        }
    assert tables <= secured
    assert {(table, PLATFORM_ROLE) for table in tables} <= policies
    assert {(table, MERCHANT_ROLE) for table in tables - PLATFORM_TABLES} <= policies
    assert not {(table, MERCHANT_ROLE) for table in PLATFORM_TABLES} & policies


def test_a_merchant_transaction_reads_only_its_tenants_rows_of_its_mode(tenants):
    first, second = tenants
    with transaction() as session:  # the platform's own jobs see every tenant and mode
        assert {(d.tenant_id, d.sandbox) for d in session.exec(select(Delivery)).all()} == {
            (first, False),
            (first, True),
            (second, False),
        }
    with merchant_transaction(Merchant(first)) as session:
        assert [d.reference for d in session.exec(select(Delivery)).all()] == ["first-1"]
        with across_tenants(session) as everyone:  # the one sanctioned way round it
            assert len(everyone.exec(select(Delivery)).all()) == 3
        assert len(session.exec(select(Delivery)).all()) == 1
        session.commit()
        # The session's next transaction is confined too.
        assert [d.reference for d in session.exec(select(Delivery)).all()] == ["first-1"]
    with merchant_transaction(Merchant(first, sandbox=True)) as session:
        assert [d.reference for d in session.exec(select(Delivery)).all()] == ["t"]
        assert session.exec(select(Tenant.id)).all() == [first]


def test_a_merchant_sees_its_own_idempotency_keys_of_its_mode_only(client, demo, tenants):
    first, second = tenants
    for index, key in ((0, "key-first"), (1, "key-second")):
        body = graphql(
            client,
            merchant_access_token(demo, index),
            BOOK,
            {"input": booking_input(key, idempotencyKey=key)},
        )
        assert body["data"]["bookDelivery"]["delivery"], body
    with merchant_transaction(Merchant(first)) as session:
        assert session.exec(select(IdempotencyRecord.key)).all() == ["key-first"]
    with merchant_transaction(Merchant(first, sandbox=True)) as session:
        assert session.exec(select(IdempotencyRecord.key)).all() == []
    with transaction() as session:  # the platform (and the key purge) sees them all
        assert {second, first} <= set(session.exec(select(Tenant.id)).all())
        assert len(session.exec(select(IdempotencyRecord)).all()) == 2


def test_an_unfiltered_update_leaves_other_tenants_rows_alone(tenants):
    first, _ = tenants
    with merchant_transaction(Merchant(first)) as session:
        session.connection().execute(text("UPDATE delivery SET reference = 'changed'"))
    with transaction() as session:
        assert sorted(d.reference for d in session.exec(select(Delivery)).all()) == [
            "changed",
            "second-1",
            "t",
        ]


@pytest.mark.parametrize("owner", ["other tenant", "other mode", "platform"])
def test_a_merchant_transaction_cannot_write_rows_of_another_owner(tenants, owner):
    first, second = tenants
    with (
        pytest.raises(ProgrammingError, match="row-level security"),
        merchant_transaction(Merchant(first)) as session,
    ):
        session.add(
            OutboxEvent(
                id="obx_foreign",
                tenant_id={"other tenant": second, "other mode": first}.get(owner),
                sandbox=owner == "other mode",
                topic="delivery.booked",
                payload={},
            )
        )
    with transaction() as session:
        assert session.get(OutboxEvent, "obx_foreign") is None


def test_serving_refuses_an_owner_a_superuser_and_the_other_roles_connection(engine):
    from tests.conftest import OWNER_DATABASE_URL, TEST_DATABASE_URL, admin_url

    for url, serves in (
        (OWNER_DATABASE_URL, "merchant"),
        (OWNER_DATABASE_URL, "platform"),
        (admin_url(), "platform"),
        (TEST_DATABASE_URL, "merchant"),  # the platform's role serving merchants
    ):
        unsafe = create_engine(url)
        try:
            with pytest.raises(UnsafeDatabaseRole), unsafe.connect() as connection:
                check_role(connection, serves)
        finally:
            unsafe.dispose()
    for working in (engine, get_merchant_engine()):  # what the suite itself serves as
        with working.connect():
            pass
