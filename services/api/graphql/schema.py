"""The GraphQL schema and its HTTP router, assembled from one module per feature."""

from __future__ import annotations

from collections.abc import Iterator

import strawberry
from fastapi import Request
from fastapi.responses import HTMLResponse
from strawberry.extensions import SchemaExtension
from strawberry.fastapi import GraphQLRouter
from strawberry.tools import merge_types

from services.api.graphiql import local_assets
from services.api.graphql.billing import BillingQueries
from services.api.graphql.context import get_context
from services.api.graphql.deliveries import DeliveryMutations, DeliveryQueries
from services.api.graphql.lifecycle import LifecycleMutations


class RequestTransaction(SchemaExtension):
    """The request owns the transaction: commit if the operation succeeded, else roll back.

    Committing here, before the response is serialised, means nothing is acknowledged
    to a client that is not durably stored.
    """

    def on_execute(self) -> Iterator[None]:
        yield
        session = self.execution_context.context.session
        result = self.execution_context.result
        if result is not None and not result.errors:
            session.commit()
        else:
            session.rollback()


Query = merge_types("Query", (DeliveryQueries, BillingQueries))
Mutation = merge_types("Mutation", (DeliveryMutations, LifecycleMutations))

schema = strawberry.Schema(query=Query, mutation=Mutation, extensions=[RequestTransaction])


class LastmileGraphQLRouter(GraphQLRouter):
    async def render_graphql_ide(self, request: Request) -> HTMLResponse:
        return HTMLResponse(local_assets(self.graphql_ide_html))


def graphql_router() -> GraphQLRouter:
    return LastmileGraphQLRouter(schema, context_getter=get_context, graphql_ide="graphiql")
