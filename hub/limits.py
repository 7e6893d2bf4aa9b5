"""Query limits checked on the parsed document before validation (one cheap pass over the AST).

The token cap is enforced by the parser itself (``parse(max_tokens=...)``) so an alias bomb is refused
while it is being read; the rest are counted here. Each limit has its own stable error code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    ListValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
)

from hub.errors import QueryLimitError
from hub.graphql_walk import Walker

# Fields returning lists whose length the request does not state: estimated at this many items each.
LIST_FIELDS = frozenset({"members", "properties", "vehicles", "roles", "entries", "residentAccessReport", "catalog"})
LIST_ESTIMATE = 5


@dataclass(frozen=True)
class Limits:
    max_depth: int
    max_aliases: int
    max_root_fields: int
    max_directives: int
    max_cost: int = 50_000


def _list_arg_size(node: FieldNode, variables: Mapping[str, Any]) -> int:
    """The length of the longest list argument (literal or variable), or 1."""
    size = 1
    for arg in node.arguments or ():
        value = arg.value
        if isinstance(value, ListValueNode):
            size = max(size, len(value.values))
        elif isinstance(value, VariableNode):
            bound = variables.get(value.name.value)
            if isinstance(bound, list):
                size = max(size, len(bound))
    return size


def estimate_cost(
    document: DocumentNode, operation: OperationDefinitionNode, variables: Mapping[str, Any] | None = None
) -> int:
    """Fields resolved, estimated: each field costs 1 per parent item; list arguments and list fields multiply."""
    walker = Walker.of(document)  # every branch: @skip/@include do not lower the estimate
    variables = variables or {}

    def cost(sel: SelectionSetNode, items: int, seen: frozenset[str]) -> int:
        total = 0
        for reached in walker.fields(sel, stack=seen):
            node = reached.node
            assert isinstance(node, FieldNode)
            total += items
            if node.selection_set is not None:
                n = items * _list_arg_size(node, variables)
                if node.name.value in LIST_FIELDS:
                    n *= LIST_ESTIMATE
                total += cost(node.selection_set, n, reached.stack)
        return total

    return cost(operation.selection_set, 1, frozenset())


def check_limits(
    document: DocumentNode,
    operation: OperationDefinitionNode,
    limits: Limits,
    variables: Mapping[str, Any] | None = None,
) -> None:
    walker = Walker.of(document)  # every branch, before validation (cyclic fragments are not entered twice)
    aliases = 0
    directives = 0

    def depth(sel: SelectionSetNode, level: int, seen: frozenset[str]) -> int:
        nonlocal aliases, directives
        deepest = level
        for reached in walker.selections(sel, stack=seen):
            node = reached.node
            directives += len(node.directives or ())
            if isinstance(node, FieldNode):
                if node.alias is not None:
                    aliases += 1
                if node.selection_set is not None and not node.name.value.startswith("__"):
                    deepest = max(deepest, depth(node.selection_set, level + 1, reached.stack))
        return deepest

    roots = sum(1 for _ in walker.fields(operation.selection_set))
    if roots > limits.max_root_fields:
        raise QueryLimitError(
            f"the operation has {roots} root fields; the limit is {limits.max_root_fields}",
            code="MAX_ROOT_FIELDS_LIMIT",
        )
    d = depth(operation.selection_set, 1, frozenset())
    if d > limits.max_depth:
        raise QueryLimitError(f"the query is {d} levels deep; the limit is {limits.max_depth}", code="MAX_DEPTH_LIMIT")
    if aliases > limits.max_aliases:
        raise QueryLimitError(
            f"the query uses {aliases} aliases; the limit is {limits.max_aliases}", code="MAX_ALIASES_LIMIT"
        )
    directives += len(operation.directives or ())
    if directives > limits.max_directives:
        raise QueryLimitError(
            f"the query uses {directives} directives; the limit is {limits.max_directives}", code="MAX_DIRECTIVES_LIMIT"
        )
    total = estimate_cost(document, operation, variables)
    if total > limits.max_cost:
        raise QueryLimitError(
            f"the query's estimated cost is {total}; the limit is {limits.max_cost}", code="MAX_COST_LIMIT"
        )
