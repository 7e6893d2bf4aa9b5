"""Fields read from a department's rows, resolved without a resolver call per field.

``Person``, ``Household`` and every department record are built in one step from the rows their department
returned: each ``value`` field carries a getter, and ``build`` runs every getter once. graphql-core then
reads plain attributes (strawberry's "basic field" path) instead of awaiting one resolver per field per
resident, which is what bulk verifications (thousands of residents, dozens of fields each) spend their time on.

Only yes/no predicates keep a resolver: they are answered by the department's own query, so the raw value
never reaches the hub. A record loads its rows only when the query selects at least one ``value`` field.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from graphql import FieldNode, FragmentSpreadNode, InlineFragmentNode, SelectionSetNode
from strawberry.types import Info
from strawberry.utils.str_converters import to_camel_case

from hub.policy.model import Form
from hub.schema.directives import disclosed

T = TypeVar("T")
GETTER = "hub.getter"


@dataclass(frozen=True)
class Getter:
    fn: Callable[[Any], Any]
    rows: bool  # the getter takes the list of rows; otherwise the first row, and no row means null


def value(form: Form, provider: str, doc: str, get: Callable[[Any], Any], *, rows: bool = False) -> Any:
    """A disclosed field computed from the department's row (or, with ``rows=True``, from all its rows)."""
    return disclosed(form, provider, doc, default=None, metadata={GETTER: Getter(get, rows)})


_GETTERS: dict[type, tuple[tuple[str, str, Getter], ...]] = {}
_ROW_FIELDS: dict[type, frozenset[str]] = {}


def getters(cls: type) -> tuple[tuple[str, str, Getter], ...]:
    """(Python name, GraphQL name, getter) of every ``value`` field of a strawberry type."""
    found = _GETTERS.get(cls)
    if found is None:
        found = _GETTERS[cls] = tuple(
            (f.python_name, f.graphql_name or to_camel_case(f.python_name), f.metadata[GETTER])
            for f in cls.__strawberry_definition__.fields  # type: ignore[attr-defined]
            if GETTER in f.metadata
        )
    return found


def row_fields(cls: type) -> frozenset[str]:
    """GraphQL names of the fields that need the department's rows."""
    found = _ROW_FIELDS.get(cls)
    if found is None:
        found = _ROW_FIELDS[cls] = frozenset(name for _, name, _ in getters(cls))
    return found


def build(cls: type[T], rows: list[Any] | None, **private: Any) -> T:
    """An instance of ``cls`` with every ``value`` field computed from ``rows`` (all null when ``rows`` is None:
    the rows were not loaded because no such field was selected)."""
    values: dict[str, Any] = {}
    if rows is not None:
        first = rows[0] if rows else None
        for name, _, g in getters(cls):
            if g.rows:
                values[name] = g.fn(rows)
            else:
                values[name] = None if first is None else g.fn(first)
    return cls(**private, **values)


def build_one(cls: type[T], row: Any) -> T:
    """An instance of a one-row type (``Person``, ``Property``...) that also keeps its row for resolvers."""
    return build(cls, [row], row=row)


def record_selections(
    cache: dict[Any, Any], info: Info[Any, Any], fields: Mapping[str, Any]
) -> dict[str, frozenset[str]]:
    """Below the field being resolved: which of ``fields`` are selected (through fragments) and, for each,
    the names selected below it (all GraphQL names). The same field node always gives the same answer, so it
    is worked out once per request (``cache``), not once per resident."""
    raw = info._raw_info  # graphql-core's resolve info: the field nodes and the document's fragments
    key = tuple(map(id, raw.field_nodes))
    found: dict[str, frozenset[str]] | None = cache.get(key)
    if found is not None:
        return found

    def walk(selection_set: SelectionSetNode, visit: Callable[[FieldNode], None]) -> None:
        for node in selection_set.selections:
            if isinstance(node, FieldNode):
                visit(node)
            elif isinstance(node, InlineFragmentNode):
                walk(node.selection_set, visit)
            elif isinstance(node, FragmentSpreadNode):
                fragment = raw.fragments.get(node.name.value)
                if fragment is not None:
                    walk(fragment.selection_set, visit)

    collected: dict[str, set[str]] = {}

    def on_field(node: FieldNode) -> None:
        if node.name.value in fields and node.selection_set is not None:
            names = collected.setdefault(node.name.value, set())
            walk(node.selection_set, lambda n: names.add(n.name.value))

    for node in raw.field_nodes:
        if node.selection_set is not None:
            walk(node.selection_set, on_field)
    found = cache[key] = {name: frozenset(names) for name, names in collected.items()}
    return found
