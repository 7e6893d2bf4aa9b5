"""Fields read from a department's rows, resolved without a resolver call per field.

``Person``, ``Household`` and every department record are built in one step from the rows their department
returned: each ``value`` field carries a getter, and ``build`` runs every getter once. graphql-core then
reads plain attributes (strawberry's "basic field" path) instead of awaiting one resolver per field per
resident, which is what bulk verifications (thousands of residents, dozens of fields each) spend their time on.

Only yes/no predicates keep a resolver, which returns the answer computed, for all the residents of the
request at once, by the department's own query (the raw value never reaches the hub). A record loads its rows
only when the query selects at least one ``value`` field, and then only the columns the selected fields read.
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import strawberry
from graphql import FieldNode
from sqlalchemy import ColumnElement, Table
from strawberry.types import Info
from strawberry.utils.str_converters import to_camel_case

from hub.graphql_walk import Walker
from hub.policy.model import Form
from hub.schema.context import resolve_info
from hub.schema.directives import disclosed

T = TypeVar("T")
GETTER = "hub.getter"
PREDICATE = "hub.predicate"


@dataclass(frozen=True)
class Getter:
    fn: Callable[[Any], Any]
    rows: bool  # the getter takes the list of rows; otherwise the first row, and no row means null
    columns: tuple[str, ...]  # the department columns it reads: only those of selected fields are fetched
    item: type | None = None  # a list of one-row objects of this type, one per row (``items``)


def items(description: str, cls: type) -> Any:
    """A list of one-row objects (properties, vehicles, business roles), one per row of the record. The columns
    read are those of the item fields selected below it."""
    return strawberry.field(
        description=description, default=None, metadata={GETTER: Getter(lambda rows: rows, True, (), cls)}
    )


def value(
    form: Form,
    provider: str,
    doc: str,
    get: str | Callable[[Any], Any],
    *,
    rows: bool = False,
    columns: tuple[str, ...] | None = None,
) -> Any:
    """A disclosed field computed from the department's row (or, with ``rows=True``, from all its rows).
    ``get`` is a column name (the value as stored) or a function, which must then name the ``columns`` it
    reads: a query fetches from the department only the columns its selected fields read (minimum necessary)."""
    if isinstance(get, str):
        getter = Getter(operator.attrgetter(get), rows, (get,))
    elif columns is None:
        raise TypeError(f"value({doc!r}): a computed field must name the columns it reads")
    else:
        getter = Getter(get, rows, columns)
    return disclosed(form, provider, doc, default=None, metadata={GETTER: getter})


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


_COLUMNS: dict[Any, tuple[str, ...]] = {}  # row_columns' answers, by type and selection (bounded: emptied when full)


def row_columns(cls: type, selected: Selected) -> tuple[str, ...]:
    """The department columns read by the selected ``value`` fields of ``cls`` (and, for a list of items, by
    the item fields selected below it)."""
    key = (cls, selected.names, frozenset(selected.nested.items()))
    found = _COLUMNS.get(key)
    if found is None:
        if len(_COLUMNS) >= 4096:
            _COLUMNS.clear()
        found = _COLUMNS[key] = _row_columns(cls, selected)
    return found


def _row_columns(cls: type, selected: Selected) -> tuple[str, ...]:
    out: set[str] = set()
    for _, name, g in getters(cls):
        if name not in selected.names:
            continue
        if g.item is None:
            out.update(g.columns)
        else:
            below = selected.nested.get(name, frozenset())
            out.update(c for _, n, ig in getters(g.item) if n in below for c in ig.columns)
    return tuple(sorted(out))


def build(cls: type[T], rows: list[Any] | None, selected: Selected | None = None, **private: Any) -> T:
    """An instance of ``cls`` with its ``value`` fields computed from ``rows``: all of them, or only the
    ``selected`` ones (the rows then hold only their columns). All null when ``rows`` is None: the rows were
    not loaded because no such field was selected."""
    values: dict[str, Any] = {}
    if rows is not None:
        first = rows[0] if rows else None
        for name, gql_name, g in getters(cls):
            if selected is not None and gql_name not in selected.names:
                continue
            if g.item is not None:
                below = None if selected is None else Selected(selected.nested.get(gql_name, frozenset()), ())
                values[name] = [build(g.item, [r], below, row=r) for r in rows]
            elif g.rows:
                values[name] = g.fn(rows)
            else:
                values[name] = None if first is None else g.fn(first)
    return cls(**private, **values)


@dataclass(frozen=True)
class Predicate:
    """A yes/no field answered by the department's own query: ``condition(context, **arguments)`` checks the
    arguments and returns the batch name (which must identify the condition) and the SQL condition. It may read
    the arguments and ``context.today`` only: its answer is kept for (field, arguments, today) across requests
    (``hub.schema.people``)."""

    table: Table
    condition: Callable[..., tuple[str, ColumnElement[bool]]]


def predicate(provider: str, doc: str, table: Table, condition: Callable[..., tuple[str, Any]]) -> Any:
    """Decorates a record's predicate field. Its answer is computed, for every resident of the request at once,
    when the record is built (``hub.schema.people.people_from_rows``); the method returns it (``answer``) and
    its signature declares the field's arguments."""

    def wrap(fn: Callable[..., Any]) -> Any:
        fn.__dict__[PREDICATE] = Predicate(table, condition)
        return disclosed(Form.PREDICATE, provider, doc)(fn)

    return wrap


def answer(record: Any, info: Info[Any, Any]) -> bool:
    """The precomputed answer of a predicate field (an error, e.g. a department that is down, is raised here so
    that it is reported at this field's path)."""
    found = record.answers[info.field_name]
    if isinstance(found, Exception):
        raise found
    return bool(found)


_PREDICATES: dict[type, dict[str, Predicate]] = {}


def predicates(cls: type) -> dict[str, Predicate]:
    """GraphQL name -> ``Predicate`` of every predicate field of a record type."""
    found = _PREDICATES.get(cls)
    if found is None:
        found = _PREDICATES[cls] = {
            f.graphql_name or to_camel_case(f.python_name): f.base_resolver.wrapped_func.__dict__[PREDICATE]
            for f in cls.__strawberry_definition__.fields  # type: ignore[attr-defined]
            if f.base_resolver is not None and PREDICATE in getattr(f.base_resolver.wrapped_func, "__dict__", {})
        }
    return found


@dataclass(frozen=True)
class Selected:
    """What a query selects below one record field: the field names, the field nodes (for arguments), and for
    each field with a selection of its own (a list of items), the names selected below it."""

    names: frozenset[str]
    nodes: tuple[FieldNode, ...]
    nested: Mapping[str, frozenset[str]] = dataclasses.field(default_factory=dict)


def _selected(fragments: Mapping[str, Any], parents: Sequence[FieldNode]) -> Selected:
    """What is selected below ``parents`` (field nodes of one field): names, nodes, and one level further."""
    walker = Walker(fragments)
    nodes = [
        n for parent in parents if parent.selection_set is not None for n in walker.field_nodes(parent.selection_set)
    ]
    nested: dict[str, set[str]] = {}
    for node in nodes:
        if node.selection_set is not None:
            nested.setdefault(node.name.value, set()).update(
                n.name.value for n in walker.field_nodes(node.selection_set)
            )
    return Selected(
        frozenset(n.name.value for n in nodes),
        tuple(nodes),
        {name: frozenset(names) for name, names in nested.items()},
    )


def selection_here(cache: dict[Any, Any], info: Info[Any, Any]) -> Selected:
    """What is selected below the field being resolved (through fragments). The same field nodes always give
    the same answer, so it is worked out once per request (``cache``), not once per resident."""
    raw = resolve_info(info)  # graphql-core's resolve info: the field nodes and the document's fragments
    key = ("here", *map(id, raw.field_nodes))
    found: Selected | None = cache.get(key)
    if found is None:
        found = cache[key] = _selected(raw.fragments, raw.field_nodes)
    return found


def record_selections(cache: dict[Any, Any], info: Info[Any, Any], fields: Mapping[str, Any]) -> dict[str, Selected]:
    """Below the field being resolved: which of ``fields`` are selected and, for each, what is selected below
    it (GraphQL names, through fragments); worked out once per request."""
    raw = resolve_info(info)
    key = ("records", *map(id, raw.field_nodes))
    found: dict[str, Selected] | None = cache.get(key)
    if found is None:
        groups: dict[str, list[FieldNode]] = {}
        for node in selection_here(cache, info).nodes:
            if node.name.value in fields:
                groups.setdefault(node.name.value, []).append(node)
        found = cache[key] = {name: _selected(raw.fragments, nodes) for name, nodes in groups.items()}
    return found
