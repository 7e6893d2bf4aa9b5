"""Fuzzing the real app with hypothesis-graphql (fixed seed): valid and invalid documents, zero 5xx,
zero unmasked errors, zero disclosures outside policy (checked against table b, not against the planner)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import CodeType
from typing import Any

import graphql
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.strategies._internal import core as hypothesis_core
from hypothesis_graphql import Mode, queries

from hub.app import create_app
from hub.demo.generate import GenerateResult
from hub.schema import build_schema, catalog_of
from tests.conftest import make_settings, serve, working_clock
from tests.policy.expected import EXPECTED

SCHEMA = build_schema()
CATALOG = catalog_of(SCHEMA)
CONSUMER, PURPOSE = "civil_affairs", "CASE"
GRANTED = EXPECTED[(CONSUMER, PURPOSE)]
KNOWN_CODES = {
    "POLICY_DENIED",
    "GRAPHQL_VALIDATION_FAILED",
    "GRAPHQL_PARSE_FAILED",
    "BAD_ID_NUMBER",
    "BAD_ARGUMENT",
    "BATCH_TOO_LARGE",
    "MAX_TOKENS_LIMIT",
    "MAX_DEPTH_LIMIT",
    "MAX_ALIASES_LIMIT",
    "MAX_ROOT_FIELDS_LIMIT",
    "MAX_DIRECTIVES_LIMIT",
    "MAX_COST_LIMIT",
    "AUTHORIZATION_REQUIRED",
    "BAD_REQUEST",
    "GRAPHQL_ERROR",
}
SCALARS = {
    "Date": st.dates().map(lambda d: graphql.StringValueNode(value=d.isoformat())),
    "DateTime": st.datetimes().map(lambda d: graphql.StringValueNode(value=d.isoformat())),
}


def _check_composites_once_per_code() -> None:
    """hypothesis-graphql 0.13 defines an ``@st.composite`` function each time it draws a field's arguments, and
    hypothesis checks each such function uses its ``draw`` by reading its source (``inspect.getsource``,
    ``ast.parse``): about a tenth of this file's time, the same answer every time. Asked once per code object."""
    check = getattr(hypothesis_core, "is_first_param_referenced_in_function", None)
    if check is None or hasattr(check, "answers"):
        return
    answers: dict[CodeType, bool] = {}

    def once_per_code(f: Any) -> bool:
        code = getattr(f, "__code__", None)
        if code is None:
            return bool(check(f))
        if code not in answers:
            answers[code] = bool(check(f))
        return answers[code]

    once_per_code.answers = answers  # type: ignore[attr-defined]
    hypothesis_core.is_first_param_referenced_in_function = once_per_code


_check_composites_once_per_code()


def fuzz(n: int) -> settings:
    return settings(
        max_examples=n, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck), database=None
    )


STATS = {"positive": 0, "granted": 0, "negative": 0, "executed": 0}


def granted_sdl() -> str:
    """The schema pruned to what (civil_affairs, CASE) may see, so valid examples reach execution."""
    types = SCHEMA._schema.type_map
    keep: dict[str, set[str]] = {"Query": {"person", "household"}}
    for name, t in types.items():
        if isinstance(t, graphql.GraphQLObjectType) and name not in ("Query", "Mutation") and not name.startswith("__"):
            keep[name] = {
                f
                for f, fd in t.fields.items()
                if f"{name}.{f}" in GRANTED
                or (
                    f"{name}.{f}" not in CATALOG
                    and isinstance(graphql.get_named_type(fd.type), graphql.GraphQLObjectType)
                )
            }
    changed = True
    while changed:  # drop fields leading to types with nothing left
        changed = False
        for name, fields in keep.items():
            for f in list(fields):
                target = graphql.get_named_type(types[name].fields[f].type)
                if isinstance(target, graphql.GraphQLObjectType) and not keep.get(target.name):
                    fields.discard(f)
                    changed = True
    doc = graphql.parse(SCHEMA.as_str())
    defs: list[graphql.DefinitionNode] = []
    for d in doc.definitions:
        if isinstance(d, graphql.ObjectTypeDefinitionNode):
            fields = tuple(f for f in d.fields or () if f.name.value in keep.get(d.name.value, set()))
            if fields:
                defs.append(
                    graphql.ObjectTypeDefinitionNode(
                        name=d.name, fields=fields, directives=d.directives, interfaces=d.interfaces
                    )
                )
        elif not isinstance(d, graphql.SchemaDefinitionNode):
            defs.append(d)
    return graphql.print_schema(graphql.build_ast_schema(graphql.DocumentNode(definitions=tuple(defs))))


@pytest.fixture(scope="module")
def client(dept_data: tuple[Path, GenerateResult], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    root = tmp_path_factory.mktemp("fuzz")
    (root / "departments").symlink_to(dept_data[0] / "departments")
    app = create_app(make_settings(root), sign_interval=3600, clock=working_clock())
    _, secret = app.state.hub.clients.add("fuzz", CONSUMER, "3301", [PURPOSE])
    with serve(app) as base_url, httpx.Client(base_url=base_url, timeout=30) as tc:
        token = tc.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=("fuzz", secret)).json()
        tc.headers.update(
            {
                "authorization": f"Bearer {token['access_token']}",
                "x-hub-purpose": PURPOSE,
                "x-hub-case": "FUZZ-1",
                "x-hub-officer": "fuzzer",
            }
        )
        yield tc
    print(f"\nfuzz examples: {STATS}")


def coordinates(query: str) -> set[str]:
    """Every field coordinate a document selects, by graphql-core's own TypeInfo (independent of the planner)."""
    try:
        doc = graphql.parse(query)
    except graphql.GraphQLError:
        return set()
    found: set[str] = set()
    info = graphql.TypeInfo(SCHEMA._schema)

    class Visitor(graphql.Visitor):
        def enter_field(self, node: graphql.FieldNode, *_: Any) -> None:
            parent = info.get_parent_type()
            if parent is not None:
                found.add(f"{parent.name}.{node.name.value}")

    graphql.visit(doc, graphql.TypeInfoVisitor(info, Visitor()))
    return found


def check(client: Any, query: str) -> dict[str, Any]:
    r = client.post("/graphql", json={"query": query})
    assert r.status_code < 500, (query, r.text)
    body: dict[str, Any] = r.json()
    for err in body.get("errors", []):
        code = err.get("extensions", {}).get("code")
        assert code in KNOWN_CODES, (query, err)
        assert "Traceback" not in err["message"] and "Unexpected error" not in err["message"], (query, err)
    if body.get("data") is not None:
        STATS["executed"] += 1
        selected = {c for c in coordinates(query) if c in CATALOG}
        outside = {c for c in selected if GRANTED.get(c) != CATALOG[c].form.value}
        assert not outside, (query, outside)
    return body


@fuzz(300)
@given(queries(SCHEMA.as_str(), custom_scalars=SCALARS))
def test_valid_documents_full_schema(client: Any, query: str) -> None:
    STATS["positive"] += 1
    check(client, query)


@fuzz(300)
@given(queries(granted_sdl(), custom_scalars=SCALARS))
def test_valid_documents_within_grants(client: Any, query: str) -> None:
    STATS["granted"] += 1
    check(client, query)


@fuzz(200)
@given(queries(SCHEMA.as_str(), custom_scalars=SCALARS, mode=Mode.NEGATIVE))
def test_invalid_documents(client: Any, query: str) -> None:
    STATS["negative"] += 1
    body = check(client, query)
    assert body.get("errors"), query


@pytest.fixture(scope="module", autouse=True)
def fuzz_reached_execution() -> Iterator[None]:
    """Once the module's tests have run, in whatever order: the fuzzers reached execution, not only validation.
    (Was a test that had to run last; checked at module teardown it holds under ``--reverse`` too.)"""
    yield
    if STATS["positive"] and STATS["granted"]:  # both valid-document fuzzers ran (not deselected)
        assert STATS["executed"] > 50, STATS
