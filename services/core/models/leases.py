"""Leases: which one of several identical processes does a job alone (the scheduler)."""

from __future__ import annotations

from sqlmodel import Field, SQLModel


class Lease(SQLModel, table=True):
    """A named job's current holder, until `expires_at` (Unix seconds, holder's clock).

    The holder renews it well before it expires; anyone may take it once it has. See
    `services.core.leader`.
    """

    name: str = Field(primary_key=True)
    holder: str
    acquired_at: float
    expires_at: float
