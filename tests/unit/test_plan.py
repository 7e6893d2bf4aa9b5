"""The planner at the level where it decides (``plan_operation`` on a parsed document), with exact denials.

Gap 1 of issue 19: every way of reaching a field — inline fragments with and without a type condition, nested
inline fragments, named fragment spreads (nested, cyclic), fragments on an interface, aliases, ``@include`` and
``@skip`` with variables — must name ``Person.idNumber`` for a consumer granted only the mask
(``test_every_path_to_a_field_is_planned``; the exact query of the issue is ``test_issue_query_on_the_real_schema``).
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest
from graphql import OperationDefinitionNode, build_schema, parse

from hub.auth.actor import Actor
from hub.policy.engine import compile_table
from hub.policy.loader import CatalogEntry
from hub.policy.model import Decision, Form, Grant, PolicySet, Scope
from hub.policy.plan import META_COORDINATES, ROLE_COORDINATES, Plan, plan_operation

SDL = """
interface Named { nameMasked: String }
union Thing = Person | Household
type Query {
  person(idNumber: String!): Person
  people(idNumbers: [String!]!): [Person!]!
  named(id: String!): Named
  thing(id: String!): Thing
  catalog: [Entry!]!
  auditEntries: [Entry!]!
  version: String
}
type Mutation { recordAuthorization(id: String!): Entry }
type Person implements Named {
  idNumber: String
  nameMasked: String
  name: String
  household: Household
  medical: MedicalRecord
}
type Household { addressMasked: String address: String size: Int }
type MedicalRecord { atLeast(threshold: Int!): Boolean band: String chronic: Boolean }
type Entry { coordinate: String }
"""
SCHEMA = build_schema(SDL)
FORMS = {
    "Person.idNumber": Form.RAW,
    "Person.nameMasked": Form.MASKED,
    "Person.name": Form.RAW,
    "Household.addressMasked": Form.MASKED,
    "Household.address": Form.RAW,
    "MedicalRecord.atLeast": Form.PREDICATE,
    "MedicalRecord.band": Form.BAND,
    "MedicalRecord.chronic": Form.PREDICATE,
}
CATALOG = {c: CatalogEntry(c, "x", f, "") for c, f in FORMS.items()}
TODAY = date(2026, 6, 1)
FROM, TO = date(2026, 1, 1), date(2026, 12, 31)


def _policy() -> PolicySet:
    masks = {
        "Person.nameMasked": Form.MASKED,
        "Household.addressMasked": Form.MASKED,
        "MedicalRecord.atLeast": Form.PREDICATE,
        "MedicalRecord.chronic": Form.PREDICATE,
    }
    grants = [
        Grant("mask", "x", ("medical_security",), ("REF",), masks, Scope.JURISDICTION, FROM, TO, "b", "x.toml"),
        Grant(
            "band",
            "x",
            ("medical_security",),
            ("REF",),
            {"MedicalRecord.band": Form.BAND},
            Scope.ALL,
            FROM,
            TO,
            "b",
            "x.toml",
        ),
    ]
    p = PolicySet(purposes={}, grants=grants)
    compile_table(p)
    return p


POLICY = _policy()
ACTOR = Actor("med", "medical_security", "330113", ("REF",))
OFFICER = Actor("aud", "audit_office", "33", ("AUDIT",), roles=("officer", "authorization_clerk"))


def plan(query: str, variables: dict[str, Any] | None = None, actor: Actor = ACTOR, purpose: str = "REF") -> Plan:
    doc = parse(query)
    op = next(d for d in doc.definitions if isinstance(d, OperationDefinitionNode))
    return plan_operation(SCHEMA, doc, op, CATALOG, POLICY, actor, purpose, TODAY, variables)


def no_grant(coordinate: str) -> Decision:
    return Decision(False, coordinate, f"no grant of {coordinate} to medical_security for purpose REF")


P = "{ person(idNumber: $id) { nameMasked "  # a granted field first, then the way to the ID number
LEAKS = {
    "alias": P + "secret: idNumber } }",
    "inline-fragment-typed": P + "... on Person { idNumber } } }",
    "inline-fragment-untyped": P + "... { idNumber } } }",
    "inline-fragment-nested": P + "... on Person { ... { ... on Person { idNumber } } } } }",
    "inline-fragment-included": P + "... on Person @include(if: $yes) { idNumber } } }",
    "inline-fragment-skipped": P + "... on Person @skip(if: $yes) { idNumber } } }",
    "inline-fragment-on-interface": P + "... on Named { ... on Person { idNumber } } } }",
    "spread": P + "...F } } fragment F on Person { idNumber }",
    "spread-nested": "{ person(idNumber: $id) { ...A } } fragment A on Person { nameMasked ...B } "
    "fragment B on Person { idNumber }",
    "spread-in-inline": P + "... on Person { ...F } } } fragment F on Person { idNumber }",
    "inline-in-spread": "{ person(idNumber: $id) { ...F } } "
    "fragment F on Person { nameMasked ... on Person { idNumber } }",
    "spread-on-interface": P + "...N } } fragment N on Named { ... on Person { idNumber } }",
    "spread-cyclic": P + "...A } } fragment A on Person { ...B } fragment B on Person { idNumber ...A }",
    "field-included": P + "idNumber @include(if: $no) } }",
    "field-skipped": P + "idNumber @skip(if: $yes) } }",
    "list-root": "{ people(idNumbers: [$id]) { nameMasked ... on Person { idNumber } } }",
    "root-inline": "{ ... on Query { person(idNumber: $id) { nameMasked idNumber } } }",
    "root-spread": "{ ...Q } fragment Q on Query { person(idNumber: $id) { nameMasked idNumber } }",
}


def _with_vars(q: str) -> str:
    head = "query($id: String!, $yes: Boolean = true, $no: Boolean = false)"
    return head + " " + q


@pytest.mark.parametrize("query", LEAKS.values(), ids=LEAKS.keys())
def test_every_path_to_a_field_is_planned(query: str) -> None:
    """Gap 1: the ID number reached any way is denied, by name; without it the same shape is allowed."""
    p = plan(_with_vars(query), {"id": "x", "yes": True, "no": False})
    assert p.denials == [no_grant("Person.idNumber")]
    assert not p.allowed
    assert p.disclosures == {"Person.nameMasked": Form.MASKED}
    clean = plan(
        _with_vars(
            query.replace("secret: idNumber", "")
            .replace("idNumber @", "nameMasked @")
            .replace("{ idNumber }", "{ nameMasked }")
            .replace(" idNumber ", " nameMasked ")
        )
    )
    assert clean.denials == [] and clean.allowed
    assert clean.disclosures == {"Person.nameMasked": Form.MASKED}
    assert clean.grants == {"mask"} and clean.scope is Scope.JURISDICTION


def test_deeper_fields_through_fragments() -> None:
    q = """{ person(idNumber: "x") { household { addressMasked ... on Household { address } }
           medical { ...M } } } fragment M on MedicalRecord { band ... { atLeast(threshold: 5) } }"""
    p = plan(q)
    assert p.denials == [no_grant("Household.address")]
    assert p.disclosures == {
        "Household.addressMasked": Form.MASKED,
        "MedicalRecord.band": Form.BAND,
        "MedicalRecord.atLeast": Form.PREDICATE,
    }
    assert p.grants == {"mask", "band"}
    assert p.predicate_args == {"MedicalRecord.atLeast": {"threshold": 5}}


def test_every_denied_coordinate_listed_once_in_order() -> None:
    q = '{ person(idNumber: "x") { name idNumber a: name household { address } b: idNumber ... { name } } }'
    assert plan(q).denials == [no_grant("Person.name"), no_grant("Person.idNumber"), no_grant("Household.address")]


def test_inline_fragment_counts_as_data() -> None:
    """A selection made only through fragments is a data selection: nothing is refused for being empty."""
    for q in (
        '{ person(idNumber: "x") { ... on Person { nameMasked } } }',
        '{ person(idNumber: "x") { ... { nameMasked } } }',
        '{ person(idNumber: "x") { ...F } } fragment F on Person { nameMasked }',
        '{ person(idNumber: "x") { ... on Named { nameMasked } } }',
        '{ person(idNumber: "x") { ...N } } fragment N on Named { nameMasked }',
        '{ person(idNumber: "x") { household { ... on Household { addressMasked } } } }',
    ):
        p = plan(q)
        assert p.denials == [], q
        assert len(p.disclosures) == 1, q


def test_fragment_type_condition_is_followed() -> None:
    """Unvalidated input: a fragment on another object type is planned against that type, not the parent."""
    p = plan('{ person(idNumber: "x") { nameMasked ... on Household { address } } }')
    assert p.denials == [no_grant("Household.address")]
    p = plan('{ person(idNumber: "x") { nameMasked ...H } } fragment H on Household { address }')
    assert p.denials == [no_grant("Household.address")]
    # a condition naming no type falls back to the parent
    p = plan('{ person(idNumber: "x") { ... on Nowhere { idNumber } ...N } } fragment N on Nowhere { nameMasked }')
    assert p.denials == [no_grant("Person.idNumber")]


def test_unknown_fragment_is_skipped() -> None:
    """Validation refuses an unknown fragment; the planner alone must not fail on one."""
    p = plan('{ person(idNumber: "x") { nameMasked ...Missing } }')
    assert p.denials == [] and p.disclosures == {"Person.nameMasked": Form.MASKED}


def test_data_fields_are_counted_not_cancelled() -> None:
    """A leaf beside an object field is two data selections: neither cancels the other."""
    p = plan('{ person(idNumber: "x") { nameMasked household { addressMasked } } }')
    assert p.denials == [] and len(p.disclosures) == 2
    p = plan('{ person(idNumber: "x") { household { addressMasked } medical { band } } }')
    assert p.denials == [] and len(p.disclosures) == 2


def test_fields_that_select_nothing_count_as_nothing() -> None:
    """An unknown field, a field without a form and an introspection field are no data: the parents are refused too."""
    empty = "selects no data field; add at least one granted field beneath it"
    assert plan('{ person(idNumber: "x") { nope } }').denials == [
        Decision(False, "Person.nope", "no such field"),
        Decision(False, "Query.person", empty),
    ]
    assert plan('{ person(idNumber: "x") { household { size } } }').denials == [
        Decision(False, "Household.size", "field declares no disclosure form"),
        Decision(False, "Person.household", empty),
        Decision(False, "Query.person", empty),
    ]
    assert plan('{ person(idNumber: "x") { __schema { queryType { name } } } }').denials == [
        Decision(False, "Query.person", empty)
    ]


def test_typename_only_selects_no_data() -> None:
    reason = "selects no data field; add at least one granted field beneath it"
    assert plan('{ person(idNumber: "x") { __typename } }').denials == [Decision(False, "Query.person", reason)]
    p = plan('{ person(idNumber: "x") { nameMasked household { __typename ... { __typename } } } }')
    assert p.denials == [Decision(False, "Person.household", reason)]
    p = plan('{ person(idNumber: "x") { ...F } } fragment F on Person { __typename }')
    assert p.denials == [Decision(False, "Query.person", reason)]
    # a denied data field still counts as data: the denial names the field, not its parent
    assert plan('{ person(idNumber: "x") { idNumber } }').denials == [no_grant("Person.idNumber")]


def test_typename_and_introspection_at_the_root() -> None:
    p = plan("{ __typename }")
    assert p.denials == [] and p.disclosures == {} and p.scope is Scope.ALL
    p = plan('{ __type(name: "Person") { name } __schema { queryType { name } } }')
    assert p.denials == [] and p.disclosures == {}


def test_unknown_field_and_field_without_form() -> None:
    p = plan('{ person(idNumber: "x") { nameMasked nope } version }')
    assert p.denials == [
        Decision(False, "Person.nope", "no such field"),
        Decision(False, "Query.version", "field declares no disclosure form"),
    ]
    p = plan('{ person(idNumber: "x") { household { size addressMasked } } }')
    assert p.denials == [Decision(False, "Household.size", "field declares no disclosure form")]


def test_abstract_types_are_refused_whole() -> None:
    """An interface or union result declares no form: fail closed rather than guess the runtime type."""
    p = plan('{ named(id: "x") { nameMasked ... on Person { nameMasked } } }')
    assert p.denials == [Decision(False, "Query.named", "field declares no disclosure form")]
    p = plan('{ thing(id: "x") { ... on Person { nameMasked } } }')
    assert p.denials == [Decision(False, "Query.thing", "field declares no disclosure form")]


def test_metadata_is_open_and_unchecked_beneath() -> None:
    assert META_COORDINATES == frozenset({"Query.catalog"})
    p = plan("{ catalog { coordinate } }")
    assert p.denials == [] and p.disclosures == {} and p.grants == set() and p.scope is Scope.ALL


def test_role_coordinates() -> None:
    assert ROLE_COORDINATES == {
        "Mutation.recordAuthorization": "authorization_clerk",
        "Mutation.revokeAuthorization": "authorization_clerk",
        "Query.auditEntries": "officer",
        "Query.residentAccessReport": "officer",
        "Query.auditTreeHead": "officer",
        "Query.auditInclusionProof": "officer",
        "Query.auditConsistencyProof": "officer",
        "Query.alerts": "caseworker",
        "Mutation.assignAlert": "caseworker",
        "Mutation.recordVisit": "caseworker",
        "Mutation.closeAlert": "caseworker",
        "Subscription.alertCreated": "caseworker",
    }
    p = plan("{ auditEntries { coordinate } }")
    assert p.denials == [Decision(False, "Query.auditEntries", "requires the officer role")]
    p = plan('mutation { recordAuthorization(id: "h") { coordinate } }')
    assert p.denials == [Decision(False, "Mutation.recordAuthorization", "requires the authorization_clerk role")]
    # with the role: allowed, and nothing beneath is looked up (the hub's own records)
    p = plan("{ auditEntries { coordinate } }", actor=OFFICER, purpose="AUDIT")
    assert p.denials == [] and p.disclosures == {}
    p = plan('mutation { recordAuthorization(id: "h") { coordinate } }', actor=OFFICER, purpose="VER")
    assert p.denials == [] and p.disclosures == {}
    # the role alone is not enough: each role's coordinates need their purpose too
    p = plan('mutation { recordAuthorization(id: "h") { coordinate } }', actor=OFFICER, purpose="AUDIT")
    assert p.denials == [Decision(False, "Mutation.recordAuthorization", "requires purpose VER")]
    # a role does not open resident data
    p = plan('{ person(idNumber: "x") { nameMasked } }', actor=OFFICER, purpose="AUDIT")
    assert p.denials == [
        Decision(False, "Person.nameMasked", "no grant of Person.nameMasked to audit_office for purpose AUDIT")
    ]


def test_unsupported_operation_type() -> None:
    p = plan("subscription { person { nameMasked } }")
    assert p.denials == [Decision(False, "subscription", "operation type not supported")]
    assert p.disclosures == {}


def test_scope_all_only_when_every_grant_is_all() -> None:
    p = plan('{ person(idNumber: "x") { medical { band } } }')
    assert p.denials == [] and p.grants == {"band"} and p.scope is Scope.ALL
    p = plan('{ person(idNumber: "x") { nameMasked medical { band } } }')
    assert p.grants == {"mask", "band"} and p.scope is Scope.JURISDICTION


def test_plan_defaults() -> None:
    p = Plan()
    assert p.allowed and p.denials == [] and p.disclosures == {} and p.grants == set()
    assert p.scope is Scope.ALL and p.predicate_args == {}


def test_grant_validity_reaches_the_plan() -> None:
    doc = parse('{ person(idNumber: "x") { nameMasked } }')
    op = doc.definitions[0]
    assert isinstance(op, OperationDefinitionNode)
    for day, allowed in ((FROM, True), (TO, True), (date(2025, 12, 31), False), (date(2027, 1, 1), False)):
        p = plan_operation(SCHEMA, doc, op, CATALOG, POLICY, ACTOR, "REF", day)
        assert p.allowed is allowed, day


class TestPredicateThresholds:
    def test_one_threshold_recorded(self) -> None:
        p = plan('{ person(idNumber: "x") { medical { atLeast(threshold: 20000) } } }')
        assert p.denials == [] and p.predicate_args == {"MedicalRecord.atLeast": {"threshold": 20000}}

    def test_predicate_without_arguments_records_none(self) -> None:
        p = plan('{ person(idNumber: "x") { medical { chronic band } } }')
        assert p.denials == [] and p.predicate_args == {}
        assert p.disclosures == {"MedicalRecord.chronic": Form.PREDICATE, "MedicalRecord.band": Form.BAND}

    def test_from_a_variable(self) -> None:
        q = 'query($t: Int!) { person(idNumber: "x") { medical { atLeast(threshold: $t) } } }'
        assert plan(q, {"t": 7}).predicate_args == {"MedicalRecord.atLeast": {"threshold": 7}}

    def test_same_threshold_twice_is_one(self) -> None:
        q = 'query($t: Int!) { person(idNumber: "x") { medical { a: atLeast(threshold: 5) '
        q += "b: atLeast(threshold: $t) } } }"
        p = plan(q, {"t": 5})
        assert p.denials == [] and p.predicate_args == {"MedicalRecord.atLeast": {"threshold": 5}}

    def test_two_thresholds_refused(self) -> None:
        reason = "a predicate may be asked with one threshold per request, not {}"
        q = '{ person(idNumber: "x") { medical { a: atLeast(threshold: 5) b: atLeast(threshold: 6) } } }'
        p = plan(q)
        assert p.denials == [Decision(False, "MedicalRecord.atLeast", reason.format(2))]
        assert p.disclosures == {"MedicalRecord.atLeast": Form.PREDICATE}  # the first was granted
        # through a fragment, and a third one: still one denial for the coordinate
        q = """{ person(idNumber: "x") { medical { a: atLeast(threshold: 5) ...M ... { c: atLeast(threshold: 7) } } } }
               fragment M on MedicalRecord { b: atLeast(threshold: 6) }"""
        assert plan(q).denials == [Decision(False, "MedicalRecord.atLeast", reason.format(2))]

    def test_refused_threshold_still_counts_as_data(self) -> None:
        q = '{ person(idNumber: "x") { medical { a: atLeast(threshold: 5) b: atLeast(threshold: 6) } } }'
        assert [d.coordinate for d in plan(q).denials] == ["MedicalRecord.atLeast"]
        q = '{ person(idNumber: "x") { medical { b: atLeast(threshold: 6) } medical { a: atLeast(threshold: 5) } } }'
        assert [d.coordinate for d in plan(q).denials] == ["MedicalRecord.atLeast"]


def test_issue_query_on_the_real_schema() -> None:
    """Gap 1, the exact query of issue 19, planned against the real schema and the shipped policies."""
    from hub.departments import DEPARTMENTS
    from hub.policy.loader import load_policies
    from hub.schema import build_schema as build_hub_schema
    from hub.schema import catalog_of
    from tests.conftest import POLICIES

    schema = build_hub_schema()
    catalog = catalog_of(schema)
    policy = load_policies(POLICIES, DEPARTMENTS, catalog, TODAY)
    actor = Actor("linping-med", "medical_security", "330113", ("REF",))
    for q in (
        "query($id: String!) { person(idNumber: $id) { nameMasked ... on Person { idNumber } } }",
        "query($id: String!) { person(idNumber: $id) { nameMasked ...F } } fragment F on Person { idNumber }",
    ):
        doc = parse(q)
        op = doc.definitions[0]
        assert isinstance(op, OperationDefinitionNode)
        p = plan_operation(schema._schema, doc, op, catalog, policy, actor, "REF", TODAY, {"id": "x"})
        assert p.denials == [no_grant("Person.idNumber")]
        assert p.disclosures == {"Person.nameMasked": Form.MASKED}


# -- thresholds fixed by the grant (issue 11 part 2): a predicate answers only the law's own figures ----------------
def _threshold_setup() -> tuple[dict[str, CatalogEntry], PolicySet]:
    catalog = dict(CATALOG)
    catalog["MedicalRecord.atLeast"] = CatalogEntry("MedicalRecord.atLeast", "x", Form.PREDICATE, "", ("threshold",))
    grants = [
        Grant(
            "fixed",
            "x",
            ("medical_security",),
            ("REF",),
            {"MedicalRecord.atLeast": Form.PREDICATE},
            Scope.JURISDICTION,
            FROM,
            TO,
            "b",
            "x.toml",
            {"MedicalRecord.atLeast": (20000, 5000)},
        ),
        Grant(  # a second current grant adds its figures; an expired one adds none
            "more",
            "x",
            ("medical_security",),
            ("REF",),
            {"MedicalRecord.atLeast": Form.PREDICATE},
            Scope.JURISDICTION,
            FROM,
            TO,
            "b",
            "x.toml",
            {"MedicalRecord.atLeast": (1300,)},
        ),
        Grant(
            "old",
            "x",
            ("medical_security",),
            ("REF",),
            {"MedicalRecord.atLeast": Form.PREDICATE},
            Scope.JURISDICTION,
            date(2020, 1, 1),
            date(2020, 12, 31),
            "b",
            "x.toml",
            {"MedicalRecord.atLeast": (7,)},
        ),
    ]
    p = PolicySet(purposes={}, grants=grants)
    compile_table(p)
    return catalog, p


def plan_fixed(query: str, variables: dict[str, Any] | None = None) -> Plan:
    catalog, policy = _threshold_setup()
    doc = parse(query)
    op = next(d for d in doc.definitions if isinstance(d, OperationDefinitionNode))
    return plan_operation(SCHEMA, doc, op, catalog, policy, ACTOR, "REF", TODAY, variables)


ASK_T = 'query($t: Int) { person(idNumber: "x") { medical { atLeast(threshold: $t) } } }'


@pytest.mark.parametrize("t", [1300, 5000, 20000])
def test_listed_thresholds_answer(t: int) -> None:
    p = plan_fixed(ASK_T, {"t": t})
    assert p.denials == [] and p.disclosures == {"MedicalRecord.atLeast": Form.PREDICATE}
    assert p.predicate_args == {"MedicalRecord.atLeast": {"threshold": t}}


@pytest.mark.parametrize(
    ("t", "shown"),
    [
        (20001, "20,001"),
        (19999, "19,999"),
        (7, "7"),  # listed only by a grant that is no longer valid
        (0, "0"),
        (-20000, "-20,000"),
        (True, "(not a number)"),  # a bool is not the integer 1
        (None, "(not a number)"),  # a variable given no value
        ("20000", "(not a number)"),
    ],
)
def test_other_thresholds_are_refused_by_name(t: object, shown: str) -> None:
    p = plan_fixed(ASK_T, {"t": t})
    assert p.denials == [
        Decision(
            False,
            "MedicalRecord.atLeast",
            f"threshold {shown} is not one the grant allows for MedicalRecord.atLeast (allowed: 1,300, 5,000, 20,000)",
        )
    ]
    assert p.disclosures == {}


def test_a_default_is_the_threshold_asked() -> None:
    q = 'query($t: Int = 23000) { person(idNumber: "x") { medical { atLeast(threshold: $t) } } }'
    [d] = plan_fixed(q, {}).denials
    assert d.reason.startswith("threshold 23,000 is not one")
    assert plan_fixed(q, {"t": 20000}).denials == []


def test_no_list_means_none_allowed() -> None:
    catalog, _ = _threshold_setup()
    policy = _policy()  # the predicate is granted, but no grant lists a threshold for it
    doc = parse('{ person(idNumber: "x") { medical { atLeast(threshold: 20000) } } }')
    op = next(d for d in doc.definitions if isinstance(d, OperationDefinitionNode))
    p = plan_operation(SCHEMA, doc, op, catalog, policy, ACTOR, "REF", TODAY, None)
    assert p.denials == [
        Decision(
            False,
            "MedicalRecord.atLeast",
            "threshold 20,000 is not one the grant allows for MedicalRecord.atLeast (allowed: none)",
        )
    ]


def test_officer_needs_the_audit_purpose() -> None:
    p = plan("{ auditEntries { coordinate } }", actor=OFFICER, purpose="VER")
    assert p.denials == [Decision(False, "Query.auditEntries", "requires purpose AUDIT")]


def test_a_variable_given_no_value_is_recorded_as_none() -> None:
    """graphql-core's ``Undefined`` must never reach the plan (the audit entry is built from it)."""
    q = 'query($t: Int) { person(idNumber: "x") { medical { atLeast(threshold: $t) } } }'
    for p in (plan(q, {}), plan_fixed(q, {})):
        # `is None`, and JSON: graphql-core's Undefined compares equal to None, but cannot be encoded
        assert p.predicate_args["MedicalRecord.atLeast"]["threshold"] is None
        assert json.dumps(p.predicate_args) == '{"MedicalRecord.atLeast": {"threshold": null}}'
