"""CSV exports of a merchant's usage and invoices, for spreadsheets and accounting tools.

Same Bearer tokens as GraphQL, scope `billing:read`; only the caller's tenant's rows.
Rows are streamed from the aggregating queries, never built from raw events in Python.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, timedelta

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import StreamingResponse
from sqlmodel import Session

from services.api.auth import merchant_with
from services.api.oauth.tokens import AccessToken
from services.billing.invoicing import invoices_of, stored_lines
from services.billing.metering import usage_by_day
from services.core.db import merchant_transaction
from services.core.money import currency_for, format_amount, format_quantity, from_minor
from services.core.principal import Merchant

router = APIRouter(prefix="/billing/export", tags=["billing"])
MAX_DAYS = 366


merchant_token = merchant_with("billing:read", live=True)  # sandbox is never billed


def merchant_session(token: AccessToken = Depends(merchant_token)) -> Iterator[Session]:
    """The request's transaction, confined to the caller's tenant, live (billing is)."""
    assert token.tenant_id is not None
    with merchant_transaction(Merchant(token.tenant_id)) as session:
        yield session


def _csv(name: str, header: list[str], rows: Iterable[list[str]]) -> StreamingResponse:
    def lines() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        for row in [header, *rows]:
            writer.writerow(row)
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()

    return StreamingResponse(
        lines(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.get("/usage.csv")
def usage_csv(
    start: date = Query(alias="from"),
    end: date = Query(alias="to"),
    token: AccessToken = Depends(merchant_token),
    session: Session = Depends(merchant_session),
) -> StreamingResponse:
    """Usage per UTC day, meter and area for days in [from, to)."""
    if not start < end <= start + timedelta(days=MAX_DAYS):
        raise HTTPException(422, f"'to' must be after 'from' and at most {MAX_DAYS} days later.")
    assert token.tenant_id is not None
    rows = usage_by_day(
        session,
        token.tenant_id,
        datetime(start.year, start.month, start.day, tzinfo=UTC),
        datetime(end.year, end.month, end.day, tzinfo=UTC),
        by_area=True,
    )
    return _csv(
        f"usage-{start}-{end}.csv",
        ["day", "meter", "area", "quantity", "events"],
        ([r.day.isoformat(), r.meter, r.area_code or "", format_quantity(r.quantity),
          str(r.events)] for r in rows),
    )  # fmt: skip


@router.get("/invoices.csv")
def invoices_csv(
    token: AccessToken = Depends(merchant_token), session: Session = Depends(merchant_session)
) -> StreamingResponse:
    """Every invoice line of the merchant, one row each, with the invoice's figures."""
    assert token.tenant_id is not None
    invoices = reversed(invoices_of(session, token.tenant_id))  # oldest period first
    rows = []
    for invoice in invoices:
        currency = currency_for(invoice.currency)
        total = format_amount(from_minor(invoice.total_minor, currency), currency)
        for line in stored_lines(session, invoice):
            rows.append([
                invoice.id, str(invoice.number or ""), invoice.period, invoice.status.value,
                invoice.currency, line.kind.value, line.meter, format_quantity(line.quantity),
                format_amount(line.amount, currency), line.adjusts_period or "", total,
            ])  # fmt: skip
    return _csv(
        "invoices.csv",
        ["invoice_id", "number", "period", "status", "currency", "kind", "meter", "quantity",
         "amount", "adjusts_period", "invoice_total"],
        rows,
    )  # fmt: skip
