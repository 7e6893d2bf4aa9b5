"""The compiled execution path (docs/performance.md): an operation over ``person``/``people``/``household`` run
without graphql-core's per-field resolution, with the same loaders, forms, scope and audit record.

``execute_compiled`` answers exactly what graphql-core's ``execute`` would, or None: the request then runs through
graphql-core (the reference), and the audit entry is the same either way. Switched by ``HUB_COMPILED``.
"""

from __future__ import annotations

import logging
from typing import Any

from graphql import DocumentNode, ExecutionResult, GraphQLSchema, OperationDefinitionNode
from graphql.execution.values import get_variable_values

from hub.compiled.assemble import Fallback
from hub.compiled.plan import CompiledPlans
from hub.compiled.run import run_tree
from hub.schema.context import HubContext
from hub.sources.sql import SqlSource

__all__ = ["PLANS", "STATS", "execute_compiled"]

log = logging.getLogger("hub.compiled")

PLANS = CompiledPlans()
STATS = {"compiled": 0, "fallback": 0}  # requests answered on the compiled path, and given back


async def execute_compiled(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation: OperationDefinitionNode,
    variables: dict[str, Any] | None,
    context: HubContext,
) -> ExecutionResult | None:
    """The operation's result, or None when the compiled path does not run it (nothing then has been asked of any
    department, or what was asked is forgotten: the context is as it was)."""
    if not all(isinstance(s, SqlSource) for s in context.sources.values()):
        return None  # subgraph departments: graphql-core
    values = get_variable_values(schema, operation.variable_definitions or (), variables or {})
    if isinstance(values, list):  # not coercible (the gateway refuses these before execution)
        return None
    tree = PLANS.get(schema, document, operation, values)
    if tree is None:
        return None
    try:
        result = await run_tree(tree, schema, operation, values, context)
        STATS["compiled"] += 1
        return result
    except Fallback as why:
        STATS["fallback"] += 1
        log.debug("compiled path gave the request to graphql-core: %s", why)
        # graphql-core starts afresh, as it would have (the loads' order decides the order of its errors)
        context.loaders.clear()
        context.selections.clear()
        context.subjects.clear()
        context.not_found.clear()
        context.upstream_failures.clear()
        return None
