"""Row-level security on PostgreSQL: a merchant's transaction sees and writes only its
tenant's rows, even when a query forgets the tenant filter."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import ProgrammingError
from sqlmodel import SQLModel, select

from services.core.db import across_tenants, for_tenant, transaction
from services.core.models import Delivery, IdempotencyRecord, OutboxEvent, Tenant
from tests.factories import BOOK, booking_input, graphql, merchant_access_token


@pytest.fixture(autouse=True)
def _postgresql_only(engine):
    if engine.dialect.name != "postgresql":
        pytest.skip("row-level security is PostgreSQL's")


@pytest.fixture
def tenants(client, demo) -> tuple[str, str]:
    """The two demo merchants, each with one delivery booked over the API."""
    for index, reference in ((0, "first-1"), (1, "second-1")):
        body = graphql(
            client, merchant_access_token(demo, index), BOOK, {"input": booking_input(reference)}
        )
        assert body["data"]["bookDelivery"]["delivery"], body
    return demo["merchants"][0]["tenant_id"], demo["merchants"][1]["tenant_id"]


def test_the_application_role_is_subject_to_row_level_security(engine):
    with engine.connect() as connection:
        superuser, bypass = connection.execute(
            text("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")
        ).one()
    assert (superuser, bypass) == (False, False)


def test_every_table_with_a_tenant_has_the_wall(engine):
    tenant_tables = {t.name for t in SQLModel.metadata.sorted_tables if "tenant_id" in t.c}
    tenant_tables |= {"idempotency_record", "tenant"}  # tenant named `principal`, `id`
    with engine.connect() as connection:
        walled = set(
            connection.execute(
                text(
                    "SELECT c.relname FROM pg_class c JOIN pg_policy p ON p.polrelid = c.oid "
                    "WHERE p.polname = 'tenant_wall' AND c.relrowsecurity "
                    "AND c.relforcerowsecurity"
                )
            ).scalars()
        )
    assert walled == tenant_tables


def test_a_tenant_transaction_reads_only_its_rows_even_unfiltered(tenants):
    first, second = tenants
    with transaction() as session:  # the platform's own jobs see every tenant
        assert {d.tenant_id for d in session.exec(select(Delivery)).all()} == {first, second}
    with transaction() as session:
        for_tenant(session, first)
        assert [d.reference for d in session.exec(select(Delivery)).all()] == ["first-1"]
        with across_tenants(session):
            assert len(session.exec(select(Delivery)).all()) == 2
        assert len(session.exec(select(Delivery)).all()) == 1  # confined again
        session.commit()
        # The session's next transaction is confined too.
        assert [d.reference for d in session.exec(select(Delivery)).all()] == ["first-1"]


def test_a_tenant_sees_only_its_own_tenant_row_and_idempotency_keys(client, demo, tenants):
    first, second = tenants
    for index, key in ((0, "key-first"), (1, "key-second")):
        body = graphql(
            client,
            merchant_access_token(demo, index),
            BOOK,
            {"input": booking_input(key, idempotencyKey=key)},
        )
        assert body["data"]["bookDelivery"]["delivery"], body
    with transaction() as session:
        for_tenant(session, first)
        assert session.exec(select(Tenant.id)).all() == [first]
        assert session.exec(select(IdempotencyRecord.key)).all() == ["key-first"]
    with transaction() as session:  # the platform (and the key purge) sees them all
        assert {second, first} <= set(session.exec(select(Tenant.id)).all())
        assert len(session.exec(select(IdempotencyRecord)).all()) == 2


def test_an_unfiltered_update_leaves_other_tenants_rows_alone(tenants):
    first, _ = tenants
    with transaction() as session:
        for_tenant(session, first)
        session.connection().execute(text("UPDATE delivery SET reference = 'changed'"))
    with transaction() as session:
        assert sorted(d.reference for d in session.exec(select(Delivery)).all()) == [
            "changed",
            "second-1",
        ]


@pytest.mark.parametrize("owner", ["other", "platform"])
def test_a_tenant_transaction_cannot_write_rows_of_another_owner(tenants, owner):
    first, second = tenants
    with pytest.raises(ProgrammingError, match="row-level security"), transaction() as session:
        for_tenant(session, first)
        session.add(
            OutboxEvent(
                id="obx_foreign",
                tenant_id=second if owner == "other" else None,
                topic="delivery.booked",
                payload={},
            )
        )
    with transaction() as session:
        assert session.get(OutboxEvent, "obx_foreign") is None
