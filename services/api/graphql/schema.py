"""The GraphQL schema, assembled from one module per feature."""

from __future__ import annotations

from strawberry.extensions import AddValidationRules, ValidationCache
from strawberry.tools import merge_types
from strawberry.types.base import get_object_definition

from services.api.graphql.billing import BillingQueries
from services.api.graphql.deliveries import DeliveryMutations, DeliveryQueries
from services.api.graphql.extensions import ParseOnce, RequestTransaction
from services.api.graphql.lifecycle import LifecycleMutations
from services.api.graphql.limits.cost import QueryLimits
from services.api.graphql.limits.text import NoNulInStrings
from services.api.graphql.limits.throttle import QueryCost
from services.api.graphql.planning import PlanningMutations, PlanningQueries
from services.api.graphql.quotes import QuoteMutations
from services.api.graphql.router import ThreadedSchema
from services.api.graphql.subscriptions import DeliverySubscriptions
from services.api.graphql.webhooks import WebhookMutations, WebhookQueries
from services.api.observability import OperationMetrics


def _root(name: str, description: str, parts: tuple[type, ...]) -> type:
    """One root type from each feature's fields (`merge_types`), with a description."""
    merged = merge_types(name, parts)
    get_object_definition(merged, strict=True).description = description
    return merged


Query = _root(
    "Query",
    "Reads. Merchants see only their own data (deliveries:read, billing:read); plan runs "
    "need the operator scope.",
    (DeliveryQueries, BillingQueries, WebhookQueries, PlanningQueries),
)
Mutation = _root(
    "Mutation",
    "Changes. A rejected input comes back as `userErrors` in the payload, not as GraphQL "
    "errors, and writes nothing.",
    (DeliveryMutations, LifecycleMutations, WebhookMutations, PlanningMutations, QuoteMutations),
)


schema = ThreadedSchema(
    query=Query,
    mutation=Mutation,
    subscription=DeliverySubscriptions,
    # Integrations send the same few documents over and over: parse and validate each once.
    extensions=[
        QueryLimits,
        lambda: AddValidationRules([NoNulInStrings]),
        ParseOnce,
        lambda: ValidationCache(maxsize=512),
        RequestTransaction,
        QueryCost,
        OperationMetrics,
    ],
)
