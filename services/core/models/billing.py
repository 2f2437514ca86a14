"""Metered usage, price plans, subscriptions, invoices and the books that check them.

Money is integer minor units of the row's currency; quantities are exact decimals.
Periods are calendar months in UTC written "YYYY-MM", which sort as they compare.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index, Numeric, String, UniqueConstraint
from sqlmodel import Field, SQLModel

from services.core.db import UTCDateTime, utcnow
from services.core.ids import new_id

PERIOD_LENGTH = 7  # "YYYY-MM"


class UsageEvent(SQLModel, table=True):
    """Metered usage: append-only, idempotent by id (a repeat is a no-op).

    `period` is the month of `at`; `billed_period` the month whose invoice bills it:
    the same month, unless that month's invoice was already finalized when the event
    arrived, in which case the tenant's first open month bills it as an adjustment.

    `tenant_id` has no foreign key: the only writer (`services.core.usage`) inserts an
    event joined to its tenant's billing account, locked in the same statement, and on
    PostgreSQL a trigger keeps an account with usage from being deleted. A per-row key
    check cost about a third of bulk ingestion's insert and proved nothing more.
    """

    __tablename__ = "usage_event"
    __table_args__ = (
        # A tenant's usage by billed month (invoice preview, usage reports); and every
        # tenant's by billed month (closing, reconciling), where rows are appended in
        # roughly billed-month order, so a block-range index is enough and costs
        # next to nothing to keep up on ingestion, unlike a second B-tree.
        Index("ix_usage_tenant_billed", "tenant_id", "billed_period"),
        Index(
            "ix_usage_billed_brin",
            "billed_period",
            postgresql_using="brin",
            postgresql_with={"autosummarize": "on"},
        ),
    )

    id: str = Field(primary_key=True)
    tenant_id: str
    meter: str
    quantity: Decimal = Field(sa_column=Column(Numeric(20, 6), nullable=False))
    at: datetime = Field(sa_type=UTCDateTime)
    key: str | None = None  # the distinct value for unique_count meters
    area_code: str | None = None  # dimension
    service_level: str | None = None  # dimension
    period: str = Field(sa_type=String(PERIOD_LENGTH))
    billed_period: str = Field(sa_type=String(PERIOD_LENGTH))
    recorded_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class PricePlan(SQLModel, table=True):
    __tablename__ = "price_plan"
    __table_args__ = (UniqueConstraint("code", "version", name="uq_price_plan_version"),)

    id: str = Field(default_factory=lambda: new_id("pp"), primary_key=True)
    code: str
    version: int = 1
    currency: str
    definition: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Subscription(SQLModel, table=True):
    id: str = Field(default_factory=lambda: new_id("sub"), primary_key=True)
    tenant_id: str = Field(foreign_key="tenant.id", index=True)
    plan_id: str = Field(foreign_key="price_plan.id")
    starts_on: date


class BillingAccount(SQLModel, table=True):
    """One row per tenant: the lock that serialises closing against late usage.

    A trigger inserts it with the tenant, so it exists before any usage. Recording
    usage takes it FOR SHARE, finalizing takes it FOR UPDATE, so a usage event either
    lands before a period is finalized (and is on its invoice) or sees the period
    closed (and is billed later). It also holds the gapless counters.
    """

    __tablename__ = "billing_account"

    tenant_id: str = Field(foreign_key="tenant.id", primary_key=True)
    closed_through: str | None = Field(default=None, sa_type=String(PERIOD_LENGTH))
    last_invoice_number: int = 0
    last_credit_note_number: int = 0


class InvoiceStatus(StrEnum):
    DRAFT = "draft"
    FINALIZED = "finalized"
    VOID = "void"


class Invoice(SQLModel, table=True):
    __table_args__ = (
        UniqueConstraint("tenant_id", "period", name="uq_invoice_period"),
        UniqueConstraint("tenant_id", "number", name="uq_invoice_number"),
    )

    id: str = Field(default_factory=lambda: new_id("inv"), primary_key=True)
    tenant_id: str = Field(foreign_key="tenant.id")
    period: str = Field(sa_type=String(PERIOD_LENGTH))
    status: InvoiceStatus = InvoiceStatus.DRAFT
    number: int | None = None  # per tenant, 1, 2, 3… without gaps, given on finalizing
    plan_id: str = Field(foreign_key="price_plan.id")
    currency: str
    subtotal_minor: int = Field(sa_type=BigInteger)
    total_minor: int = Field(sa_type=BigInteger)
    event_count: int = 0
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    finalized_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    voided_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    void_reason: str | None = None


class InvoiceLineKind(StrEnum):
    CHARGE = "charge"
    MINIMUM = "minimum"
    ADJUSTMENT = "adjustment"  # late usage of an earlier, already finalized period


class InvoiceLine(SQLModel, table=True):
    __tablename__ = "invoice_line"
    __table_args__ = (UniqueConstraint("invoice_id", "position", name="uq_invoice_line_position"),)

    id: str = Field(default_factory=lambda: new_id("inl"), primary_key=True)
    invoice_id: str = Field(foreign_key="invoice.id", index=True)
    position: int
    kind: InvoiceLineKind
    meter: str
    quantity: Decimal = Field(sa_column=Column(Numeric(38, 6), nullable=False))
    amount_minor: int = Field(sa_type=BigInteger)
    adjusts_period: str | None = Field(default=None, sa_type=String(PERIOD_LENGTH))


class CreditNote(SQLModel, table=True):
    """A correction of a finalized invoice; invoices themselves never change."""

    __tablename__ = "credit_note"
    __table_args__ = (UniqueConstraint("tenant_id", "number", name="uq_credit_note_number"),)

    id: str = Field(default_factory=lambda: new_id("cn"), primary_key=True)
    tenant_id: str = Field(foreign_key="tenant.id")
    invoice_id: str = Field(foreign_key="invoice.id", index=True)
    number: int
    currency: str
    amount_minor: int = Field(sa_type=BigInteger)
    reason: str
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class RouteAllocation(SQLModel, table=True):
    """A merchant's share of one planned route's cost, in one allocation revision.

    Revision 1 splits the whole route among the merchants on it when it is planned;
    each later revision splits what a late insertion added among the merchants whose
    stops it added. Shares are never changed, so a route's shares over all revisions
    sum to the highest cost it was allocated at (its current cost unless it got
    cheaper). `deliveries` lists the stops each share pays for, so a stop that no
    allocation covers is what the next revision allocates.
    """

    __tablename__ = "route_allocation"

    route_id: str = Field(foreign_key="route.id", primary_key=True)
    revision: int = Field(default=1, primary_key=True)
    tenant_id: str = Field(foreign_key="tenant.id", primary_key=True, index=True)
    amount_minor: int = Field(sa_type=BigInteger)
    currency: str
    method: str  # "sole", "shapley", "standalone" or "insertion"
    stops: int
    route_cost_minor: int = Field(sa_type=BigInteger)  # the route's cost when allocated
    deliveries: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ReconciliationRun(SQLModel, table=True):
    __tablename__ = "reconciliation_run"

    id: str = Field(default_factory=lambda: new_id("rec"), primary_key=True)
    period: str | None = Field(default=None, sa_type=String(PERIOD_LENGTH))
    started_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    findings: int = 0


class ReconciliationFinding(SQLModel, table=True):
    __tablename__ = "reconciliation_finding"

    id: str = Field(default_factory=lambda: new_id("fnd"), primary_key=True)
    run_id: str = Field(foreign_key="reconciliation_run.id", index=True)
    check: str
    subject: str  # the delivery, invoice or route concerned
    tenant_id: str | None = None
    message: str
