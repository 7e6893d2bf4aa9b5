"""The subgraph contract: what the hub expects of a department served as a GraphQL subgraph.

The hub's ``SubgraphSource`` (``hub.sources.subgraph``) and the demo department subgraph (``hub.demo.subgraph``)
both derive everything from here: entity keys, names, the one table of column types, the expected SDL, the
comparison of a served schema with it, and the grammar of the predicate conditions sent to
``<table>Matches(where:)``. The contract mirrors the SQL one (``hub.departments``): each table ``t`` of the
department is a field on the entity its key names, returning the table's rows with camelCase column names::

    type Person @key(fields: "idNumber") {          # tables with an id_number column
      idNumber: String!
      enrolment: [EnrolmentRow!]!
      enrolmentMatches(where: String!): Boolean!
    }
    type EnrolmentRow { idNumber: String!  enrolled: Boolean!  stage: String!  ... }

(``household_id`` tables hang off ``Household @key(fields: "householdId")`` in the same way.) Column types
map to ``String``, ``Int``, ``Boolean``, ``Date`` (ISO 8601) and ``Decimal`` (a decimal string); a nullable
column may be served non-null, never the other way round.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

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
    Integer,
    Numeric,
    String,
    Table,
    and_,
    literal,
    not_,
    or_,
)
from sqlalchemy.sql import operators
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
from sqlalchemy.types import TypeEngine

from hub.departments import DEPARTMENTS
from hub.errors import ConfigError

SDL_QUERY = "query HubServiceSdl { _service { sdl } }"

# The change-event feed (docs/monitoring.md): a subgraph department publishes its outbox as a field, the same rows
# as a SQL department's ``change_events`` table, oldest first after a sequence number. Optional in the contract:
# a department that does not serve it simply has no events for the monitor (the reader logs why).
FEED_FIELD = "changeEvents"
FEED_MAX = 1000  # most events one feed call may ask for
FEED_SDL = """type ChangeEvent {
  seq: Int!
  idNumber: String!
  kind: String!
  occurredOn: Date!
  recordedAt: String!
}

extend type Query {
  changeEvents(after: Int!, first: Int!): [ChangeEvent!]!
}
"""
FEED_QUERY = (
    "query HubChangeEvents($after: Int!, $first: Int!) "
    "{ changeEvents(after: $after, first: $first) { seq idNumber kind occurredOn recordedAt } }"
)


def feed_rows(items: Any, after: int, first: int) -> list[tuple[int, str, str, str, str]]:
    """The feed's answer as outbox rows ``(seq, id_number, kind, occurred_on, recorded_at)``; ``ValueError`` when
    it breaks the contract (not a list, too long, a field missing or mistyped, sequence numbers not increasing
    after ``after``): the call failed, the cursor stays. Whether each event makes sense is the reader's check."""
    if not isinstance(items, list) or len(items) > first:
        raise ValueError(f"{FEED_FIELD} is not a list of at most {first} events")
    rows: list[tuple[int, str, str, str, str]] = []
    last = after
    for item in items:
        if not isinstance(item, dict):
            raise ValueError("a ChangeEvent is not an object")
        seq = item.get("seq")
        if not isinstance(seq, int) or isinstance(seq, bool) or seq <= last:
            raise ValueError("ChangeEvent.seq must be an integer, increasing after the cursor")
        fields = [item.get(k) for k in ("idNumber", "kind", "occurredOn", "recordedAt")]
        if not all(isinstance(f, str) for f in fields):
            raise ValueError("a ChangeEvent field is missing or not a string")
        rows.append((seq, *fields))  # type: ignore[arg-type]
        last = seq
    return rows


# key column -> (entity type, key field)
ENTITY_KEYS: dict[str, tuple[str, str]] = {
    "id_number": ("Person", "idNumber"),
    "household_id": ("Household", "householdId"),
}


def is_subgraph_url(url: str) -> bool:
    """Department URLs with an HTTP(S) scheme name a GraphQL subgraph; anything else is a SQLAlchemy URL."""
    return url.startswith(("http://", "https://"))


# -- names and column types -------------------------------------------------------------------------------------


def camel(name: str) -> str:
    first, *rest = name.split("_")
    return first + "".join(p[:1].upper() + p[1:] for p in rest)


def row_type_name(table: Table) -> str:
    return "".join(p[:1].upper() + p[1:] for p in table.name.split("_")) + "Row"


@dataclass(frozen=True)
class ColumnType:
    """How a column of one SQL type crosses the contract: its GraphQL scalar and its Python value type."""

    sql: type[TypeEngine[Any]]
    scalar: str
    python: type


# The one table of column types, in the order they are tested (the first the column's type is an instance of).
COLUMN_TYPES: tuple[ColumnType, ...] = (
    ColumnType(Boolean, "Boolean", bool),
    ColumnType(Integer, "Int", int),
    ColumnType(Numeric, "Decimal", Decimal),
    ColumnType(Date, "Date", date),
    ColumnType(String, "String", str),
)


def column_type(column: Column[Any]) -> ColumnType:
    """The contract's type of ``column``; ``ConfigError`` for a type subgraphs cannot carry."""
    for ct in COLUMN_TYPES:
        if isinstance(column.type, ct.sql):
            return ct
    raise ConfigError(f"column {column} has a type subgraphs cannot carry: {column.type!r}")


def scalar_name(column: Column[Any]) -> str:
    return column_type(column).scalar


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
