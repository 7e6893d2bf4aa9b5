"""The demo department subgraphs compose into one supergraph (Apollo Federation 2, as Apollo's and Hive's
gateways compose them in bench/peer.py): a field that several departments' subgraphs resolve, outside the entities'
own fields, must be ``@shareable`` in each, or composition fails (it did, once every department served the change
feed: "Non-shareable field "Query.changeEvents" is resolved from multiple subgraphs")."""

from __future__ import annotations

from graphql import ObjectTypeDefinitionNode, parse
from sqlalchemy import create_engine

from hub.demo.subgraph import build_schema
from hub.departments import OUTBOXES


def value_fields(sdl: str) -> dict[tuple[str, str], bool]:
    """(type, field) -> shareable, for the object types that are not entities (no ``@key``)."""
    out: dict[tuple[str, str], bool] = {}
    for d in parse(sdl).definitions:
        if not isinstance(d, ObjectTypeDefinitionNode):
            continue
        directives = {x.name.value for x in d.directives or ()}
        if "key" in directives or d.name.value.startswith("_"):
            continue  # entities, and federation's own _Service
        for f in d.fields or ():
            if f.name.value.startswith("_"):
                continue  # _entities, _service: federation's own, never composed
            shareable = "shareable" in directives or "shareable" in {x.name.value for x in f.directives or ()}
            out[(d.name.value, f.name.value)] = shareable
    return out


def test_fields_resolved_by_several_department_subgraphs_are_shareable() -> None:
    engine = create_engine("sqlite://")
    sdls = {code: build_schema(code, engine).as_str() for code in ("public_security", "civil_affairs")}
    assert all(code in OUTBOXES for code in sdls)  # both serve the change feed
    a, b = (value_fields(sdl) for sdl in sdls.values())
    shared = sorted(set(a) & set(b))
    assert ("Query", "changeEvents") in shared and ("Query", "department") in shared
    assert ("ChangeEvent", "seq") in shared
    assert [c for c in shared if not (a[c] and b[c])] == []
    assert "changeEvents(after: Int!, first: Int!): [ChangeEvent!]! @inaccessible" in sdls["civil_affairs"]
