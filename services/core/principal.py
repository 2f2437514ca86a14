"""Who a merchant's request acts for: its tenant, in one mode (live or sandbox).

Mode is part of the principal everywhere. A merchant's live and sandbox credentials
are two principals that share a tenant and nothing else: deliveries, idempotency keys,
quotes, webhook endpoints and messages, cost budgets and subscriptions are each one
mode's; sandbox is never billed and reads no billing. The platform's own jobs and the
operator act for no merchant (`None` where a `Merchant` is expected).
"""

from __future__ import annotations

from dataclasses import dataclass

LIVE = "live"
SANDBOX = "sandbox"


@dataclass(frozen=True)
class Merchant:
    tenant_id: str
    sandbox: bool = False

    @property
    def mode(self) -> str:
        """ "live" or "sandbox", as webhook payloads and budgets name it."""
        return SANDBOX if self.sandbox else LIVE
