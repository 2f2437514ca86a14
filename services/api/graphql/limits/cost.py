"""What an operation may ask for: its cost, and the limits on the document itself.

Costs follow Shopify's calculated query cost, so an operation is priced from its
document before anything runs (`requestedQueryCost`) and again from what it returned
(`actualQueryCost`). The rules (docs/api-limits.md shows worked examples):

- A scalar or enum field costs 0; so does `__typename`.
- An object field costs 1 plus its selection. An interface or union costs the most
  expensive of its possible types.
- A list without a size argument (tracking events, invoice lines, userErrors) is read
  in one lookup, so it costs as one object: 1 plus the selection of one item.
- A connection (a type named `...Connection`) costs 2 plus `n` times one item, where
  `n` is `first` (or `last`), or the default page size when neither is given. An item
  is what one entry of `edges` selects (its `node` costs 1 plus its selection, the
  edge itself nothing) but at least 1, since it was fetched either way; or one entry
  of `nodes` (1 plus its selection). `pageInfo` and the other fields of the connection
  come from the same lookup and are covered by the 2. Any other list that takes
  `first`/`last` costs 2 plus `n` objects.
- A top-level mutation field costs 10 plus 1 per element of each list argument (a
  bulk mutation such as `bookDeliveries(inputs:)` pays per input), plus the selection
  of its payload; the payload object itself is covered by the 10.
- Fragments, inline fragments, aliases and `@skip`/`@include` count as they execute:
  fields that merge into one response key count once.

The actual cost applies the same rules to the response: a null object or connection
costs 0 (nothing came back), a connection counts the items it returned, a list counts
its most expensive item. It is never above the requested cost.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import Enum
from functools import cache, cached_property
from typing import Any

from graphql import (
    BooleanValueNode,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLField,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionNode,
    SelectionSetNode,
    ValidationRule,
    get_named_type,
    is_abstract_type,
    is_leaf_type,
)
from graphql.type import SchemaMetaFieldDef, TypeMetaFieldDef, TypeNameMetaFieldDef
from graphql.utilities import get_operation_ast, type_from_ast, value_from_ast_untyped
from strawberry.extensions import SchemaExtension

from services.api.graphql.relay import DEFAULT_PAGE_SIZE
from services.core.settings import get_settings

OBJECT_COST = 1
CONNECTION_COST = 2
MUTATION_COST = 10

_META_FIELDS = {
    "__schema": SchemaMetaFieldDef,
    "__type": TypeMetaFieldDef,
    "__typename": TypeNameMetaFieldDef,
}
# Stands for "not executed yet" where the walk over a response would pass data.
_PLANNED: Any = object()

# Selections collected once for every operation on a parsed document (ParseOnce keeps
# documents, and integrations repeat a few), keyed by the ids of their nodes and holding
# the nodes so no other object can take those ids: collecting is most of pricing.
_SHARED_FIELDS: dict[
    tuple[str, tuple[int, ...]], tuple[tuple[SelectionSetNode, ...], list[_Field]]
] = {}
_SHARED_FIELDS_MAX = 4096


class _Kind(Enum):
    LEAF = "leaf"
    OBJECT = "object"
    LIST = "list"
    SIZED_LIST = "sized list"
    CONNECTION = "connection"


@dataclass(frozen=True)
class _Field:
    """One response key of a selection: its merged nodes and how it is costed."""

    key: str
    definition: GraphQLField
    kind: _Kind
    nodes: tuple[FieldNode, ...]
    selection_sets: tuple[SelectionSetNode, ...]
    # The object types its selection can apply to: several for an interface or union.
    object_types: tuple[GraphQLObjectType, ...]


class OperationCost:
    """Prices one operation of a validated document, before and after it runs.

    Each selection is collected once per object type and reused for every item of a
    list, so costing a response is linear in its size.
    """

    def __init__(
        self,
        schema: GraphQLSchema,
        document: DocumentNode,
        operation_name: str | None,
        variables: dict[str, Any] | None,
    ) -> None:
        operation = get_operation_ast(document, operation_name)
        if operation is None:
            raise ValueError(f"The document has no operation {operation_name!r}.")
        self.schema = schema
        self.operation = operation
        self.fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        self.variables = dict(variables or {})
        for definition in operation.variable_definitions or ():
            name = definition.variable.name.value
            if name not in self.variables and definition.default_value is not None:
                self.variables[name] = value_from_ast_untyped(definition.default_value)
        self._collected: dict[tuple[str, tuple[int, ...]], list[_Field]] = {}
        self._variable_decided = False
        self._root_selection = (operation.selection_set,)

    @cached_property
    def requested(self) -> int:
        return self._operation(_PLANNED)

    def actual(self, data: dict[str, Any] | None) -> int:
        """What the response cost; capped at the requested cost, which is what was charged."""
        if data is None:
            return 0
        return min(self._operation(data), self.requested)

    def _operation(self, data: Any) -> int:
        root = self.schema.get_root_type(self.operation.operation)
        assert root is not None, "validation guarantees the root type exists"
        mutation = self.operation.operation is OperationType.MUTATION
        total = 0
        for field in self._fields(root, self._root_selection):
            value = _PLANNED if data is _PLANNED else data.get(field.key)
            if mutation and field.definition is not TypeNameMetaFieldDef:
                total += self._mutation_field(field, value)
            else:
                total += self._field(field, value)
        return total

    def _mutation_field(self, field: _Field, value: Any) -> int:
        if value is None:
            return 0
        per_input = 0
        for argument in field.nodes[0].arguments or ():
            definition = field.definition.args[argument.name.value]
            if isinstance(_nullable(definition.type), GraphQLList):
                per_input += _length(value_from_ast_untyped(argument.value, self.variables))
        selection = 0 if field.kind is _Kind.LEAF else self._selection(field, value)
        return MUTATION_COST + per_input + selection

    def _field(self, field: _Field, value: Any) -> int:
        if value is None or field.kind is _Kind.LEAF:
            return 0
        if field.kind is _Kind.CONNECTION:
            return CONNECTION_COST + self._connection(field, value)
        if field.kind is _Kind.SIZED_LIST:
            return CONNECTION_COST + self._items(field, value, self._size(field))
        if field.kind is _Kind.LIST:
            return OBJECT_COST + max(self._each(field, value), default=0)
        return OBJECT_COST + self._selection(field, value)

    def _connection(self, connection: _Field, value: Any) -> int:
        """The items of a connection: its `node`s, reached through `edges` or `nodes`."""
        size = self._size(connection)
        total = 0
        for field in self._fields(connection.object_types[0], connection.selection_sets):
            name = field.nodes[0].name.value
            items = _PLANNED if value is _PLANNED else value.get(field.key)
            if name not in ("edges", "nodes") or items is None:
                continue
            if name == "nodes":
                total += self._items(field, items, size)
            else:
                # An edge is free, but each item was fetched, so it costs at least 1.
                each = [max(OBJECT_COST, cost) for cost in self._each(field, items)]
                total += size * each[0] if items is _PLANNED else sum(each)
        return total

    def _items(self, field: _Field, items: Any, n: int) -> int:
        """`n` objects when planning; the objects actually returned afterwards."""
        if items is _PLANNED:
            return n * (OBJECT_COST + self._selection(field, _PLANNED))
        return sum(OBJECT_COST + cost for cost in self._each(field, items))

    def _each(self, field: _Field, items: Any) -> Iterator[int]:
        """The selection cost of each returned item (of one planned item, before running)."""
        if items is _PLANNED:
            yield self._selection(field, _PLANNED)
            return
        for item in items:
            if item is not None:
                yield self._selection(field, item)

    def _selection(self, field: _Field, value: Any) -> int:
        """The cost of a field's selection on one value, the dearest of its possible types."""
        best = 0
        for object_type in field.object_types:
            total = 0
            for inner in self._fields(object_type, field.selection_sets):
                total += self._field(inner, _PLANNED if value is _PLANNED else value.get(inner.key))
            best = max(best, total)
        return best

    def _fields(
        self, parent: GraphQLObjectType, selection_sets: tuple[SelectionSetNode, ...]
    ) -> list[_Field]:
        """The fields of `selection_sets` on `parent` that can cost something, memoised:
        for this operation, and for every later one on the same parsed document when no
        variable decides what the selections include."""
        memo = (parent.name, tuple(map(id, selection_sets)))
        fields = self._collected.get(memo)
        if fields is not None:
            return fields
        shared = _SHARED_FIELDS.get(memo)
        if shared is not None:  # same ids while `shared` holds the nodes: the same nodes
            return shared[1]
        self._variable_decided = False
        mutation_root = parent is self.schema.mutation_type
        fields = [
            field
            for key, nodes in self._collect(parent, selection_sets).items()
            if (field := self._describe(parent, key, nodes)).kind is not _Kind.LEAF or mutation_root
        ]
        if self._variable_decided:
            self._collected[memo] = fields
        else:
            if len(_SHARED_FIELDS) >= _SHARED_FIELDS_MAX:
                _SHARED_FIELDS.clear()
            _SHARED_FIELDS[memo] = (selection_sets, fields)
        return fields

    def _describe(self, parent: GraphQLObjectType, key: str, nodes: list[FieldNode]) -> _Field:
        name = nodes[0].name.value
        definition = _META_FIELDS.get(name) or parent.fields[name]
        named = get_named_type(definition.type)
        if is_leaf_type(named):
            kind, object_types = _Kind.LEAF, tuple[GraphQLObjectType, ...]()
        else:
            if is_abstract_type(named):
                object_types = tuple(self.schema.get_possible_types(named))  # type: ignore[arg-type]
            else:
                assert isinstance(named, GraphQLObjectType)
                object_types = (named,)
            if named.name.endswith("Connection"):
                kind = _Kind.CONNECTION
            elif not isinstance(_nullable(definition.type), GraphQLList):
                kind = _Kind.OBJECT
            elif "first" in definition.args or "last" in definition.args:
                kind = _Kind.SIZED_LIST
            else:
                kind = _Kind.LIST
        selection_sets = tuple(n.selection_set for n in nodes if n.selection_set is not None)
        return _Field(key, definition, kind, tuple(nodes), selection_sets, object_types)

    def _collect(
        self, object_type: GraphQLObjectType, selection_sets: Iterable[SelectionSetNode]
    ) -> dict[str, list[FieldNode]]:
        """Fields by response key, as execution merges them (graphql's CollectFields)."""
        fields: dict[str, list[FieldNode]] = {}
        visited: set[str] = set()

        def visit(selections: Iterable[SelectionNode]) -> None:
            for selection in selections:
                if not self._included(selection):
                    continue
                if isinstance(selection, FieldNode):
                    key = (selection.alias or selection.name).value
                    fields.setdefault(key, []).append(selection)
                elif isinstance(selection, InlineFragmentNode):
                    if self._applies(selection.type_condition, object_type):
                        visit(selection.selection_set.selections)
                elif isinstance(selection, FragmentSpreadNode):
                    name = selection.name.value
                    fragment = self.fragments.get(name)
                    if name in visited or fragment is None:
                        continue
                    visited.add(name)
                    if self._applies(fragment.type_condition, object_type):
                        visit(fragment.selection_set.selections)

        for selection_set in selection_sets:
            visit(selection_set.selections)
        return fields

    def _applies(self, condition: Any, object_type: GraphQLObjectType) -> bool:
        if condition is None:
            return True
        conditional = type_from_ast(self.schema, condition)
        if conditional is object_type:
            return True
        return is_abstract_type(conditional) and self.schema.is_sub_type(conditional, object_type)  # type: ignore[arg-type]

    def _included(self, selection: SelectionNode) -> bool:
        for directive in selection.directives or ():
            name = directive.name.value
            if name not in ("skip", "include"):
                continue
            condition = next(a.value for a in directive.arguments or () if a.name.value == "if")
            if isinstance(condition, BooleanValueNode):
                value = condition.value
            else:
                self._variable_decided = True
                value = value_from_ast_untyped(condition, self.variables)
            if bool(value) is (name == "skip"):
                return False
        return True

    def _size(self, field: _Field) -> int:
        """How many items a sized list asks for: `first`, else `last`, else a default page."""
        sizes = {
            argument.name.value: value_from_ast_untyped(argument.value, self.variables)
            for argument in field.nodes[0].arguments or ()
            if argument.name.value in ("first", "last")
        }
        for name in ("first", "last"):
            size = sizes.get(name)
            if isinstance(size, int) and not isinstance(size, bool):
                return max(size, 0)
        return DEFAULT_PAGE_SIZE


def _nullable(type_: Any) -> Any:
    return type_.of_type if isinstance(type_, GraphQLNonNull) else type_


def _length(value: Any) -> int:
    """Elements of a list argument; a single value is coerced to a list of one."""
    if value is None:
        return 0
    return len(value) if isinstance(value, list) else 1


def _error(message: str, code: str, node: Any = None) -> GraphQLError:
    return GraphQLError(message, node, extensions={"code": code})


class DepthLimit(ValidationRule):
    """Refuses operations nested deeper than `limit` fields.

    Introspection (`__schema`, `__type`) is exempt: its nesting is fixed by the type
    system, it is answered from memory, and GraphiQL's own query goes 13 deep.
    """

    limit: int

    def enter_operation_definition(self, node: OperationDefinitionNode, *_: Any) -> None:
        limit = self.limit
        depth = self._depth(node.selection_set, {})
        if depth > limit:
            name = f"`{node.name.value}`" if node.name else "The operation"
            self.report_error(
                _error(
                    f"{name} is nested {depth} fields deep; the limit is {limit}. "
                    "Fetch deeper data in a separate request.",
                    "MAX_DEPTH_EXCEEDED",
                    node,
                )
            )

    def _depth(self, selection_set: SelectionSetNode | None, fragments: dict[str, int]) -> int:
        """Depth of a selection set; `fragments` memoises each fragment (0 while on a cycle)."""
        if selection_set is None:
            return 0
        deepest = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                if selection.name.value.startswith("__"):
                    continue
                depth = 1 + self._depth(selection.selection_set, fragments)
            elif isinstance(selection, InlineFragmentNode):
                depth = self._depth(selection.selection_set, fragments)
            else:
                assert isinstance(selection, FragmentSpreadNode)
                name = selection.name.value
                if name not in fragments:
                    fragments[name] = 0
                    fragment = self.context.get_fragment(name)
                    fragments[name] = self._depth(
                        fragment.selection_set if fragment else None, fragments
                    )
                depth = fragments[name]
            deepest = max(deepest, depth)
        return deepest


class AliasLimit(ValidationRule):
    """Refuses documents with more than `limit` aliases.

    Aliases let one document ask for the same field many times over; the cost counts
    each of them, and this stops a document from being mostly repetitions.
    """

    limit: int

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        self.aliases = 0

    def enter_field(self, node: FieldNode, *_: Any) -> None:
        if node.alias is not None:
            self.aliases += 1

    def leave_document(self, node: DocumentNode, *_: Any) -> None:
        limit = self.limit
        if self.aliases > limit:
            self.report_error(
                _error(
                    f"The document uses {self.aliases} aliases; the limit is {limit}.",
                    "MAX_ALIASES_EXCEEDED",
                )
            )


@cache
def limit_rules(max_depth: int, max_aliases: int) -> tuple[type[ValidationRule], ...]:
    """The limit rules for these limits, one class per value: validation results are
    cached per (document, rules), so a different limit must be a different rule."""
    return (
        type(f"DepthLimit{max_depth}", (DepthLimit,), {"limit": max_depth}),
        type(f"AliasLimit{max_aliases}", (AliasLimit,), {"limit": max_aliases}),
    )


class QueryLimits(SchemaExtension):
    """Rejects oversized documents before execution: tokens, depth and aliases.

    The token limit is enforced by the parser itself, so a huge document is dropped
    before it is even fully read; its syntax error gets a stable code here.
    """

    def on_operation(self) -> Iterator[None]:
        context = self.execution_context
        context.parse_options["max_tokens"] = get_settings().graphql_max_tokens
        settings = get_settings()
        context.validation_rules = (
            *context.validation_rules,
            *limit_rules(settings.graphql_max_depth, settings.graphql_max_aliases),
        )
        yield

    def on_parse(self) -> Iterator[None]:
        yield
        limit = get_settings().graphql_max_tokens
        for error in self.execution_context.pre_execution_errors or ():
            if f"Document contains more than {limit} tokens." in error.message:
                error.message = (
                    f"The document has more than {limit} tokens (the limit); send a smaller one."
                )
                error.extensions = {"code": "MAX_TOKENS_EXCEEDED"}
