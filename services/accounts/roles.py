"""Roles at a merchant and what each may do.

The dashboard asks `allows(role, capability)` before showing or changing anything, and
the OAuth server grants a user's tokens no scope beyond `scopes_for(role)`, so the API
itself refuses what the role may not do (a viewer's token cannot book; a developer's
cannot read billing).
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    OWNER = "owner"
    ADMIN = "admin"
    DEVELOPER = "developer"
    VIEWER = "viewer"


class Capability(StrEnum):
    VIEW_DELIVERIES = "view_deliveries"
    MANAGE_DELIVERIES = "manage_deliveries"  # book, cancel, reschedule
    VIEW_DEVELOPERS = "view_developers"
    MANAGE_DEVELOPERS = "manage_developers"  # API clients, webhooks
    VIEW_BILLING = "view_billing"
    VIEW_TEAM = "view_team"
    MANAGE_TEAM = "manage_team"  # invitations, roles, company settings


_ALL = frozenset(Capability)
CAPABILITIES: dict[Role, frozenset[Capability]] = {
    Role.OWNER: _ALL,
    Role.ADMIN: _ALL,
    Role.DEVELOPER: frozenset(
        {
            Capability.VIEW_DELIVERIES,
            Capability.MANAGE_DELIVERIES,
            Capability.VIEW_DEVELOPERS,
            Capability.MANAGE_DEVELOPERS,
            Capability.VIEW_TEAM,
        }
    ),
    Role.VIEWER: frozenset(
        {
            Capability.VIEW_DELIVERIES,
            Capability.VIEW_DEVELOPERS,
            Capability.VIEW_BILLING,
            Capability.VIEW_TEAM,
        }
    ),
}

_SCOPES: dict[Role, str] = {
    Role.OWNER: "deliveries:read deliveries:write billing:read",
    Role.ADMIN: "deliveries:read deliveries:write billing:read",
    Role.DEVELOPER: "deliveries:read deliveries:write",
    Role.VIEWER: "deliveries:read billing:read",
}

DESCRIPTIONS: dict[Role, str] = {
    Role.OWNER: "Everything, including the team and billing.",
    Role.ADMIN: "Everything, including the team and billing.",
    Role.DEVELOPER: "Deliveries, API clients and webhooks; not billing nor the team.",
    Role.VIEWER: "Sees deliveries, developers' settings and billing; changes nothing.",
}


def allows(role: Role | str, capability: Capability) -> bool:
    return capability in CAPABILITIES[Role(role)]


def scopes_for(role: Role | str) -> frozenset[str]:
    """The API scopes a user with this role may hold."""
    return frozenset(_SCOPES[Role(role)].split())
