"""Scope checks: every field that touches tenant data names the scope it needs.

Billing is live credentials' alone: sandbox is never billed, so a sandbox token reads
no billing whatever scopes it holds.
"""

from __future__ import annotations

from typing import Any

from strawberry.permission import BasePermission


class _ScopeRequired(BasePermission):
    scope: str

    @property
    def message(self) -> str:  # type: ignore[override]
        return f"This field needs the {self.scope!r} scope."

    error_extensions = {"code": "ACCESS_DENIED"}

    def has_permission(self, source: Any, info: Any, **kwargs: Any) -> bool:
        token = info.context.token
        return self.scope in token.scopes and (
            token.tenant_id is not None or self.scope == "operator"
        )


class ReadDeliveries(_ScopeRequired):
    scope = "deliveries:read"


class WriteDeliveries(_ScopeRequired):
    scope = "deliveries:write"


class ReadBilling(_ScopeRequired):
    scope = "billing:read"

    @property
    def message(self) -> str:  # type: ignore[override]
        return f"This field needs live credentials with the {self.scope!r} scope."

    def has_permission(self, source: Any, info: Any, **kwargs: Any) -> bool:
        return super().has_permission(source, info) and not info.context.token.sandbox


class Operator(_ScopeRequired):
    scope = "operator"
