"""Templates, assets and the responses pages send."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape

from services.api.graphiql import ASSETS

HERE = Path(__file__).parent
STATIC_PREFIX = "/static"
VENDOR_PREFIX = "/static/vendor"

_env = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def _when(value: datetime | None, zone: str | None = None, fmt: str = "%b %d, %H:%M") -> str:
    if value is None:
        return "—"
    local = value.astimezone(ZoneInfo(zone)) if zone else value.astimezone(UTC)
    return local.strftime(fmt)


def _day(value: date | None) -> str:
    return value.strftime("%a %b %d, %Y") if value else "—"


def _number(value: int | float | Decimal) -> str:
    return f"{value:,}"


_env.filters["when"] = _when
_env.filters["day"] = _day
_env.filters["number"] = _number
_env.globals["static"] = lambda path: f"{STATIC_PREFIX}/{path}"
_env.globals["vendor"] = lambda path: f"{VENDOR_PREFIX}/{path}"

# Pages are never cached by shared caches, and never framed (clickjacking).
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
    "style-src 'self' 'unsafe-inline'; script-src 'self'; frame-ancestors 'none'; "
    "form-action 'self'",
}


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    html = _env.get_template(template).render(request=request, **context)
    return HTMLResponse(html, status_code=status_code, headers=SECURITY_HEADERS)


def mount_static(app: FastAPI) -> None:
    """Our own stylesheet and scripts, and the npm packages the pages use."""
    app.mount(VENDOR_PREFIX, StaticFiles(directory=ASSETS, check_dir=False), name="vendor")
    app.mount(STATIC_PREFIX, StaticFiles(directory=HERE / "static"), name="static")
