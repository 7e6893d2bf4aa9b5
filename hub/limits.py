"""Query limits checked on the parsed document before validation (one cheap pass over the AST).

The token cap is enforced by the parser itself (``parse(max_tokens=...)``) so an alias bomb is refused
while it is being read; the rest are counted here. Each limit has its own stable error code.
"""

from __future__ import annotations

from dataclasses import dataclass

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
)

from hub.errors import QueryLimitError


@dataclass(frozen=True)
class Limits:
    max_depth: int
    max_aliases: int
    max_root_fields: int
    max_directives: int


def check_limits(document: DocumentNode, operation: OperationDefinitionNode, limits: Limits) -> None:
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    aliases = 0
    directives = 0

    def depth(sel: SelectionSetNode, level: int, seen: frozenset[str]) -> int:
        nonlocal aliases, directives
        deepest = level
        for node in sel.selections:
            directives += len(node.directives or ())
            if isinstance(node, FieldNode):
                if node.alias is not None:
                    aliases += 1
                if node.selection_set is not None and not node.name.value.startswith("__"):
                    deepest = max(deepest, depth(node.selection_set, level + 1, seen))
            elif isinstance(node, InlineFragmentNode):
                deepest = max(deepest, depth(node.selection_set, level, seen))
            elif isinstance(node, FragmentSpreadNode):
                frag = fragments.get(node.name.value)
                if frag is not None and node.name.value not in seen:
                    deepest = max(deepest, depth(frag.selection_set, level, seen | {node.name.value}))
        return deepest

    roots = [s for s in operation.selection_set.selections if isinstance(s, FieldNode)]
    if len(roots) > limits.max_root_fields:
        raise QueryLimitError(
            f"the operation has {len(roots)} root fields; the limit is {limits.max_root_fields}",
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
