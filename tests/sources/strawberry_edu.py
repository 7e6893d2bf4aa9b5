"""An education department written by hand with strawberry's federation support, as a department would write it:
its own types, its own SQL, and its own evaluator of the hub's predicate conditions (plain Python, no code from
the hub). ``tests/sources/test_interop.py`` compares its answers with the built-in subgraph's.

It speaks the contract of docs/federation.md: ``Person @key(fields: "idNumber")`` (Federation 2 SDL, ``@key``
imported through ``@link``), ``enrolment: [EnrolmentRow!]!`` and ``enrolmentMatches(where: String!): Boolean!``.
It checks no hop token (the built-in subgraph does): this test is about the data contract.
"""

import json
import sqlite3
from pathlib import Path
from typing import Any

import strawberry
from starlette.applications import Starlette
from starlette.routing import Route
from strawberry.asgi import GraphQL

COLUMNS = ("id_number", "enrolled", "stage", "school", "aid_received", "dropout_flag")
BOOLEAN = {"enrolled", "aid_received", "dropout_flag"}


def evaluate(node: dict[str, Any], row: dict[str, Any]) -> Any:
    """The condition's value on ``row`` with SQL's three-valued logic (None: unknown)."""
    if "column" in node:
        if node["column"] not in COLUMNS:
            raise ValueError(f"no column {node['column']}")
        return row[node["column"]]
    if "value" in node:
        return node["value"]
    if "decimal" in node or "date" in node:
        raise ValueError("no decimal or date column here")
    op, args = node["op"], [evaluate(a, row) for a in node["args"]]
    if op == "and":
        return False if False in args else None if None in args else True
    if op == "or":
        return True if True in args else None if None in args else False
    if op == "not":
        return None if args[0] is None else not args[0]
    if op in ("is_null", "is_not_null"):
        return (args[0] is None) == (op == "is_null")
    if op in ("is_true", "is_false"):
        return args[0] is (op == "is_true")
    if None in args:
        return None
    a, b = args
    return {
        "=": lambda: a == b,
        "!=": lambda: a != b,
        "<": lambda: a < b,
        "<=": lambda: a <= b,
        ">": lambda: a > b,
        ">=": lambda: a >= b,
        "+": lambda: a + b,
        "-": lambda: a - b,
        "starts_with": lambda: isinstance(a, str) and a.startswith(b),
    }[op]()


_DB: dict[str, sqlite3.Connection] = {}


def rows(id_number: str) -> list[dict[str, Any]]:
    cur = _DB["conn"].execute(f"SELECT {', '.join(COLUMNS)} FROM enrolment WHERE id_number = ?", (id_number,))
    return [
        {c: (bool(v) if c in BOOLEAN and v is not None else v) for c, v in zip(COLUMNS, r, strict=True)} for r in cur
    ]


@strawberry.type
class EnrolmentRow:
    id_number: str
    enrolled: bool
    stage: str
    school: str
    aid_received: bool
    dropout_flag: bool


@strawberry.federation.type(keys=["idNumber"])
class Person:
    id_number: str

    @strawberry.field
    def enrolment(self) -> list[EnrolmentRow]:
        return [EnrolmentRow(**r) for r in rows(self.id_number)]

    @strawberry.field
    def enrolment_matches(self, where: str) -> bool:
        condition = json.loads(where)
        return any(evaluate(condition, r) is True for r in rows(self.id_number))

    @classmethod
    def resolve_reference(cls, **representation: Any) -> "Person":
        return cls(id_number=str(representation["idNumber"]))


@strawberry.type
class Query:
    @strawberry.field
    def department(self) -> str:
        return "education"


def create_app(db: Path) -> Starlette:
    _DB["conn"] = sqlite3.connect(f"file:{db}?mode=ro", uri=True, check_same_thread=False)
    graphql: GraphQL[Any, Any] = GraphQL(strawberry.federation.Schema(query=Query, types=[Person]))
    return Starlette(routes=[Route("/graphql", graphql, methods=["POST"])])
