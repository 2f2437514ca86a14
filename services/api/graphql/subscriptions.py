"""Live delivery updates over WebSocket (graphql-transport-ws).

The feed reads the tenant's tracking events from the database, newest after the last
one sent, so it works the same whichever API process the client is connected to and
whichever process made the change. Clients authenticate in `connection_init` with
`{"Authorization": "Bearer <token>"}` (or the same header on the upgrade request).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from datetime import datetime
from typing import Annotated

import strawberry

from services.api.graphql.context import context_of
from services.api.graphql.deliveries import DeliveryStatus, Location
from services.api.graphql.permissions import ReadDeliveries
from services.core.db import merchant_transaction
from services.core.principal import Merchant
from services.deliveries import repository

POLL_SECONDS = 1.0
BATCH = 100


@strawberry.type(description="A change to one of your deliveries, as it happens.")
class DeliveryUpdate:
    delivery_id: strawberry.ID = strawberry.field(description="The delivery that changed.")
    reference: str = strawberry.field(description="Your order reference for it.")
    status: DeliveryStatus = strawberry.field(description="Its status after the change.")  # type: ignore[valid-type]
    at: datetime = strawberry.field(description="When the change happened, in UTC.")
    eta: datetime | None = strawberry.field(
        description="The delivery's estimated arrival now (not at the change), in UTC; null "
        "while it is on no route."
    )
    detail: str | None = strawberry.field(
        description="What happened, in English, for people; null when there is nothing to add."
    )
    reason: str | None = strawberry.field(
        description="For FAILED, a FailureReason value; for CANCELLED, the reason given to "
        "cancelDelivery; otherwise null."
    )
    location: Location | None = strawberry.field(
        description="Where it happened, when the driver's device reported it; else null."
    )


def _after(
    merchant: Merchant, last_id: str, delivery_id: str | None
) -> tuple[str, list[DeliveryUpdate]]:
    """The next updates after event `last_id`, and the id of the last one returned."""
    with merchant_transaction(merchant) as session:
        rows = repository.events_after(session, merchant, last_id, delivery_id, BATCH)
    updates = [
        DeliveryUpdate(
            delivery_id=strawberry.ID(event.delivery_id),
            reference=delivery.reference,
            status=event.status,
            at=event.at,
            eta=delivery.eta,
            detail=event.detail,
            reason=event.reason,
            location=Location.of_event(event),
        )
        for event, delivery in rows
    ]
    return (rows[-1][0].id if rows else last_id), updates


def _newest(merchant: Merchant) -> str:
    with merchant_transaction(merchant) as session:
        newest = repository.newest_event_id(session, merchant.tenant_id)
    return newest or ""


@strawberry.type(description="Live updates over WebSocket (graphql-transport-ws at /graphql).")
class DeliverySubscriptions:
    @strawberry.subscription(
        permission_classes=[ReadDeliveries],
        description="Every change to your deliveries from now on (or to one delivery).",
    )
    async def delivery_updates(
        self,
        info: strawberry.Info,
        delivery_id: Annotated[
            strawberry.ID | None,
            strawberry.argument(
                description="Only this delivery's updates; absent: all of your deliveries'."
            ),
        ] = None,
    ) -> AsyncGenerator[DeliveryUpdate, None]:
        merchant = context_of(info).merchant
        only = str(delivery_id) if delivery_id is not None else None
        last = await asyncio.to_thread(_newest, merchant)
        while True:
            last, updates = await asyncio.to_thread(_after, merchant, last, only)
            for update in updates:
                yield update
            if len(updates) < BATCH:
                await asyncio.sleep(POLL_SECONDS)
