"""A merchant's settings: company profile, default service area, recipient notifications."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session

from services.accounts.users import check_email
from services.core import areas
from services.core.errors import UserError, UserErrorCode, UserErrors
from services.core.models import MerchantSettings, Tenant

MAX_TEXT = 300


@dataclass(frozen=True)
class Profile:
    name: str
    legal_name: str | None
    address: str | None
    support_email: str | None
    support_phone: str | None
    default_service_area: str | None


def settings_of(session: Session, tenant_id: str) -> MerchantSettings:
    """The merchant's settings; defaults when it never saved any."""
    return session.get(MerchantSettings, tenant_id) or MerchantSettings(tenant_id=tenant_id)


def update_profile(
    session: Session, tenant_id: str, profile: Profile, now: datetime
) -> MerchantSettings:
    errors: list[UserError] = []
    if not profile.name.strip():
        errors.append(UserError(("name",), "Enter the company's name.", UserErrorCode.REQUIRED))
    for field, value in (
        ("name", profile.name),
        ("legalName", profile.legal_name),
        ("address", profile.address),
        ("supportPhone", profile.support_phone),
    ):
        if value is not None and len(value) > MAX_TEXT:
            errors.append(
                UserError((field,), f"At most {MAX_TEXT} characters.", UserErrorCode.TOO_LONG)
            )
    if profile.support_email:
        check_email(profile.support_email, ("supportEmail",), errors)
    area = profile.default_service_area
    if area and areas.shared_area(session, area) is None:
        errors.append(
            UserError(
                ("defaultServiceArea",),
                f"No service area has the code {area!r}.",
                UserErrorCode.SERVICE_AREA_NOT_FOUND,
            )
        )
    if errors:
        raise UserErrors(errors)
    tenant = session.get(Tenant, tenant_id)
    assert tenant is not None
    tenant.name = profile.name.strip()
    row = settings_of(session, tenant_id)
    row.legal_name = profile.legal_name or None
    row.address = profile.address or None
    row.support_email = profile.support_email or None
    row.support_phone = profile.support_phone or None
    row.default_service_area = area or None
    row.updated_at = now
    session.add(tenant)
    session.add(row)
    return row


def set_notifications(
    session: Session, tenant_id: str, chosen: dict[str, bool], now: datetime
) -> MerchantSettings:
    row = settings_of(session, tenant_id)
    row.notifications = dict(chosen)
    row.updated_at = now
    session.add(row)
    return row


def company_name(session: Session, tenant_id: str) -> str:
    tenant = session.get(Tenant, tenant_id)
    return tenant.name if tenant else ""
