"""Live delivery updates over WebSocket (graphql-transport-ws).

The feed reads the merchant's tracking events from the database, those committed since
its last look (`repository.events_since`), so it works the same whichever API process
the client is connected to and whichever process made the change, and misses nothing
committed out of order. Clients authenticate in `connection_init` with
`{"Authorization": "Bearer <token>"}` (or the same header on the upgrade request); a
feed lasts as long as that token, and a merchant holds a bounded number at a time on
each API process (`LASTMILE_SUBSCRIPTIONS_PER_MERCHANT`).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncGenerator
from datetime import datetime
from typing import Annotated

import strawberry
from fastapi import WebSocket
from graphql import GraphQLError

from services.api.graphql.context import Context, context_of
from services.api.graphql.deliveries import DeliveryStatus, Location
from services.api.graphql.permissions import ReadDeliveries
from services.api.oauth.tokens import still_valid
from services.core.db import merchant_transaction
from services.core.principal import Merchant
from services.core.settings import get_settings
from services.deliveries import repository

POLL_SECONDS = 1.0


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


def _since(
    merchant: Merchant, position: str | None, delivery_id: str | None
) -> tuple[str, list[DeliveryUpdate]]:
    """The updates since `position` (None: none, from now on), and the next position."""
    with merchant_transaction(merchant) as session:
        position, rows = repository.events_since(session, merchant, position, delivery_id)
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
    return position, updates


# Subscriptions open on this process, per merchant (tenant and mode).
_open: Counter[Merchant] = Counter()


@strawberry.type(description="Live updates over WebSocket (graphql-transport-ws at /graphql).")
class DeliverySubscriptions:
    @strawberry.subscription(
        permission_classes=[ReadDeliveries],
        description="Every change to your deliveries from now on (or to one delivery). It "
        "ends when the connection's access token expires (the socket closes with code "
        "4401: reconnect with a new token); one merchant may hold "
        f"{get_settings().subscriptions_per_merchant} at a time on one connection's server "
        "(more: TOO_MANY_SUBSCRIPTIONS).",
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
        ctx = context_of(info)
        merchant = ctx.merchant
        if _open[merchant] >= get_settings().subscriptions_per_merchant:
            raise GraphQLError(
                f"At most {get_settings().subscriptions_per_merchant} subscriptions at a time; "
                "complete one first.",
                extensions={"code": "TOO_MANY_SUBSCRIPTIONS"},
            )
        _open[merchant] += 1
        return _feed(ctx, merchant, str(delivery_id) if delivery_id is not None else None)


async def _feed(
    ctx: Context, merchant: Merchant, delivery_id: str | None
) -> AsyncGenerator[DeliveryUpdate, None]:
    """Poll for updates until the token expires or the client completes."""
    try:
        position, _ = await asyncio.to_thread(_since, merchant, None, delivery_id)
        while still_valid(ctx.token):
            position, updates = await asyncio.to_thread(_since, merchant, position, delivery_id)
            for update in updates:
                yield update
            await asyncio.sleep(POLL_SECONDS)
        if isinstance(ctx.request, WebSocket):  # its authentication has lapsed
            await ctx.request.close(code=4401, reason="The access token expired.")
    finally:
        _open[merchant] -= 1
        if not _open[merchant]:
            del _open[merchant]
