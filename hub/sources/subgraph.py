"""``SubgraphSource``: a department served by its own GraphQL service (the Apollo Federation subgraph protocol).

The contract mirrors the SQL one (``hub.departments``): each table ``t`` of the department is a field on the
entity its key names, returning the table's rows with camelCase column names::

    type Person @key(fields: "idNumber") {          # tables with an id_number column
      idNumber: String!
      enrolment: [EnrolmentRow!]!
    }
    type EnrolmentRow { idNumber: String!  enrolled: Boolean!  stage: String!  ... }

(``household_id`` tables hang off ``Household @key(fields: "householdId")`` in the same way.) Column types
map to ``String``, ``Int``, ``Boolean``, ``Date`` (ISO 8601) and ``Decimal`` (a decimal string); a nullable
column may be served non-null, never the other way round. At start-up the hub fetches ``_service { sdl }``
and compares it with this contract (graphql-core's ``find_breaking_changes``): a mismatch refuses to start
with a message naming the department, type and field.

Every call is one ``_entities(representations:)`` POST per department per resolver level: the per-request
loaders batch keys, and calls for the same department made in the same event-loop turn (two predicates and a
row fetch, say) are coalesced into the same POST. Each POST carries a short-lived hop token signed with
the hub's token key naming the original client, department, officer, purpose, case and request id.

What crosses the wire differs from SQL sources: a SQL department evaluates predicates and row-scope filters
in its own query, so only matching keys come back. A subgraph department sends the rows and the hub evaluates
the condition (in a transient in-memory SQLite table built from the same ``Table``, so the semantics are the
SQL ones). Only the columns the condition reads are requested, and nothing is kept after the request.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import ssl
import threading
import time
import weakref
from collections import namedtuple
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

import anyio
import httpx
from graphql import (
    BreakingChangeType,
    DocumentNode,
    GraphQLError,
    GraphQLField,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    NamedTypeNode,
    NameNode,
    ObjectTypeDefinitionNode,
    ObjectTypeExtensionNode,
    ScalarTypeDefinitionNode,
    SchemaDefinitionNode,
    SchemaExtensionNode,
    TypeDefinitionNode,
    Visitor,
    build_ast_schema,
    find_breaking_changes,
    get_named_type,
    parse,
    value_from_ast_untyped,
    visit,
)
from sqlalchemy import (
    Boolean,
    Column,
    ColumnElement,
    Date,
    Engine,
    Integer,
    MetaData,
    Numeric,
    Select,
    String,
    Table,
    and_,
    create_engine,
    insert,
    literal,
    literal_column,
    not_,
    or_,
    select,
)
from sqlalchemy.pool import StaticPool
from sqlalchemy.sql import operators, visitors
from sqlalchemy.sql.elements import (
    BinaryExpression,
    BindParameter,
    BooleanClauseList,
    False_,
    Grouping,
    Null,
    True_,
    UnaryExpression,
)

from hub.auth.hop import HopIdentity, HopSigner, current_hop
from hub.departments import DEPARTMENTS
from hub.errors import ConfigError, UpstreamUnavailable
from hub.sources import Source
from hub.upstream.bounded import DEFAULT_MAX_BYTES, AnswerTooLarge, post_json
from hub.upstream.breaker import CircuitBreaker
from hub.upstream.guard import HTTP_FAILURES, guarded

if TYPE_CHECKING:
    pass

log = logging.getLogger("hub.sources")

SDL_QUERY = "query HubServiceSdl { _service { sdl } }"

# key column -> (entity type, key field)
ENTITY_KEYS: dict[str, tuple[str, str]] = {
    "id_number": ("Person", "idNumber"),
    "household_id": ("Household", "householdId"),
}


def is_subgraph_url(url: str) -> bool:
    """Department URLs with an HTTP(S) scheme name a GraphQL subgraph; anything else is a SQLAlchemy URL."""
    return url.startswith(("http://", "https://"))


# -- the contract: names, scalars, expected SDL, schema comparison ---------------------------------------------


def camel(name: str) -> str:
    first, *rest = name.split("_")
    return first + "".join(p[:1].upper() + p[1:] for p in rest)


def row_type_name(table: Table) -> str:
    return "".join(p[:1].upper() + p[1:] for p in table.name.split("_")) + "Row"


def scalar_name(column: Column[Any]) -> str:
    t = column.type
    if isinstance(t, Boolean):
        return "Boolean"
    if isinstance(t, Integer):
        return "Int"
    if isinstance(t, Numeric):
        return "Decimal"
    if isinstance(t, Date):
        return "Date"
    if isinstance(t, String):
        return "String"
    raise ConfigError(f"column {column} has a type subgraphs cannot carry: {t!r}")


def entity_tables(code: str) -> dict[str, list[tuple[str, Table]]]:
    """entity type -> [(key column, table)] for the department's tables."""
    md = DEPARTMENTS[code].metadata
    if md is None:
        raise ConfigError(f"department {code} has no data of its own; it cannot be a subgraph source")
    out: dict[str, list[tuple[str, Table]]] = {}
    for table in md.tables.values():
        for key, (entity, _) in ENTITY_KEYS.items():
            if key in table.c:
                out.setdefault(entity, []).append((key, table))
    return out


def matches_field(table: Table) -> str:
    """The entity field answering a predicate on ``table``: ``<table>Matches(where: String!): Boolean!``."""
    return camel(table.name) + "Matches"


def expected_sdl(code: str, predicates: bool = True) -> str:
    """The subgraph schema the hub expects of department ``code`` (federation directives left out). With
    ``predicates`` (the default; see ``HUB_PREDICATES_IN_HUB``), each table also has its ``<table>Matches``
    field, which answers a predicate yes/no at the department."""
    entities = entity_tables(code)
    tables = {t.name: t for pairs in entities.values() for _, t in pairs}
    parts = ["scalar Date", "scalar Decimal"]
    for table in tables.values():
        cols = "\n".join(f"  {camel(c.name)}: {scalar_name(c)}{'' if c.nullable else '!'}" for c in table.columns)
        parts.append(f"type {row_type_name(table)} {{\n{cols}\n}}")
    for entity, pairs in entities.items():
        fields = "\n".join(f"  {camel(t.name)}: [{row_type_name(t)}!]!" for _, t in pairs)
        if predicates:
            fields += "".join(f"\n  {matches_field(t)}(where: String!): Boolean!" for _, t in pairs)
        parts.append(f"type {entity} {{\n{fields}\n}}")
    parts.append("type Query {\n" + "\n".join(f"  _{e.lower()}: {e}" for e in entities) + "\n}")
    return "\n\n".join(parts) + "\n"


class _NamedTypes(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()

    def enter_named_type(self, node: NamedTypeNode, *_: Any) -> None:
        self.names.add(node.name.value)


BUILTIN_SCALARS = {"String", "Int", "Float", "Boolean", "ID"}


def served_schema(sdl: str) -> GraphQLSchema:
    """Build a schema from a subgraph's SDL: federation directives are tolerated, their scalars stubbed, and
    federation-1 ``extend type X @key(...)`` of a type the subgraph does not otherwise define is made a type."""
    doc = parse(sdl, no_location=True)
    defined = {d.name.value for d in doc.definitions if isinstance(d, TypeDefinitionNode)}
    definitions: list[Any] = []
    for d in doc.definitions:
        if isinstance(d, ObjectTypeExtensionNode) and d.name.value not in defined:
            defined.add(d.name.value)
            d = ObjectTypeDefinitionNode(name=d.name, interfaces=d.interfaces, directives=d.directives, fields=d.fields)
        definitions.append(d)
    names = _NamedTypes()
    visit(doc, names)
    for missing in sorted(names.names - defined - BUILTIN_SCALARS):
        definitions.append(ScalarTypeDefinitionNode(name=NameNode(value=missing)))
    return build_ast_schema(DocumentNode(definitions=tuple(definitions)), assume_valid=True, assume_valid_sdl=True)


def _project(schema: GraphQLSchema, entities: Iterable[str]) -> GraphQLSchema:
    fields: dict[str, GraphQLField] = {}
    for entity in entities:
        t = schema.type_map.get(entity)
        if isinstance(t, GraphQLObjectType):
            fields[f"_{entity.lower()}"] = GraphQLField(t)
    return GraphQLSchema(query=GraphQLObjectType("Query", fields), assume_valid=True)


FEDERATION_SPEC = "specs.apollo.dev/federation/"


def key_directive_names(doc: DocumentNode) -> set[str]:
    """The names under which the SDL spells federation's ``@key``. Federation 1 SDL (no ``@link`` to the
    federation spec): ``key``. Federation 2: ``<namespace>__key`` (``federation__key`` unless the ``@link`` says
    ``as:``), plus whatever ``import:`` brings in: ``"@key"`` as ``key``, ``{name: "@key", as: "@primaryKey"}``
    as ``primaryKey``."""
    for d in doc.definitions:
        if not isinstance(d, SchemaDefinitionNode | SchemaExtensionNode):
            continue
        for directive in d.directives or ():
            if directive.name.value != "link":
                continue
            args = {a.name.value: value_from_ast_untyped(a.value) for a in directive.arguments or ()}
            url = args.get("url")
            if not isinstance(url, str) or FEDERATION_SPEC not in url:
                continue
            namespace = args.get("as") if isinstance(args.get("as"), str) else "federation"
            names = {f"{str(namespace).lstrip('@')}__key"}
            for item in args.get("import") or ():
                if item == "@key":
                    names.add("key")
                elif isinstance(item, dict) and item.get("name") == "@key" and isinstance(item.get("as"), str):
                    names.add(item["as"].lstrip("@"))
            return names
    return {"key"}


def _key_problem(t: GraphQLObjectType, key_field: str, names: set[str]) -> str | None:
    """None if ``t`` has a resolvable ``@key(fields: "<key_field>")`` (under one of ``names``); else why not."""
    refused = False
    for node in (t.ast_node, *t.extension_ast_nodes):
        for d in getattr(node, "directives", None) or ():
            if d.name.value not in names:
                continue
            args = {a.name.value: value_from_ast_untyped(a.value) for a in d.arguments or ()}
            fields = args.get("fields")
            if not isinstance(fields, str) or fields.split() != [key_field]:
                continue
            if args.get("resolvable") is False:
                refused = True
                continue
            return None
    if refused:
        return f'{t.name} @key(fields: "{key_field}") is not resolvable (resolvable: false)'
    return f'{t.name} has no @key(fields: "{key_field}")'


def schema_problems(code: str, sdl: str, predicates: bool = True) -> list[str]:
    """Every way the served SDL falls short of what the hub reads from department ``code``; empty if none."""
    try:
        doc = parse(sdl, no_location=True)
        served = served_schema(sdl)
    except (GraphQLError, TypeError) as exc:
        return [f"the SDL does not parse or build ({exc})"]
    expected = build_ast_schema(parse(expected_sdl(code, predicates)))
    entities = list(entity_tables(code))
    names = key_directive_names(doc)
    problems: list[str] = []
    for entity in entities:
        key_field = next(kf for e, kf in ENTITY_KEYS.values() if e == entity)
        t = served.type_map.get(entity)
        if not isinstance(t, GraphQLObjectType):
            problems.append(f'entity type {entity} is missing (serve it with @key(fields: "{key_field}"))')
            continue
        key_type = t.fields.get(key_field)
        named = get_named_type(key_type.type) if key_type is not None else None
        if named is None or named.name not in ("String", "ID"):
            problems.append(f"{entity}.{key_field} is missing (the key field, a String)")
        problem = _key_problem(t, key_field, names)
        if problem:
            problems.append(problem)
    scalars = {n for n, t in expected.type_map.items() if isinstance(t, GraphQLScalarType)}
    for change in find_breaking_changes(_project(expected, entities), _project(served, entities)):
        if change.type is BreakingChangeType.TYPE_REMOVED and (
            change.description.startswith("Standard scalar") or change.description.split()[0] in scalars
        ):
            continue  # a scalar no longer referenced: the field that used it is reported on its own
        if change.type is BreakingChangeType.TYPE_REMOVED and change.description.split()[0] in entities:
            continue  # reported above
        problems.append(change.description.removeprefix("Field ").rstrip("."))
    return problems


def check_subgraphs(sources: Iterable[Source]) -> None:
    """Start-up check of every subgraph department; ``ConfigError`` naming department, type and field."""
    every = list(sources)
    for source in every:
        if not isinstance(source, SubgraphSource):
            continue
        try:
            source.check_schema()
        except ConfigError:
            for s in every:
                s.close()
            raise


# -- rows from JSON ---------------------------------------------------------------------------------------------


def _value(column: Column[Any], value: Any) -> Any:
    """A JSON value as the SQL source would give it (``date``, ``Decimal``, ``int``, ``bool``, ``str``);
    ``ValueError`` if it is not of the column's type, or null in a ``NOT NULL`` column."""
    if value is None:
        if not column.nullable:
            raise ValueError(f"{column.name}: null in a non-null column")
        return None
    t = column.type
    if isinstance(t, Boolean):
        if not isinstance(value, bool):
            raise ValueError(f"{column.name}: expected a boolean")
        return value
    if isinstance(t, Integer):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{column.name}: expected an integer")
        return value
    if isinstance(t, Numeric):
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ValueError(f"{column.name}: expected a decimal")
        try:
            return Decimal(str(value))
        except InvalidOperation:
            raise ValueError(f"{column.name}: expected a decimal") from None
    if not isinstance(value, str):
        raise ValueError(f"{column.name}: expected a string")
    if isinstance(t, Date):
        return date.fromisoformat(value)
    return value


_ROW_TYPES: dict[str, Any] = {}


def _row_type(table: Table) -> Any:
    """A named tuple per table: attribute access by column name, and equal to the SQL source's row tuples."""
    key = f"{id(table)}.{table.name}"
    cls = _ROW_TYPES.get(key)
    if cls is None:
        cls = _ROW_TYPES[key] = namedtuple(row_type_name(table), [c.name for c in table.columns])
    return cls


_EVALUATORS: dict[str, tuple[Engine, Table, threading.Lock]] = {}
_EVALUATORS_LOCK = threading.Lock()


def _evaluator(table: Table) -> tuple[Engine, Table, threading.Lock]:
    """A private in-memory SQLite copy of ``table``'s shape, made once per table (not per call)."""
    with _EVALUATORS_LOCK:
        return _EVALUATORS.get(table.name) or _make_evaluator(table)


def _make_evaluator(table: Table) -> tuple[Engine, Table, threading.Lock]:
    md = MetaData()
    copy = Table(
        table.name,
        md,
        Column("_hub_row", Integer, primary_key=True),
        *[Column(c.name, c.type, nullable=True) for c in table.columns],
    )
    engine = create_engine("sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False})
    md.create_all(engine)
    found = _EVALUATORS[table.name] = (engine, copy, threading.Lock())
    return found


def _matching(table: Table, records: list[dict[str, Any]], condition: ColumnElement[bool]) -> set[int]:
    """Indexes of ``records`` satisfying ``condition``, evaluated by SQLite on a transient in-memory copy.

    Calls may come from several worker threads at once: one lock per table serialises them on the shared
    connection, and the rows are deleted again before the lock is released (nothing is kept, nothing mixes).
    """
    engine, copy, lock = _evaluator(table)
    with lock, engine.begin() as conn:
        try:
            if records:
                conn.execute(insert(copy), [{"_hub_row": i, **r} for i, r in enumerate(records)])
            stmt: Select[Any] = select(literal_column("_hub_row")).select_from(table).where(condition)
            return {int(r[0]) for r in conn.execute(stmt)}
        finally:
            conn.execute(copy.delete())


def _prefix_test(table: Table, condition: ColumnElement[bool]) -> tuple[str, str] | None:
    """(column, prefix) when ``condition`` is ``column.startswith(prefix)`` on ``table`` (the row scope of every
    jurisdiction-bound request), which is then checked in Python; None for anything else (SQLite decides)."""
    if (
        isinstance(condition, BinaryExpression)
        and condition.operator is operators.startswith_op
        and isinstance(condition.left, Column)
        and condition.left.table is table
        and isinstance(condition.right, BindParameter)
        and isinstance(condition.right.value, str)
        and not {"%", "_", "/", "\\"} & set(condition.right.value)  # escaped LIKE characters: leave it to SQLite
    ):
        return condition.left.name, condition.right.value
    return None


async def _select(table: Table, records: list[dict[str, Any]], condition: ColumnElement[bool]) -> set[int]:
    """Indexes of ``records`` satisfying ``condition``: a prefix test in Python, anything else by ``_matching``
    in a worker thread."""
    prefix = _prefix_test(table, condition)
    if prefix is not None:
        column, start = prefix
        return {i for i, r in enumerate(records) if isinstance(r.get(column), str) and r[column].startswith(start)}
    return await anyio.to_thread.run_sync(_matching, table, records, condition)


def _columns_read(condition: ColumnElement[bool], table: Table) -> set[str]:
    return {el.name for el in visitors.iterate(condition) if isinstance(el, Column) and el.table is table}


# -- predicates sent to the department: a condition as JSON --------------------------------------------------------
#
# A predicate goes to a subgraph department as ``<table>Matches(where: String!)``: ``where`` is JSON text of
# the condition on the table's own columns (docs/federation.md, "Predicates"):
#   {"column": "oop_12m"}                     a column of the table (snake_case, as in the SQL contract)
#   {"value": 20000} / {"value": "stopped"} / {"value": true}     an integer, string or boolean
#   {"decimal": "1500.50"} / {"date": "2025-06-01"}               a decimal or an ISO date
#   {"op": "<op>", "args": [e, ...]}          op: = != < <= > >= (two args), + - (two args), and / or (two or
#                                             more), not (one), is_null / is_not_null / is_true / is_false (one),
#                                             starts_with (a column and a string value, taken literally)
# with SQL's semantics: a comparison with NULL is unknown, and a row matches only if the condition is true.

_BINARY = {
    operators.eq: "=",
    operators.ne: "!=",
    operators.lt: "<",
    operators.le: "<=",
    operators.gt: ">",
    operators.ge: ">=",
    operators.add: "+",
    operators.sub: "-",
}
_IS = {(operators.is_, "null"): "is_null", (operators.is_not, "null"): "is_not_null"}
_IS.update({(operators.is_, "true"): "is_true", (operators.is_, "false"): "is_false"})
MAX_CONDITION_NODES = 64


def _literal(value: Any) -> dict[str, Any]:
    if isinstance(value, bool | int | str):
        return {"value": value}
    if isinstance(value, Decimal | float):
        return {"decimal": str(value)}
    if isinstance(value, date):
        return {"date": value.isoformat()}
    raise ValueError(f"a {type(value).__name__} literal cannot be sent to a subgraph")


def condition_json(table: Table, condition: ColumnElement[Any]) -> dict[str, Any]:
    """``condition`` (on ``table``'s columns) as the JSON a department evaluates; ``ValueError`` for anything
    the grammar above cannot say."""
    el: Any = condition
    while isinstance(el, Grouping):
        el = el.element
    if isinstance(el, Column):
        if el.table is not table:
            raise ValueError(f"column {el} is not on {table.name}")
        return {"column": el.name}
    if isinstance(el, BindParameter):
        return _literal(el.value)
    if isinstance(el, BooleanClauseList):
        op = {operators.and_: "and", operators.or_: "or"}.get(el.operator)
        if op is None:
            raise ValueError("an unknown clause list")
        return {"op": op, "args": [condition_json(table, c) for c in el.clauses]}
    if isinstance(el, UnaryExpression) and el.operator is operators.inv:
        return {"op": "not", "args": [condition_json(table, el.element)]}
    if isinstance(el, BinaryExpression):
        if el.operator in (operators.is_, operators.is_not):
            right = el.right
            kind = "null" if isinstance(right, Null) else "true" if isinstance(right, True_) else "false"
            if not isinstance(right, Null | True_ | False_) or (el.operator, kind) not in _IS:
                raise ValueError("an IS test other than IS NULL, IS NOT NULL, IS TRUE, IS FALSE")
            return {"op": _IS[(el.operator, kind)], "args": [condition_json(table, el.left)]}
        if el.operator is operators.startswith_op and isinstance(el.right, BindParameter):
            prefix, escape = el.right.value, el.modifiers.get("escape")
            if not isinstance(prefix, str) or (escape is None and {"%", "_"} & set(prefix)):
                raise ValueError("a starts_with whose prefix is a pattern")
            if escape is not None:
                prefix = re.sub(re.escape(escape) + "(.)", r"\1", prefix)
            return {"op": "starts_with", "args": [condition_json(table, el.left), {"value": prefix}]}
        op = _BINARY.get(el.operator)
        if op is not None:
            return {"op": op, "args": [condition_json(table, el.left), condition_json(table, el.right)]}
    raise ValueError(f"{el.__class__.__name__} cannot be sent to a subgraph")


def condition_from_json(table: Table, where: Any) -> ColumnElement[bool]:
    """The department's side: parse ``where`` (JSON text or its value) into a condition on ``table``
    (``ValueError`` if it is not the grammar above, names an unknown column or is too large)."""
    if isinstance(where, str):
        where = json.loads(where)
    count = [0]

    def dec(node: Any) -> Any:
        count[0] += 1
        if count[0] > MAX_CONDITION_NODES or not isinstance(node, dict):
            raise ValueError("not a condition")
        if "column" in node:
            name = node["column"]
            if not isinstance(name, str) or name not in table.c:
                raise ValueError(f"no column {name!r} in {table.name}")
            return table.c[name]
        if "value" in node:
            if not isinstance(node["value"], bool | int | str):
                raise ValueError("a value must be an integer, string or boolean")
            return literal(node["value"])
        if "decimal" in node:
            return literal(Decimal(str(node["decimal"])), Numeric())
        if "date" in node:
            return literal(date.fromisoformat(str(node["date"])), Date())
        op, args = node.get("op"), node.get("args")
        if not isinstance(args, list):
            raise ValueError("args must be a list")
        a = [dec(x) for x in args]
        if op in ("and", "or") and len(a) >= 2:
            return and_(*a) if op == "and" else or_(*a)
        if op == "not" and len(a) == 1:
            return not_(a[0])
        if op in ("is_null", "is_not_null", "is_true", "is_false") and len(a) == 1:
            return {
                "is_null": a[0].is_(None),
                "is_not_null": a[0].is_not(None),
                "is_true": a[0].is_(True),
                "is_false": a[0].is_(False),
            }[op]
        if op == "starts_with" and len(a) == 2 and isinstance(args[1], dict) and isinstance(args[1].get("value"), str):
            return a[0].startswith(args[1]["value"], autoescape=True)
        binary = {v: k for k, v in _BINARY.items()}
        if op in binary and len(a) == 2:
            return binary[op](a[0], a[1])
        raise ValueError(f"unknown operator {op!r} with {len(a)} argument(s)")

    return dec(where)  # type: ignore[no-any-return]


# -- the source -------------------------------------------------------------------------------------------------


@dataclass
class _Want:
    table: Table
    key: str
    where: str | None = None  # a predicate: its condition as JSON text, answered yes/no by the department
    keys: set[str] = field(default_factory=set)
    columns: set[str] = field(default_factory=set)


# (table, key column) -> key -> records; for a predicate (table?where, key column) -> key -> bool
_Found = dict[tuple[str, str], dict[str, Any]]


@dataclass(frozen=True)
class _Seen:
    """What one earlier batch of the same request fetched for one (table, key): later loaders of the request
    (a record's predicates, resolved a level below its rows) reuse it instead of posting again."""

    keys: frozenset[str]
    columns: frozenset[str]
    found: dict[str, Any]


@dataclass(eq=False)
class _Batch:
    hop: HopIdentity | None
    done: asyncio.Future[_Found]
    wants: dict[tuple[str, str], _Want] = field(default_factory=dict)


class SubgraphSource:
    """One department reached through its GraphQL subgraph.

    It is a ``hub.sources.Source`` like ``SqlSource`` (``statements`` counts HTTP requests); no SQL engine
    is opened. ``predicates_in_hub`` selects the fallback that asks for the compared columns and evaluates
    predicates in the hub (``HUB_PREDICATES_IN_HUB``); by default the department answers them.
    """

    BATCH_TURNS = 2  # event-loop turns a batch stays open for other loaders of the same request to join

    def __init__(
        self,
        code: str,
        url: str,
        *,
        signer: HopSigner,
        timeout: float = 5.0,
        breaker: CircuitBreaker | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
        predicates_in_hub: bool = False,
    ) -> None:
        entity_tables(code)  # refuses departments without tables
        self.code = code
        self.url = url
        self.signer = signer
        self.timeout = timeout
        self.breaker = breaker or CircuitBreaker()
        self.max_bytes = max_bytes
        self.predicates_in_hub = predicates_in_hub
        self.statements = 0
        self.schema_checked = False
        self._pending: dict[HopIdentity | None, _Batch] = {}
        # per request (its hop identity), what was already fetched; dropped with the request
        self._seen: weakref.WeakKeyDictionary[HopIdentity, dict[tuple[str, str], list[_Seen]]] = (
            weakref.WeakKeyDictionary()
        )
        self._tasks: set[asyncio.Task[None]] = set()
        self._ssl = ssl.create_default_context() if url.startswith("https://") else None
        # one connection pool per event loop: a new httpx client per call would build a TLS context each time
        self._clients: dict[asyncio.AbstractEventLoop, httpx.AsyncClient] = {}

    def _client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None or client.is_closed:
            client = self._clients[loop] = httpx.AsyncClient(
                timeout=self.timeout,
                verify=self._ssl if self._ssl is not None else False,  # plain http: no TLS
            )
        return client

    def close(self) -> None:
        self._pending.clear()
        for loop, client in list(self._clients.items()):
            if not loop.is_closed() and loop.is_running():
                loop.create_task(client.aclose())
        self._clients.clear()

    # -- schema check ------------------------------------------------------------------------------------------
    def _check(self, payload: Any) -> None:
        sdl = _data(payload, self.code)["_service"]["sdl"]
        if not isinstance(sdl, str):
            raise ValueError("_service.sdl is not a string")
        problems = schema_problems(self.code, sdl, predicates=not self.predicates_in_hub)
        if problems:
            raise ConfigError(
                f"department {self.code}: subgraph schema at {self.url} does not match what the hub expects: "
                + "; ".join(problems),
                details={"department": self.code, "problems": problems},
            )
        self.schema_checked = True

    def check_schema(self) -> bool:
        """Fetch ``_service { sdl }`` now (blocking). ``ConfigError`` on mismatch; ``False`` if unreachable."""
        body: dict[str, Any] = {"query": SDL_QUERY, "variables": {}}
        token = self.signer.token(self.code, None, body)
        deadline = time.monotonic() + self.timeout
        try:
            self.statements += 1
            with httpx.stream(
                "POST",
                self.url,
                json=body,
                headers={"authorization": f"Bearer {token}"},
                timeout=self.timeout,
                verify=self._ssl or True,
            ) as r:
                r.raise_for_status()
                chunks, size = [], 0
                for chunk in r.iter_bytes():
                    size += len(chunk)
                    if size > self.max_bytes or time.monotonic() > deadline:
                        raise AnswerTooLarge("the SDL answer is too large or too slow")
                    chunks.append(chunk)
            self._check(json.loads(b"".join(chunks)))
        except HTTP_FAILURES as exc:
            log.warning(
                "department %s: subgraph %s unreachable at start-up (%s); its schema is checked before first use",
                self.code,
                self.url,
                exc.__class__.__name__,
            )
            return False
        return True

    # -- the HubContext interface --------------------------------------------------------------------------------
    async def rows_by(
        self,
        table: Table,
        key: str,
        keys: Sequence[str],
        where: ColumnElement[bool] | None = None,
        columns: Sequence[str] | None = None,
    ) -> list[list[Any]]:
        """Rows of ``table`` whose ``key`` is in ``keys``, grouped in the order of ``keys`` (one POST per batch).
        Only ``columns`` (all by default), ``key`` and the columns ``where`` reads are requested."""
        wanted = list(dict.fromkeys(keys))
        asked = {c.name for c in table.columns} if columns is None else {key, *columns}
        if where is not None:
            asked |= _columns_read(where, table)
        found = await self._fetch(table, key, wanted, asked)
        row = _row_type(table)
        if where is None:
            return [[row(**{c.name: r.get(c.name) for c in table.columns}) for r in found.get(k, [])] for k in keys]
        records = [r for k in wanted for r in found.get(k, [])]
        keep = await _select(table, records, where)
        kept: dict[str, list[Any]] = {}
        for i, r in enumerate(records):
            if i in keep:
                kept.setdefault(r[key], []).append(row(**{c.name: r.get(c.name) for c in table.columns}))
        return [kept.get(k, []) for k in keys]

    async def predicate(
        self, table: Table, key: str, keys: Sequence[str], condition: ColumnElement[bool]
    ) -> list[bool]:
        """Whether any row of each key satisfies ``condition``. The department answers it (``<table>Matches``,
        the condition and its threshold sent as JSON) and only yes/no comes back; with ``predicates_in_hub``,
        the columns it reads are requested and the hub evaluates it (the request's hop records that)."""
        wanted = list(dict.fromkeys(keys))
        if not self.predicates_in_hub:
            try:
                where = json.dumps(condition_json(table, condition), sort_keys=True, separators=(",", ":"))
            except ValueError as exc:
                log.error("department %s: a predicate cannot be sent to the subgraph: %s", self.code, exc)
                raise UpstreamUnavailable(f"department {self.code} cannot answer this predicate") from None
            answers = await self._fetch(table, key, wanted, set(), where)
            return [answers.get(k) is True for k in keys]
        hop = current_hop()
        if hop is not None:
            hop.predicates_in_hub.add(self.code)
        found = await self._fetch(table, key, wanted, {key} | _columns_read(condition, table))
        records: list[dict[str, Any]] = []
        owners: list[str] = []
        for k in wanted:
            for r in found.get(k, []):
                records.append(r)
                owners.append(k)
        hits = await _select(table, records, condition)
        hit_keys = {owners[i] for i in hits}
        return [k in hit_keys for k in keys]

    async def aggregate(self, stmt: Any) -> list[tuple[Any, ...]]:
        raise UpstreamUnavailable(
            f"department {self.code} is served by a GraphQL subgraph; aggregates are computed only by SQL sources"
        )

    # -- batching ------------------------------------------------------------------------------------------------
    async def _fetch(
        self, table: Table, key: str, keys: Sequence[str], columns: set[str], where: str | None = None
    ) -> dict[str, Any]:
        if key not in ENTITY_KEYS:
            raise UpstreamUnavailable(f"department {self.code}: no subgraph entity is keyed by {key}")
        if where is None:
            columns = columns | {key}  # every row is checked against the entity it answers
        slot = (table.name if where is None else f"{table.name}?{where}", key)
        loop = asyncio.get_running_loop()
        hop = current_hop()
        if hop is not None:
            for seen in self._seen.get(hop, {}).get(slot, ()):
                if seen.keys.issuperset(keys) and seen.columns.issuperset(columns):
                    return seen.found
        batch = self._pending.get(hop)
        if batch is None:
            batch = _Batch(hop, loop.create_future())
            self._pending[hop] = batch
            self._launch_later(batch, self.BATCH_TURNS)
        want = batch.wants.setdefault(slot, _Want(table, key, where))
        want.keys.update(keys)
        want.columns.update(columns)
        found = await asyncio.shield(batch.done)
        return found.get(slot, {})

    def _launch_later(self, batch: _Batch, turns: int) -> None:
        loop = asyncio.get_running_loop()
        if turns > 0:
            loop.call_soon(self._launch_later, batch, turns - 1)
            return
        if self._pending.get(batch.hop) is batch:
            del self._pending[batch.hop]
        task = loop.create_task(self._send(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, batch: _Batch) -> None:
        try:
            found = await self._run(batch)
        except UpstreamUnavailable as exc:
            batch.done.set_exception(exc)
        except BaseException as exc:  # never leave the waiters hanging
            batch.done.set_exception(UpstreamUnavailable(f"department {self.code} is unavailable"))
            if not isinstance(exc, Exception):
                raise
            log.exception("department %s: unexpected failure", self.code)
        else:
            if batch.hop is not None:
                memo = self._seen.setdefault(batch.hop, {})
                for slot, want in batch.wants.items():
                    memo.setdefault(slot, []).append(
                        _Seen(frozenset(want.keys), frozenset(want.columns), found.get(slot, {}))
                    )
            batch.done.set_result(found)

    async def _run(self, batch: _Batch) -> _Found:
        async with guarded(self.breaker, self.timeout, f"department {self.code}", failures=HTTP_FAILURES):
            return await self._entities(batch)

    async def _post(self, client: httpx.AsyncClient, query: str, variables: dict[str, Any], hop: Any) -> Any:
        body = {"query": query, "variables": variables}
        token = self.signer.token(self.code, hop, body)  # bound to this body, used once
        self.statements += 1
        r, payload = await post_json(
            client, self.url, json_body=body, headers={"authorization": f"Bearer {token}"}, max_bytes=self.max_bytes
        )
        if r.status_code >= 400 and not (isinstance(payload, dict) and payload.get("errors")):
            raise ValueError(f"HTTP {r.status_code}")
        return payload

    async def _entities(self, batch: _Batch) -> _Found:
        client = self._client()
        if not self.schema_checked:  # unreachable at start-up: check before the first use
            try:
                self._check(await self._post(client, SDL_QUERY, {}, None))
            except ConfigError as exc:
                log.error("%s", exc.message)
                raise UpstreamUnavailable(f"department {self.code}: subgraph schema does not match") from None
        by_entity: dict[str, list[_Want]] = {}
        for want in batch.wants.values():
            by_entity.setdefault(ENTITY_KEYS[want.key][0], []).append(want)
        representations: list[dict[str, str]] = []
        index: list[tuple[str, str]] = []
        selections: list[str] = []
        variables: dict[str, Any] = {}
        aliases: dict[int, str] = {}  # id(want) -> alias of its predicate field
        for entity, wants in by_entity.items():
            key_field = ENTITY_KEYS[wants[0].key][1]
            values = sorted({k for w in wants for k in w.keys})
            representations += [{"__typename": entity, key_field: v} for v in values]
            index += [(entity, v) for v in values]
            parts = []
            for w in wants:
                if w.where is None:
                    parts.append(f"{camel(w.table.name)} {{ {' '.join(camel(c) for c in sorted(w.columns))} }}")
                else:
                    n = len(aliases)
                    aliases[id(w)] = f"p{n}"
                    variables[f"w{n}"] = w.where
                    parts.append(f"p{n}: {matches_field(w.table)}(where: $w{n})")
            selections.append(f"... on {entity} {{ {' '.join(parts)} }}")
        params = "".join(f", $w{n}: String!" for n in range(len(aliases)))
        inner = " ".join(selections)
        query = f"query HubEntities($r: [_Any!]!{params}) {{ _entities(representations: $r) {{ {inner} }} }}"
        payload = await self._post(client, query, {"r": representations, **variables}, batch.hop)
        entities = _data(payload, self.code)["_entities"]
        if not isinstance(entities, list) or len(entities) != len(representations):
            raise ValueError("_entities did not answer one item per representation")
        # Every answer is checked against the representation it answers and the contract's types: any
        # violation fails the whole call (the department's fields come back UPSTREAM_UNAVAILABLE).
        found: _Found = {}
        for (entity, value), item in zip(index, entities, strict=True):
            if item is not None and not isinstance(item, dict):
                raise ValueError("an _entities item is not an object")
            for want in by_entity[entity]:
                if value not in want.keys:
                    continue
                slot = (want.table.name if want.where is None else f"{want.table.name}?{want.where}", want.key)
                out = found.setdefault(slot, {})
                if want.where is not None:
                    answer = False if item is None else item.get(aliases[id(want)])
                    if not isinstance(answer, bool):
                        raise ValueError(f"{matches_field(want.table)} is not a boolean")
                    out[value] = answer
                    continue
                rows = out.setdefault(value, [])
                if item is None:
                    continue
                records = item.get(camel(want.table.name))
                if not isinstance(records, list):
                    raise ValueError(f"{entity}.{camel(want.table.name)} is not a list")
                cols = [c for c in want.table.columns if c.name in want.columns]
                for rec in records:
                    if not isinstance(rec, dict) or any(camel(c.name) not in rec for c in cols):
                        raise ValueError(f"a {row_type_name(want.table)} lacks a column asked for")
                    row = {c.name: _value(c, rec[camel(c.name)]) for c in cols}
                    if row[want.key] != value:
                        raise ValueError(f"a {row_type_name(want.table)} of another {entity} than the one asked")
                    rows.append(row)
        return found


def _data(payload: Any, code: str) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise ValueError("the subgraph's answer is not a JSON object")
    errors = payload.get("errors")
    if errors:
        first = errors[0] if isinstance(errors, list) and errors else {}
        message = first.get("message", "") if isinstance(first, dict) else ""
        ext = first.get("extensions", {}) if isinstance(first, dict) else {}
        code_ = ext.get("code", "") if isinstance(ext, dict) else ""
        log.warning("department %s (subgraph) answered with %d error(s): %s %s", code, len(errors), code_, message)
        raise UpstreamUnavailable(f"department {code} refused or failed the request")
    data = payload.get("data")
    if not isinstance(data, dict):
        raise ValueError("the subgraph's answer has no data")
    return data
