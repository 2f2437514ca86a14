"""Booking from a CSV upload: each row is a `bookDeliveries` input, booked by the same
service with the same rules (each row stands on its own; a rejected row writes
nothing), and every problem is reported with its row and column."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, Response

from services.accounts import merchant
from services.accounts.roles import Capability
from services.api.graphql.deliveries import MAX_BULK_BOOKINGS
from services.api.web.client import Viewer, viewer
from services.api.web.deliveries import WRITE, parse_booking
from services.api.web.layout import page
from services.api.web.session import check_csrf
from services.core.errors import UserErrors
from services.core.models import Delivery
from services.deliveries import booking

router = APIRouter()

MAX_ROWS = 2000
MAX_BYTES = 2_000_000
COLUMNS = [
    "reference", "service_area", "date", "window_start", "window_end", "lat", "lng", "line1",
    "city", "postal_code", "country", "recipient_name", "recipient_phone", "recipient_email",
    "weight_grams", "length_cm", "width_cm", "height_cm", "idempotency_key",
]  # fmt: skip
REQUIRED = {"reference", "lat", "lng", "recipient_name", "weight_grams"}
# The domain's error paths, as the CSV's columns.
COLUMN_OF = {
    "reference": "reference", "serviceArea": "service_area", "dropoff": "lat/lng",
    "recipient.name": "recipient_name", "recipient.phone": "recipient_phone",
    "recipient.email": "recipient_email", "parcel.weightGrams": "weight_grams",
    "parcel.lengthCm": "length_cm", "parcel.widthCm": "width_cm", "parcel.heightCm": "height_cm",
    "date": "date", "timeWindow": "window_start/window_end", "idempotencyKey": "idempotency_key",
}  # fmt: skip


@dataclass(frozen=True)
class RowProblem:
    line: int
    reference: str
    column: str
    message: str


@router.get("/dashboard/deliveries/upload", response_class=HTMLResponse)
def upload_form(request: Request, me: Viewer = Depends(viewer)) -> HTMLResponse:
    me.require(Capability.MANAGE_DELIVERIES, WRITE)
    return page(me, request, "upload.html", "Deliveries", columns=COLUMNS, result=None)


@router.post("/dashboard/deliveries/upload", response_class=HTMLResponse)
def upload(
    request: Request,
    csrf_token: str = Form(""),
    file: UploadFile = File(...),
    me: Viewer = Depends(viewer),
) -> Response:
    check_csrf(csrf_token, me.csrf_token)
    me.require(Capability.MANAGE_DELIVERIES, WRITE)
    raw = file.file.read(MAX_BYTES + 1)
    booked: list[Delivery] = []
    problems: list[RowProblem] = []
    if len(raw) > MAX_BYTES:
        problems.append(RowProblem(0, "", "file", f"The file is over {MAX_BYTES:,} bytes."))
    else:
        booked, problems = book_csv(me, raw)
    return page(
        me,
        request,
        "upload.html",
        "Deliveries",
        status_code=200 if booked or not problems else 422,
        columns=COLUMNS,
        result={"booked": booked, "problems": problems, "name": file.filename},
    )


def book_csv(me: Viewer, raw: bytes) -> tuple[list[Delivery], list[RowProblem]]:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return [], [RowProblem(0, "", "file", "The file is not UTF-8 text.")]
    reader = csv.DictReader(io.StringIO(text))
    header = [name.strip() for name in reader.fieldnames or []]
    missing = sorted(REQUIRED - set(header))
    if missing:
        return [], [RowProblem(1, "", ", ".join(missing), "Required columns are missing.")]
    default_area = merchant.settings_of(me.db, me.tenant_id).default_service_area or "demo"
    pending: list[tuple[int, str, booking.BookingRequest]] = []
    problems: list[RowProblem] = []
    for line, row in enumerate(reader, start=2):
        if line - 1 > MAX_ROWS:
            problems.append(RowProblem(line, "", "file", f"At most {MAX_ROWS} rows per file."))
            break
        values = {(key or "").strip(): (value or "").strip() for key, value in row.items()}
        if not any(values.values()):
            continue
        form = {**values, "service_area": values.get("service_area") or default_area}
        if values.get("window_start") or values.get("window_end"):
            form["window"] = f"{values.get('window_start', '')}|{values.get('window_end', '')}"
        parsed, errors = parse_booking(form)
        reference = values.get("reference", "")
        if parsed is None:
            problems.extend(
                RowProblem(line, reference, "window_start/window_end" if k == "window" else k, m)
                for k, m in errors.items()
            )
            continue
        pending.append((line, reference, parsed))
    booked: list[Delivery] = []
    for start in range(0, len(pending), MAX_BULK_BOOKINGS):
        chunk = pending[start : start + MAX_BULK_BOOKINGS]
        outcomes = booking.book_many(
            me.db, me.tenant_id, [r for _, _, r in chunk], me.now, sandbox=me.token.sandbox
        )
        for (line, reference, _), outcome in zip(chunk, outcomes, strict=True):
            if isinstance(outcome, UserErrors):
                problems.extend(
                    RowProblem(line, reference, COLUMN_OF.get(".".join(e.field), "row"), e.message)
                    for e in outcome.errors
                )
            else:
                booked.append(outcome)
    problems.sort(key=lambda problem: problem.line)
    return booked, problems
