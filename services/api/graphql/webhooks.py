"""GraphQL for webhooks: endpoints and their secrets, the message log, replays.

Queries need `deliveries:read`, mutations `deliveries:write`; the tenant comes from the
token only. A secret is returned once, by the mutation that creates it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Annotated, Any

import strawberry
from sqlmodel import Session
from strawberry.scalars import JSON

from services.api.graphql.context import context_of
from services.api.graphql.enums import describe_values
from services.api.graphql.errors import UserError
from services.api.graphql.permissions import ReadDeliveries, WriteDeliveries
from services.api.graphql.relay import PageInfo, decode_cursor, encode_cursor, page_size
from services.core import models
from services.core.errors import UserErrors
from services.core.principal import Merchant
from services.webhooks import service
from services.webhooks.events import EVENT_TYPES

WebhookMessageStatus = describe_values(
    strawberry.enum(
        models.WebhookMessageStatus,
        name="WebhookMessageStatus",
        description="Where a webhook message is in its delivery. Stable: clients may branch "
        "on these values.",
    ),
    {
        "PENDING": "Not attempted yet (or replayed and not attempted since).",
        "FAILED": "The last attempt failed; the next one is due at `nextAttemptAt`.",
        "DELIVERED": "Your endpoint acknowledged it with a 2xx.",
        "DEAD": "Given up on: retries exhausted, or the endpoint was disabled or deleted; "
        "replay it with replayWebhookMessage.",
    },
)

_ENDPOINT_ID = "The webhook endpoint's id."
_FIRST = "Page size, 0 to 100; default 50."
_AFTER = "Start after this cursor (the previous page's `endCursor`); absent: from the beginning."
_ENDPOINT_RESULT = "The endpoint after the change; null when it was rejected."
_USER_ERRORS = "Why the change was rejected (nothing was changed); empty on success."


@strawberry.type(description="An event type you can subscribe to.")
class WebhookEventType:
    name: str = strawberry.field(description='As in the payload\'s "type", e.g. delivery.booked.')
    description: str = strawberry.field(description="When it is sent, in English.")


@strawberry.type(description="Where we POST the events you subscribed to.")
class WebhookEndpoint:
    id: strawberry.ID = strawberry.field(description=_ENDPOINT_ID)
    url: str = strawberry.field(description="Where we POST the events.")
    event_types: list[str] = strawberry.field(
        description="The event types it receives, each listed once (see `webhookEventTypes`)."
    )
    enabled: bool = strawberry.field(
        description="Whether new events are sent to it; false once disabled, by you or after "
        "three days of failures."
    )
    disabled_reason: str | None = strawberry.field(
        description="Why it stopped receiving events (e.g. its last failure); null while enabled."
    )
    disabled_at: datetime | None = strawberry.field(
        description="When it was disabled, in UTC; null while enabled."
    )
    previous_secret_expires_at: datetime | None = strawberry.field(
        description="Until then (UTC) deliveries are also signed with the secret before the "
        "last rotation; null before any rotation and after one with `overlapHours: 0`."
    )
    created_at: datetime = strawberry.field(description="When it was created, in UTC.")
    updated_at: datetime = strawberry.field(
        description="When it was last changed (URL, event types, state or secret), in UTC."
    )

    @classmethod
    def from_row(cls, row: models.WebhookEndpoint) -> WebhookEndpoint:
        return cls(
            id=strawberry.ID(row.id),
            url=row.url,
            event_types=list(row.event_types),
            enabled=row.enabled,
            disabled_reason=row.disabled_reason,
            disabled_at=row.disabled_at,
            previous_secret_expires_at=row.previous_secret_expires_at,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


@strawberry.type(description="One HTTP request made to deliver a message.")
class WebhookAttempt:
    id: strawberry.ID = strawberry.field(description="The attempt's id.")
    at: datetime = strawberry.field(description="When the request was made, in UTC.")
    url: str = strawberry.field(description="The URL it was sent to (the endpoint's at the time).")
    status_code: int | None = strawberry.field(
        description="Your endpoint's HTTP status; null when no response came back."
    )
    response_excerpt: str | None = strawberry.field(
        description="The start of your response body (1 KiB at most)."
    )
    error: str | None = strawberry.field(
        description="Why no response came back (a timeout, a refused connection and the like); "
        "null when one did."
    )
    duration_ms: int = strawberry.field(description="How long the request took, in milliseconds.")


@strawberry.type(description="One event owed to one endpoint, and every attempt to deliver it.")
class WebhookMessage:
    id: strawberry.ID = strawberry.field(description="Sent as the webhook-id header.")
    endpoint_id: strawberry.ID = strawberry.field(description="The endpoint it is owed to.")
    event_id: strawberry.ID = strawberry.field(
        description="The event's id, the payload's \"id\"; shared by every endpoint's message "
        "for the same event."
    )
    event_type: str = strawberry.field(
        description='The payload\'s "type", e.g. delivery.delivered.'
    )
    status: WebhookMessageStatus = strawberry.field(  # type: ignore[valid-type]
        description="Where the message is in its delivery."
    )
    attempt_count: int = strawberry.field(description="Attempts since created or last replayed.")
    next_attempt_at: datetime | None = strawberry.field(
        description="When the next attempt is due, in UTC; null once DELIVERED or DEAD."
    )
    delivered_at: datetime | None = strawberry.field(
        description="When your endpoint acknowledged it, in UTC; null unless DELIVERED."
    )
    created_at: datetime = strawberry.field(
        description="When the event was queued for this endpoint, in UTC."
    )
    payload: JSON = strawberry.field(description="The JSON body we POST.")  # type: ignore[valid-type]
    _row: strawberry.Private[models.WebhookMessage]

    @strawberry.field(description="Every attempt, oldest first.")
    def attempts(self, info: strawberry.Info) -> list[WebhookAttempt]:
        ctx = context_of(info)
        return [
            WebhookAttempt(
                id=strawberry.ID(a.id),
                at=a.at,
                url=a.url,
                status_code=a.status_code,
                response_excerpt=a.response_excerpt,
                error=a.error,
                duration_ms=a.duration_ms,
            )
            for a in service.attempts_of(ctx.session, ctx.merchant, self._row.id)
        ]

    @classmethod
    def from_row(cls, row: models.WebhookMessage) -> WebhookMessage:
        return cls(
            id=strawberry.ID(row.id),
            endpoint_id=strawberry.ID(row.endpoint_id),
            event_id=strawberry.ID(row.event_id),
            event_type=row.event_type,
            status=row.status,
            attempt_count=row.attempt_count,
            next_attempt_at=row.next_attempt_at,
            delivered_at=row.delivered_at,
            created_at=row.created_at,
            payload=JSON(row.payload),
            _row=row,
        )


@strawberry.type(description="One webhook endpoint in a page of endpoints.")
class WebhookEndpointEdge:
    cursor: str = strawberry.field(
        description="Opaque position of this endpoint in the list; pass it as `after`."
    )
    node: WebhookEndpoint = strawberry.field(description="The endpoint.")


@strawberry.type(description="A page of webhook endpoints, oldest first.")
class WebhookEndpointConnection:
    edges: list[WebhookEndpointEdge] = strawberry.field(
        description="The page's endpoints, in order."
    )
    page_info: PageInfo = strawberry.field(description="Where the page stands in the list.")


@strawberry.type(description="One webhook message in a page of messages.")
class WebhookMessageEdge:
    cursor: str = strawberry.field(
        description="Opaque position of this message in the list; pass it as `after`."
    )
    node: WebhookMessage = strawberry.field(description="The message.")


@strawberry.type(description="A page of webhook messages, newest first.")
class WebhookMessageConnection:
    edges: list[WebhookMessageEdge] = strawberry.field(description="The page's messages, in order.")
    page_info: PageInfo = strawberry.field(description="Where the page stands in the list.")


@strawberry.input(description="A new webhook endpoint.")
class CreateWebhookEndpointInput:
    url: str = strawberry.field(
        description="Absolute https:// URL without credentials, at most "
        f"{service.MAX_URL_LENGTH} characters; "
        "plain http only for localhost, 127.0.0.1 and [::1]."
    )
    event_types: list[str] = strawberry.field(
        description="At least one, each from `webhookEventTypes`; duplicates are ignored."
    )


@strawberry.input(description="Changes to a webhook endpoint.")
class UpdateWebhookEndpointInput:
    id: strawberry.ID = strawberry.field(description=_ENDPOINT_ID)
    url: str | None = strawberry.field(
        default=None, description="New URL, with the same rules as at creation; absent: unchanged."
    )
    event_types: list[str] | None = strawberry.field(
        default=None, description="The new, complete list of event types; absent: unchanged."
    )


@strawberry.type(description="The result of creating a webhook endpoint.")
class CreateWebhookEndpointPayload:
    webhook_endpoint: WebhookEndpoint | None = strawberry.field(
        description="The new endpoint; null when the input was rejected."
    )
    secret: str | None = strawberry.field(
        description="The signing secret (whsec_...). Shown only here: store it now. Null when "
        "the input was rejected."
    )
    user_errors: list[UserError] = strawberry.field(
        description="Why the input was rejected (nothing was created); empty on success."
    )


@strawberry.type(description="The result of a change to a webhook endpoint.")
class WebhookEndpointPayload:
    webhook_endpoint: WebhookEndpoint | None = strawberry.field(description=_ENDPOINT_RESULT)
    user_errors: list[UserError] = strawberry.field(description=_USER_ERRORS)


@strawberry.type(description="The result of deleting a webhook endpoint.")
class DeleteWebhookEndpointPayload:
    deleted_webhook_endpoint_id: strawberry.ID | None = strawberry.field(
        description="The deleted endpoint's id; null when it was rejected."
    )
    user_errors: list[UserError] = strawberry.field(description=_USER_ERRORS)


@strawberry.type(description="The result of rotating a webhook endpoint's secret.")
class RotateWebhookSecretPayload:
    webhook_endpoint: WebhookEndpoint | None = strawberry.field(description=_ENDPOINT_RESULT)
    secret: str | None = strawberry.field(
        description="The new signing secret. Shown only here: store it now. Null when rejected."
    )
    user_errors: list[UserError] = strawberry.field(description=_USER_ERRORS)


@strawberry.type(description="The result of replaying a webhook message.")
class ReplayWebhookMessagePayload:
    webhook_message: WebhookMessage | None = strawberry.field(
        description="The message, PENDING again; null when the replay was rejected."
    )
    user_errors: list[UserError] = strawberry.field(
        description="Why the replay was rejected; empty on success."
    )


def _errors(rejected: UserErrors) -> list[UserError]:
    return [UserError.from_domain(error) for error in rejected.errors]


def _page_info(edges: list[Any], more: bool, after: str | None) -> PageInfo:
    return PageInfo(
        has_next_page=more,
        has_previous_page=after is not None,
        start_cursor=edges[0].cursor if edges else None,
        end_cursor=edges[-1].cursor if edges else None,
    )


@strawberry.type
class WebhookQueries:
    @strawberry.field(description="Every event type a webhook endpoint can subscribe to.")
    def webhook_event_types(self) -> list[WebhookEventType]:
        return [WebhookEventType(name=n, description=d) for n, d in EVENT_TYPES.items()]

    @strawberry.field(
        permission_classes=[ReadDeliveries],
        description="One of your webhook endpoints; null if it does not exist or is not yours.",
    )
    def webhook_endpoint(
        self,
        info: strawberry.Info,
        id: Annotated[strawberry.ID, strawberry.argument(description=_ENDPOINT_ID)],
    ) -> WebhookEndpoint | None:
        ctx = context_of(info)
        row = service.find_endpoint(ctx.session, ctx.merchant, str(id))
        return WebhookEndpoint.from_row(row) if row else None

    @strawberry.field(
        permission_classes=[ReadDeliveries],
        description="Your webhook endpoints, oldest first. `first` is at most 100 (default 50).",
    )
    def webhook_endpoints(
        self,
        info: strawberry.Info,
        first: Annotated[int | None, strawberry.argument(description=_FIRST)] = None,
        after: Annotated[str | None, strawberry.argument(description=_AFTER)] = None,
    ) -> WebhookEndpointConnection:
        ctx = context_of(info)
        size = page_size(first)
        cursor = decode_cursor("WebhookEndpoint", after) if after is not None else None
        rows = service.endpoints_page(ctx.session, ctx.merchant, cursor, size)
        edges = [
            WebhookEndpointEdge(
                cursor=encode_cursor("WebhookEndpoint", r.id), node=WebhookEndpoint.from_row(r)
            )
            for r in rows[:size]
        ]
        return WebhookEndpointConnection(
            edges=edges, page_info=_page_info(edges, len(rows) > size, after)
        )

    @strawberry.field(
        permission_classes=[ReadDeliveries],
        description="Webhook messages, newest first, with their attempts; of one endpoint "
        "if `endpointId` is given. `first` is at most 100 (default 50).",
    )
    def webhook_messages(
        self,
        info: strawberry.Info,
        endpoint_id: Annotated[
            strawberry.ID | None,
            strawberry.argument(description="Only this endpoint's messages; absent: all."),
        ] = None,
        first: Annotated[int | None, strawberry.argument(description=_FIRST)] = None,
        after: Annotated[str | None, strawberry.argument(description=_AFTER)] = None,
        status: Annotated[
            WebhookMessageStatus | None,  # type: ignore[valid-type]
            strawberry.argument(description="Only messages in this status; absent: all."),
        ] = None,
    ) -> WebhookMessageConnection:
        ctx = context_of(info)
        size = page_size(first)
        cursor = decode_cursor("WebhookMessage", after) if after is not None else None
        rows = service.messages_page(
            ctx.session,
            ctx.merchant,
            str(endpoint_id) if endpoint_id is not None else None,
            models.WebhookMessageStatus(status) if status is not None else None,
            cursor,
            size,
        )
        edges = [
            WebhookMessageEdge(
                cursor=encode_cursor("WebhookMessage", r.id), node=WebhookMessage.from_row(r)
            )
            for r in rows[:size]
        ]
        return WebhookMessageConnection(
            edges=edges, page_info=_page_info(edges, len(rows) > size, after)
        )


@strawberry.type
class WebhookMutations:
    @strawberry.mutation(
        permission_classes=[WriteDeliveries],
        description="Register an endpoint for some event types; returns its signing secret once.",
    )
    def create_webhook_endpoint(
        self,
        info: strawberry.Info,
        input: Annotated[
            CreateWebhookEndpointInput,
            strawberry.argument(description="Its URL and the event types it receives."),
        ],
    ) -> CreateWebhookEndpointPayload:
        ctx = context_of(info)
        try:
            row = service.create_endpoint(
                ctx.session, ctx.merchant, input.url, input.event_types, ctx.now
            )
        except UserErrors as rejected:
            return CreateWebhookEndpointPayload(
                webhook_endpoint=None, secret=None, user_errors=_errors(rejected)
            )
        return CreateWebhookEndpointPayload(
            webhook_endpoint=WebhookEndpoint.from_row(row), secret=row.secret, user_errors=[]
        )

    @strawberry.mutation(
        permission_classes=[WriteDeliveries], description="Change an endpoint's URL or events."
    )
    def update_webhook_endpoint(
        self,
        info: strawberry.Info,
        input: Annotated[
            UpdateWebhookEndpointInput,
            strawberry.argument(description="The endpoint and what to change."),
        ],
    ) -> WebhookEndpointPayload:
        ctx = context_of(info)
        try:
            row = service.update_endpoint(
                ctx.session, ctx.merchant, str(input.id), input.url, input.event_types, ctx.now
            )
        except UserErrors as rejected:
            return WebhookEndpointPayload(webhook_endpoint=None, user_errors=_errors(rejected))
        return WebhookEndpointPayload(
            webhook_endpoint=WebhookEndpoint.from_row(row), user_errors=[]
        )

    @strawberry.mutation(
        permission_classes=[WriteDeliveries],
        description="Stop sending to an endpoint for good; messages still waiting are dropped.",
    )
    def delete_webhook_endpoint(
        self,
        info: strawberry.Info,
        id: Annotated[strawberry.ID, strawberry.argument(description=_ENDPOINT_ID)],
    ) -> DeleteWebhookEndpointPayload:
        ctx = context_of(info)
        try:
            service.delete_endpoint(ctx.session, ctx.merchant, str(id), ctx.now)
        except UserErrors as rejected:
            return DeleteWebhookEndpointPayload(
                deleted_webhook_endpoint_id=None, user_errors=_errors(rejected)
            )
        return DeleteWebhookEndpointPayload(deleted_webhook_endpoint_id=id, user_errors=[])

    @strawberry.mutation(
        permission_classes=[WriteDeliveries],
        description="Send to an endpoint again (after it was disabled); clears its failure "
        "record. Messages given up on meanwhile are not resent: replay them.",
    )
    def enable_webhook_endpoint(
        self,
        info: strawberry.Info,
        id: Annotated[strawberry.ID, strawberry.argument(description=_ENDPOINT_ID)],
    ) -> WebhookEndpointPayload:
        return _endpoint_change(info, service.enable_endpoint, id)

    @strawberry.mutation(
        permission_classes=[WriteDeliveries],
        description="Pause an endpoint; messages still waiting for it are given up on.",
    )
    def disable_webhook_endpoint(
        self,
        info: strawberry.Info,
        id: Annotated[strawberry.ID, strawberry.argument(description=_ENDPOINT_ID)],
    ) -> WebhookEndpointPayload:
        return _endpoint_change(info, service.disable_endpoint, id)

    @strawberry.mutation(
        permission_classes=[WriteDeliveries],
        description="A new signing secret. For `overlapHours` (default 24, at most 168) "
        "deliveries carry signatures with both the old and the new secret.",
    )
    def rotate_webhook_secret(
        self,
        info: strawberry.Info,
        id: Annotated[strawberry.ID, strawberry.argument(description=_ENDPOINT_ID)],
        overlap_hours: Annotated[
            int,
            strawberry.argument(
                description="Hours, 0 to 168, during which the old secret still signs too; "
                "0 retires it at once (use it if the old secret leaked)."
            ),
        ] = 24,
    ) -> RotateWebhookSecretPayload:
        ctx = context_of(info)
        try:
            row = service.rotate_secret(
                ctx.session, ctx.merchant, str(id), timedelta(hours=overlap_hours), ctx.now
            )
        except UserErrors as rejected:
            return RotateWebhookSecretPayload(
                webhook_endpoint=None, secret=None, user_errors=_errors(rejected)
            )
        return RotateWebhookSecretPayload(
            webhook_endpoint=WebhookEndpoint.from_row(row), secret=row.secret, user_errors=[]
        )

    @strawberry.mutation(
        permission_classes=[WriteDeliveries],
        description="Send a message again now, whatever its status, with a fresh retry "
        "schedule. Earlier attempts stay in its log.",
    )
    def replay_webhook_message(
        self,
        info: strawberry.Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="The webhook message's id.")],
    ) -> ReplayWebhookMessagePayload:
        ctx = context_of(info)
        try:
            row = service.replay_message(ctx.session, ctx.merchant, str(id), ctx.now)
        except UserErrors as rejected:
            return ReplayWebhookMessagePayload(webhook_message=None, user_errors=_errors(rejected))
        return ReplayWebhookMessagePayload(
            webhook_message=WebhookMessage.from_row(row), user_errors=[]
        )


EndpointChange = Callable[[Session, Merchant, str, datetime], models.WebhookEndpoint]


def _endpoint_change(
    info: strawberry.Info, change: EndpointChange, id: strawberry.ID
) -> WebhookEndpointPayload:
    ctx = context_of(info)
    try:
        row = change(ctx.session, ctx.merchant, str(id), ctx.now)
    except UserErrors as rejected:
        return WebhookEndpointPayload(webhook_endpoint=None, user_errors=_errors(rejected))
    return WebhookEndpointPayload(webhook_endpoint=WebhookEndpoint.from_row(row), user_errors=[])
