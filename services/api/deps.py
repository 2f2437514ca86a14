"""FastAPI dependencies shared by every endpoint."""

from __future__ import annotations

from collections.abc import Iterator

from sqlmodel import Session

from services.core.db import transaction


def get_session() -> Iterator[Session]:
    """The request owns the transaction: commit when the handler returns, roll back if it raises."""
    with transaction() as session:
        yield session
