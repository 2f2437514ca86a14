"""What every dashboard page shows around its content, and the merchant's day."""

from __future__ import annotations

from datetime import date
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse

from services.accounts import merchant
from services.api.web.client import Viewer
from services.api.web.rendering import render
from services.core import areas
from services.core.db import utcnow
from services.core.models import ServiceArea


def page(
    viewer: Viewer,
    request: Request,
    template: str,
    section: str,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    """A dashboard page: the layout (merchant, user, navigation) around `template`."""
    return render(
        request,
        template,
        status_code=status_code,
        viewer=viewer,
        company=merchant.company_name(viewer.db, viewer.tenant_id),
        section=section,
        flash=request.query_params.get("done"),
        **context,
    )


def home_area(viewer: Viewer) -> ServiceArea | None:
    """The merchant's default service area, else the first the platform serves."""
    code = merchant.settings_of(viewer.db, viewer.tenant_id).default_service_area
    return (areas.shared_area(viewer.db, code) if code else None) or areas.first_area(viewer.db)


def merchant_today(viewer: Viewer) -> date:
    """Today where the merchant delivers (its home area's time zone), else in UTC."""
    area = home_area(viewer)
    now = utcnow()
    return areas.local_day_of(area, now) if area else now.date()
