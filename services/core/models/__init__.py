"""Every table of Lastmile, in one shared kernel.

The planner and billing must never import each other, yet both read deliveries and
routes, so the data model lives here and the services own the rules around it.
Tenant-owned rows carry `tenant_id`; repositories filter on it for every query.
Money is integer minor units of the area's or plan's currency; quantities are Decimal.
"""

from services.core.models.areas import ServiceArea, Shift, Vehicle
from services.core.models.billing import (
    BillingAccount,
    CreditNote,
    Invoice,
    InvoiceLine,
    InvoiceLineKind,
    InvoiceStatus,
    PricePlan,
    ReconciliationFinding,
    ReconciliationRun,
    RouteAllocation,
    Subscription,
    UsageEvent,
)
from services.core.models.deliveries import Delivery, DeliveryEvent, DeliveryStatus
from services.core.models.idempotency import IdempotencyRecord
from services.core.models.leases import Lease
from services.core.models.outbox import OutboxEvent
from services.core.models.planning import PlanRun, PlanRunStatus, Route, RouteCostBasis, Stop
from services.core.models.quotes import Quote
from services.core.models.tenancy import OAuthClient, Tenant
from services.core.models.webhooks import (
    WebhookAttempt,
    WebhookEndpoint,
    WebhookMessage,
    WebhookMessageStatus,
)

__all__ = [
    "BillingAccount",
    "CreditNote",
    "Delivery",
    "DeliveryEvent",
    "DeliveryStatus",
    "IdempotencyRecord",
    "Invoice",
    "InvoiceLine",
    "InvoiceLineKind",
    "InvoiceStatus",
    "Lease",
    "OAuthClient",
    "OutboxEvent",
    "PlanRun",
    "PlanRunStatus",
    "PricePlan",
    "Quote",
    "ReconciliationFinding",
    "ReconciliationRun",
    "Route",
    "RouteAllocation",
    "RouteCostBasis",
    "ServiceArea",
    "Shift",
    "Stop",
    "Subscription",
    "Tenant",
    "UsageEvent",
    "Vehicle",
    "WebhookAttempt",
    "WebhookEndpoint",
    "WebhookMessage",
    "WebhookMessageStatus",
]
