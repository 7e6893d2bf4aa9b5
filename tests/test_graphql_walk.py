"""The one walker over a document's selections (hub/graphql_walk.py)."""

from __future__ import annotations

from graphql import FieldNode, OperationDefinitionNode, build_schema, parse

from hub.graphql_walk import Walker, fragments_of, with_defaults

SCHEMA = build_schema(
    """
    interface Named { name: String }
    type Person implements Named { name: String, age: Int }
    type Dog implements Named { name: String, bark: String }
    union Thing = Person | Dog
    type Query { person: Person, thing: Thing }
    """
)


def op(doc: object) -> OperationDefinitionNode:
    return next(d for d in doc.definitions if isinstance(d, OperationDefinitionNode))  # type: ignore[attr-defined]


def names(walker: Walker, doc: object) -> list[str]:
    return [r.node.name.value for r in walker.fields(op(doc).selection_set) if isinstance(r.node, FieldNode)]


def test_fragments_skip_include_and_cycles() -> None:
    doc = parse(
        "query($no: Boolean = false) { a ...F ... { b @skip(if: true) } c @include(if: $no) d: person { age } }"
        " fragment F on Query { e ...F }"
    )
    assert fragments_of(doc) is fragments_of(doc)  # built once per document
    assert names(Walker.of(doc), doc) == ["a", "e", "b", "c", "person"]  # every branch; F is not entered twice
    values = with_defaults(op(doc), None)
    assert values == {"no": False}
    assert names(Walker.of(doc, values), doc) == ["a", "e", "person"]
    assert Walker.of(doc, values).response_keys(op(doc).selection_set)["d"][0].name.value == "person"


def test_parent_types_and_possible_fragments() -> None:
    doc = parse("{ thing { ... on Person { age } ... on Dog { bark } ... on Named { name } } }")
    thing = op(doc).selection_set.selections[0]
    assert isinstance(thing, FieldNode) and thing.selection_set is not None
    person, dog = SCHEMA.get_type("Person"), SCHEMA.get_type("Dog")
    every = Walker.of(doc, schema=SCHEMA)
    assert [(r.node.name.value, r.parent.name) for r in every.fields(thing.selection_set, dog)] == [  # type: ignore[union-attr]
        ("age", "Person"),
        ("bark", "Dog"),
        ("name", "Dog"),
    ]
    possible = Walker.of(doc, schema=SCHEMA, possible_only=True)
    assert list(possible.response_keys(thing.selection_set, person)) == ["age", "name"]  # type: ignore[arg-type]
