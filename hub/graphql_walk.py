"""One walker over a GraphQL document's selections: fragments, inline fragments and ``@skip``/``@include``.

Limits, the policy plan, the records' column selection, ID-number lookups and the federation's answer checker
all read a document the same way: the selections of a selection set, through inline fragments and fragment
spreads (a fragment already being walked on the path is not entered again, so a cyclic document that has not
been validated yet cannot loop), each field with the type it is selected on. What differs is said by the
``Walker``'s fields:

* ``variables``: when given, a selection whose ``@skip(if:)`` is true or whose ``@include(if:)`` is false is
  passed over (the values read untyped, as graphql-core reads them). When None, every branch is walked: the
  policy plan and the limits look at everything a document could select, whatever the variables say.
* ``schema``: when given, a fragment's type condition names the type its fields are selected on (an object
  type; an interface or union leaves the enclosing type).
* ``possible_only``: a fragment whose type condition cannot apply to the enclosing (object) type is passed
  over, as execution would (the federation's checker completes a concrete answer).

The fragments map of a document is built once per document (``fragments_of``).
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLUnionType,
    InlineFragmentNode,
    NamedTypeNode,
    OperationDefinitionNode,
    SelectionNode,
    SelectionSetNode,
    Undefined,
    value_from_ast_untyped,
)

Fragments = Mapping[str, FragmentDefinitionNode]

# id(document) -> (the document, weakly; its fragments). Keyed by identity: a node's own hash walks the whole tree.
_FRAGMENTS: dict[int, tuple[weakref.ref[DocumentNode], dict[str, FragmentDefinitionNode]]] = {}


def fragments_of(document: DocumentNode) -> dict[str, FragmentDefinitionNode]:
    """Fragment name -> definition, built once per document (valid documents are cached and reused across
    requests; the map goes when the document does)."""
    key = id(document)
    cached = _FRAGMENTS.get(key)
    if cached is not None and cached[0]() is document:
        return cached[1]
    found = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    _FRAGMENTS[key] = (weakref.ref(document), found)
    weakref.finalize(document, _FRAGMENTS.pop, key, None)
    return found


def with_defaults(operation: OperationDefinitionNode, variables: Mapping[str, Any] | None) -> dict[str, Any]:
    """The variables sent, plus the operation's defaults (read untyped) for those not sent."""
    values = dict(variables or {})
    for definition in operation.variable_definitions or ():
        name = definition.variable.name.value
        if name not in values and definition.default_value is not None:
            value = value_from_ast_untyped(definition.default_value, {})
            if value is not Undefined:
                values[name] = value
    return values


def included(node: SelectionNode, variables: Mapping[str, Any]) -> bool:
    """False when ``@skip(if: true)`` or ``@include(if: false)`` leaves the selection out."""
    for d in node.directives or ():
        if d.name.value not in ("skip", "include"):
            continue
        arg = next((a for a in d.arguments or () if a.name.value == "if"), None)
        value = value_from_ast_untyped(arg.value, dict(variables)) if arg is not None else None
        if d.name.value == "skip" and value is True:
            return False
        if d.name.value == "include" and value is False:
            return False
    return True


class Reached(NamedTuple):
    """A selection reached by the walk, the type it is selected on (None without a schema), and the
    fragments entered on the way to it."""

    node: SelectionNode
    parent: GraphQLObjectType | None
    stack: frozenset[str]


@dataclass(frozen=True)
class Walker:
    fragments: Fragments
    variables: Mapping[str, Any] | None = None  # honour @skip/@include with these; None: walk every branch
    schema: GraphQLSchema | None = None
    possible_only: bool = False

    @classmethod
    def of(
        cls,
        document: DocumentNode,
        variables: Mapping[str, Any] | None = None,
        schema: GraphQLSchema | None = None,
        possible_only: bool = False,
    ) -> Walker:
        return cls(fragments_of(document), variables, schema, possible_only)

    def selections(
        self,
        selection_set: SelectionSetNode,
        parent: GraphQLObjectType | None = None,
        stack: frozenset[str] = frozenset(),
    ) -> Iterator[Reached]:
        """Every selection of ``selection_set``, in document order, and (right after a fragment) the selections
        of that fragment; never the selections below a field."""
        for node in selection_set.selections:
            if self.variables is not None and not included(node, self.variables):
                continue
            yield Reached(node, parent, stack)
            if isinstance(node, InlineFragmentNode):
                inner, cond, below = node.selection_set, node.type_condition, stack
            elif isinstance(node, FragmentSpreadNode):
                name = node.name.value
                fragment = self.fragments.get(name)
                if fragment is None or name in stack:
                    continue  # validation refuses unknown and cyclic fragments
                inner, cond, below = fragment.selection_set, fragment.type_condition, stack | {name}
            else:
                continue
            applies, target = self._target(cond, parent)
            if applies:
                yield from self.selections(inner, target, below)

    def fields(
        self,
        selection_set: SelectionSetNode,
        parent: GraphQLObjectType | None = None,
        stack: frozenset[str] = frozenset(),
    ) -> Iterator[Reached]:
        """The fields ``selection_set`` selects, through fragments (``Reached.node`` is a ``FieldNode``)."""
        return (r for r in self.selections(selection_set, parent, stack) if isinstance(r.node, FieldNode))

    def field_nodes(self, selection_set: SelectionSetNode) -> list[FieldNode]:
        return [r.node for r in self.fields(selection_set) if isinstance(r.node, FieldNode)]

    def response_keys(
        self, selection_set: SelectionSetNode | None, parent: GraphQLObjectType | None = None
    ) -> dict[str, list[FieldNode]]:
        """Response key -> the field nodes that produce it."""
        out: dict[str, list[FieldNode]] = {}
        if selection_set is not None:
            for r in self.fields(selection_set, parent):
                assert isinstance(r.node, FieldNode)
                out.setdefault((r.node.alias or r.node.name).value, []).append(r.node)
        return out

    def _target(
        self, cond: NamedTypeNode | None, parent: GraphQLObjectType | None
    ) -> tuple[bool, GraphQLObjectType | None]:
        """Whether a fragment with type condition ``cond`` is walked under ``parent``, and the type its fields
        are selected on."""
        if cond is None or self.schema is None:
            return True, parent
        t = self.schema.get_type(cond.name.value)
        if self.possible_only and parent is not None:
            applies = t is parent or (
                isinstance(t, GraphQLInterfaceType | GraphQLUnionType) and self.schema.is_sub_type(t, parent)
            )
            if not applies:
                return False, parent
        return True, t if isinstance(t, GraphQLObjectType) else parent
