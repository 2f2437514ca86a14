"""What happens around every GraphQL operation: its transaction and metering, and
parsing each distinct document once."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

from graphql import DocumentNode, GraphQLError, parse
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

from services.core.meters import api_request_usage
from services.core.usage import defer_usage, forget_deferred_usage, record_deferred_usage


class RequestTransaction(SchemaExtension):
    """The request owns the transaction: commit if the operation succeeded, else roll back.

    Committing here, before the response is serialised, means nothing is acknowledged
    to a client that is not durably stored. A merchant's operation that commits is
    metered as one `api_requests` usage event in that same transaction (it rides along
    with the operation's own usage, if any); a mutation refused outright is not, as
    bad input changes nothing. The session is closed when the operation
    ends, whatever happened.
    """

    def on_operation(self) -> Iterator[None]:
        try:
            yield
        finally:
            self.execution_context.context.close_session()

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context.context
        billable = context.token.tenant_id is not None and not context.token.sandbox
        if billable:  # one api_requests event per operation, kept only if it commits
            defer_usage(context.session, [api_request_usage(context.tenant_id, context.now)])
        yield
        result = self.execution_context.result
        if result is None or result.errors:
            context.session.rollback()
            return
        if billable and _refused(self.execution_context.operation_type, result.data):
            forget_deferred_usage(context.session)
        record_deferred_usage(context.session)
        context.session.commit()


@lru_cache(maxsize=512)
def _parse(query: str, max_tokens: int | None) -> DocumentNode:
    return parse(query, max_tokens=max_tokens)


class ParseOnce(SchemaExtension):
    """Parses each distinct document once per process: integrations repeat a few.

    A document that does not parse is left to strawberry, which reports the error
    the usual way (and QueryLimits gives an oversized one its code).
    """

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        if context.query is not None:
            with contextlib.suppress(GraphQLError):
                context.graphql_document = _parse(
                    context.query, context.parse_options.get("max_tokens")
                )
        yield


def _refused(operation_type: OperationType, data: dict[str, Any] | None) -> bool:
    """A mutation whose every payload carries userErrors: refused, so nothing changed."""
    if operation_type is not OperationType.MUTATION or not data:
        return False
    return all(isinstance(p, dict) and p.get("userErrors") for p in data.values())
