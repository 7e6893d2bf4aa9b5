"""Query limits at the level where they are counted (``check_limits``/``estimate_cost`` on a parsed document).

Gap 4 of issue 19: cost, depth, root fields, aliases and directives are counted through inline fragments and
fragment spreads, and each limit holds at exactly its value and refuses one over
(``test_*_at_limit_and_one_over``).
"""

from __future__ import annotations

from typing import Any

import pytest
from graphql import OperationDefinitionNode, parse

from hub.errors import QueryLimitError
from hub.limits import LIST_ESTIMATE, LIST_FIELDS, Limits, check_limits, estimate_cost

WIDE = Limits(max_depth=100, max_aliases=100, max_root_fields=100, max_directives=100, max_cost=10**6)


def _op(query: str) -> tuple[Any, OperationDefinitionNode]:
    doc = parse(query)
    op = next(d for d in doc.definitions if isinstance(d, OperationDefinitionNode))
    return doc, op


def cost(query: str, variables: dict[str, Any] | None = None) -> int:
    doc, op = _op(query)
    return estimate_cost(doc, op, variables)


def refused(query: str, limits: Limits, variables: dict[str, Any] | None = None) -> tuple[str, str]:
    doc, op = _op(query)
    with pytest.raises(QueryLimitError) as info:
        check_limits(doc, op, limits, variables)
    return info.value.code, info.value.message


def accepted(query: str, limits: Limits, variables: dict[str, Any] | None = None) -> None:
    doc, op = _op(query)
    check_limits(doc, op, limits, variables)


def with_(**kw: int) -> Limits:
    values = {**WIDE.__dict__, **kw}
    return Limits(**values)


def test_defaults_and_constants() -> None:
    assert Limits(1, 2, 3, 4).max_cost == 50_000
    assert LIST_ESTIMATE == 5
    assert LIST_FIELDS == frozenset(
        {"members", "properties", "vehicles", "roles", "entries", "residentAccessReport", "catalog"}
    )


class TestCost:
    def test_fields_cost_one_per_parent_item(self) -> None:
        assert cost("{ a }") == 1
        assert cost("{ a b }") == 2
        assert cost("{ a { b c { d } } }") == 4

    def test_list_argument_multiplies_the_selection_below(self) -> None:
        assert cost('{ people(ids: ["1", "2", "3"]) { name } }') == 1 + 3
        assert cost('{ people(ids: ["1", "2", "3"]) { name sex } }') == 1 + 6
        assert cost('{ people(ids: ["1", "2"], more: ["1", "2", "3"]) { name } }') == 1 + 3  # the longest
        assert cost("{ people(ids: []) { name } }") == 1 + 1  # never below one
        assert cost('{ people(ids: ["1", "2", "3"]) }') == 1  # a leaf is not multiplied
        assert cost('{ people(id: "1") { name } }') == 2

    def test_list_variable_multiplies(self) -> None:
        q = "query($ids: [String!]!) { people(ids: $ids) { name } }"
        assert cost(q, {"ids": ["1", "2", "3", "4"]}) == 1 + 4
        assert cost(q, {"ids": "1"}) == 1 + 1
        assert cost(q, {}) == 1 + 1
        assert cost(q) == 1 + 1

    def test_list_fields_are_estimated(self) -> None:
        assert cost("{ a { members { b c } } }") == 1 + 1 + 2 * LIST_ESTIMATE
        for name in sorted(LIST_FIELDS):
            assert cost(f"{{ {name} {{ b }} }}") == 1 + LIST_ESTIMATE, name
        assert cost('{ people(ids: ["1", "2"]) { members { name } } }') == 1 + 2 + 2 * 5

    def test_through_inline_fragments_and_spreads(self) -> None:
        assert cost("{ a { ... on T { b c } } }") == 3
        assert cost("{ a { ... { ... { b c } } } }") == 3
        assert cost("{ a { ...F } } fragment F on T { b c }") == 3
        assert cost("{ a { ...F } } fragment F on T { b ...G } fragment G on T { c d }") == 4
        assert cost('{ people(ids: ["1", "2"]) { ...F } } fragment F on P { name members { x } }') == 1 + 2 + 2 + 10
        assert cost("{ ... on Query { a b } }") == 2
        assert cost("{ ...Q } fragment Q on Query { a b }") == 2

    def test_cyclic_and_unknown_spreads_terminate(self) -> None:
        assert cost("{ a { ...F } } fragment F on T { b ...F }") == 2
        assert cost("{ a { ...F } } fragment F on T { b ...G } fragment G on T { c ...F }") == 3
        assert cost("{ a { ...Missing } }") == 1
        # the same fragment twice side by side is counted twice (it is resolved twice)
        assert cost("{ a { ...F ...F } } fragment F on T { b }") == 3


def test_cost_at_limit_and_one_over() -> None:
    q = '{ people(ids: ["1", "2"]) { ...F } } fragment F on P { ... { name } }'  # 1 + 2 = 3
    accepted(q, with_(max_cost=3))
    assert refused(q, with_(max_cost=2)) == ("MAX_COST_LIMIT", "the query's estimated cost is 3; the limit is 2")
    v = "query($ids: [String!]!) { people(ids: $ids) { name } }"
    accepted(v, with_(max_cost=4), {"ids": ["1", "2", "3"]})
    assert refused(v, with_(max_cost=3), {"ids": ["1", "2", "3"]}) == (
        "MAX_COST_LIMIT",
        "the query's estimated cost is 4; the limit is 3",
    )


def test_root_fields_at_limit_and_one_over() -> None:
    q = "{ a ... { b } ...F } fragment F on Query { c ... on Query { d } }"  # 4 root fields
    accepted(q, with_(max_root_fields=4))
    assert refused(q, with_(max_root_fields=3)) == (
        "MAX_ROOT_FIELDS_LIMIT",
        "the operation has 4 root fields; the limit is 3",
    )
    # fields below the root do not count; cyclic and unknown spreads end
    accepted("{ a { b c d e } }", with_(max_root_fields=1))
    cyclic = "{ ...F } fragment F on Query { a ...G } fragment G on Query { b ...F }"
    accepted(cyclic, with_(max_root_fields=2))
    assert refused(cyclic, with_(max_root_fields=1))[0] == "MAX_ROOT_FIELDS_LIMIT"
    accepted("{ a ...Missing }", with_(max_root_fields=1))


def test_depth_at_limit_and_one_over() -> None:
    plain = "{ a { b { c } } }"  # 3 levels
    accepted(plain, with_(max_depth=3))
    assert refused(plain, with_(max_depth=2)) == ("MAX_DEPTH_LIMIT", "the query is 3 levels deep; the limit is 2")
    inline = "{ a { ... on T { b { ... { c { d } } } } } }"  # fragments add no level: 4
    accepted(inline, with_(max_depth=4))
    assert refused(inline, with_(max_depth=3)) == ("MAX_DEPTH_LIMIT", "the query is 4 levels deep; the limit is 3")
    spread = "{ a { ...F } } fragment F on T { b { ...G } } fragment G on T { c { d } }"  # 4
    accepted(spread, with_(max_depth=4))
    assert refused(spread, with_(max_depth=3)) == ("MAX_DEPTH_LIMIT", "the query is 4 levels deep; the limit is 3")
    # the deepest branch counts, wherever it is
    accepted("{ a { b } c { d { e } } f }", with_(max_depth=3))
    assert refused("{ a { b } c { d { e } } f }", with_(max_depth=2))[1] == "the query is 3 levels deep; the limit is 2"
    accepted("{ a }", with_(max_depth=1))


def test_depth_skips_introspection_and_ends_cycles() -> None:
    accepted('{ a { __type(name: "T") { fields { type { name } } } } }', with_(max_depth=2))
    accepted("{ __schema { types { fields { name } } } }", with_(max_depth=1))
    cyclic = "{ a { ...F } } fragment F on T { b { c } ...F }"
    accepted(cyclic, with_(max_depth=3))
    assert refused(cyclic, with_(max_depth=2))[0] == "MAX_DEPTH_LIMIT"
    accepted("{ a { ...Missing } }", with_(max_depth=2))


def test_aliases_at_limit_and_one_over() -> None:
    q = "{ x: a { ... { y: b } ...F } } fragment F on T { z: c d }"  # 3 aliases
    accepted(q, with_(max_aliases=3))
    assert refused(q, with_(max_aliases=2)) == ("MAX_ALIASES_LIMIT", "the query uses 3 aliases; the limit is 2")
    accepted("{ a b { c } }", with_(max_aliases=0))


def test_directives_at_limit_and_one_over() -> None:
    q = (
        "query($t: Boolean = true) @op { a @include(if: $t) { ... on T @skip(if: false) { b } "
        "...F @include(if: true) } } fragment F on T { c @skip(if: false) }"
    )  # operation 1, field 1, inline fragment 1, spread 1, inside the fragment 1: 5
    accepted(q, with_(max_directives=5))
    assert refused(q, with_(max_directives=4)) == (
        "MAX_DIRECTIVES_LIMIT",
        "the query uses 5 directives; the limit is 4",
    )
    only_operation = "query @a @b { x }"
    accepted(only_operation, with_(max_directives=2))
    assert refused(only_operation, with_(max_directives=1)) == (
        "MAX_DIRECTIVES_LIMIT",
        "the query uses 2 directives; the limit is 1",
    )
    accepted("{ x { y } }", with_(max_directives=0))


def test_limits_are_checked_in_a_fixed_order() -> None:
    """Roots, then depth, then aliases, then directives, then cost: the first exceeded is reported."""
    q = "{ a: x { b: y { c: z @s } } d: w @t }"  # 2 roots, depth 3, 4 aliases, 2 directives, cost 4
    tight = Limits(max_depth=2, max_aliases=3, max_root_fields=1, max_directives=1, max_cost=3)
    assert refused(q, tight)[0] == "MAX_ROOT_FIELDS_LIMIT"
    assert refused(q, with_(max_depth=2, max_aliases=3, max_directives=1, max_cost=3))[0] == "MAX_DEPTH_LIMIT"
    assert refused(q, with_(max_aliases=3, max_directives=1, max_cost=3))[0] == "MAX_ALIASES_LIMIT"
    assert refused(q, with_(max_directives=1, max_cost=3))[0] == "MAX_DIRECTIVES_LIMIT"
    assert refused(q, with_(max_cost=3))[0] == "MAX_COST_LIMIT"
    accepted(q, Limits(max_depth=3, max_aliases=4, max_root_fields=2, max_directives=2, max_cost=4))
