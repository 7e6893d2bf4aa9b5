"""Policy decisions at the level where they are made (``evaluate`` over a hand-built policy): validity on the
first and last day, form mismatches, several grants for one coordinate, the preference for ALL scope.

Gap 5 of issue 19: ``test_grant_valid_on_first_and_last_day``, ``test_all_scope_grant_is_preferred``.
"""

from __future__ import annotations

from datetime import date

from hub.policy.engine import compile_table, evaluate
from hub.policy.model import Decision, Form, Grant, PolicySet, Rule, Scope

FIRST, LAST = date(2025, 3, 1), date(2025, 3, 31)
COORD = "TaxRecord.incomeBand"


def grant(
    gid: str,
    fields: dict[str, Form],
    *,
    consumers: tuple[str, ...] = ("civil_affairs",),
    purposes: tuple[str, ...] = ("VER",),
    scope: Scope = Scope.JURISDICTION,
    valid_from: date = FIRST,
    valid_to: date = LAST,
) -> Grant:
    return Grant(gid, "tax", consumers, purposes, fields, scope, valid_from, valid_to, "basis", f"{gid}.toml")


def policy(*grants: Grant) -> PolicySet:
    p = PolicySet(purposes={}, grants=list(grants))
    compile_table(p)
    return p


def test_compile_table_expands_consumers_purposes_and_fields() -> None:
    g1 = grant("g1", {COORD: Form.BAND, "TaxRecord.year": Form.RAW}, consumers=("a", "b"), purposes=("VER", "MON"))
    g2 = grant("g2", {COORD: Form.BAND}, consumers=("a",), purposes=("VER",), scope=Scope.ALL)
    p = policy(g1, g2)
    assert sorted(p.table) == [("a", "MON"), ("a", "VER"), ("b", "MON"), ("b", "VER")]
    r1 = Rule("g1", Form.BAND, Scope.JURISDICTION, FIRST, LAST, "g1.toml")
    r2 = Rule("g2", Form.BAND, Scope.ALL, FIRST, LAST, "g2.toml")
    year = Rule("g1", Form.RAW, Scope.JURISDICTION, FIRST, LAST, "g1.toml")
    assert p.table[("a", "VER")] == {COORD: [r1, r2], "TaxRecord.year": [year]}
    assert p.table[("b", "MON")] == {COORD: [r1], "TaxRecord.year": [year]}


def test_compile_table_replaces_the_old_table() -> None:
    p = PolicySet(purposes={}, grants=[], table={("x", "y"): {}})
    compile_table(p)
    assert p.table == {}


def test_no_grant() -> None:
    p = policy(grant("g1", {COORD: Form.BAND}))
    assert evaluate(p, "civil_affairs", "MON", COORD, Form.BAND, FIRST) == Decision(
        False, COORD, f"no grant of {COORD} to civil_affairs for purpose MON"
    )
    assert evaluate(p, "utilities", "VER", COORD, Form.BAND, FIRST) == Decision(
        False, COORD, f"no grant of {COORD} to utilities for purpose VER"
    )
    assert evaluate(p, "civil_affairs", "VER", "TaxRecord.year", Form.RAW, FIRST) == Decision(
        False, "TaxRecord.year", "no grant of TaxRecord.year to civil_affairs for purpose VER"
    )


def test_grant_valid_on_first_and_last_day() -> None:
    """Gap 5: a grant holds from its first day to its last day inclusive, and not a day beyond either."""
    g = grant("g1", {COORD: Form.BAND})
    p = policy(g)
    rule = p.table[("civil_affairs", "VER")][COORD][0]
    for day in (FIRST, date(2025, 3, 15), LAST):
        assert evaluate(p, "civil_affairs", "VER", COORD, Form.BAND, day) == Decision(
            True, COORD, "granted by g1", rule
        )
    outside = f"grant g1 covers {COORD} only from 2025-03-01 to 2025-03-31"
    for day in (date(2025, 2, 28), date(2025, 4, 1)):
        assert evaluate(p, "civil_affairs", "VER", COORD, Form.BAND, day) == Decision(False, COORD, outside)


def test_expired_grant_does_not_hide_a_current_one() -> None:
    old = grant("old", {COORD: Form.BAND}, valid_from=date(2020, 1, 1), valid_to=date(2020, 12, 31))
    new = grant("new", {COORD: Form.BAND})
    p = policy(old, new)
    d = evaluate(p, "civil_affairs", "VER", COORD, Form.BAND, FIRST)
    assert d.allowed and d.reason == "granted by new" and d.rule is not None and d.rule.grant_id == "new"
    # both out of date: the first grant is named
    d = evaluate(p, "civil_affairs", "VER", COORD, Form.BAND, date(2026, 1, 1))
    assert d == Decision(False, COORD, f"grant old covers {COORD} only from 2020-01-01 to 2020-12-31")


def test_wrong_form() -> None:
    p = policy(grant("g1", {COORD: Form.BAND}))
    assert evaluate(p, "civil_affairs", "VER", COORD, Form.RAW, FIRST) == Decision(
        False, COORD, f"{COORD} is granted only as band, not raw"
    )


def test_wrong_form_lists_every_current_form_once_sorted() -> None:
    p = policy(
        grant("g1", {COORD: Form.RAW}),
        grant("g2", {COORD: Form.BAND}),
        grant("g3", {COORD: Form.RAW}),
        grant("g4", {COORD: Form.MASKED}, valid_to=date(2025, 2, 1), valid_from=date(2025, 1, 1)),
    )
    assert evaluate(p, "civil_affairs", "VER", COORD, Form.PREDICATE, FIRST) == Decision(
        False, COORD, f"{COORD} is granted only as band, raw, not predicate"
    )


def test_matching_form_among_several_grants() -> None:
    p = policy(grant("g1", {COORD: Form.RAW}), grant("g2", {COORD: Form.BAND}))
    d = evaluate(p, "civil_affairs", "VER", COORD, Form.BAND, FIRST)
    assert d.allowed and d.reason == "granted by g2"


def test_all_scope_grant_is_preferred() -> None:
    """Gap 5: where a jurisdiction grant and an ALL grant both match, the ALL grant answers (out of area too)."""
    area = grant("area", {COORD: Form.BAND})
    everywhere = grant("everywhere", {COORD: Form.BAND}, scope=Scope.ALL)
    for order in ((area, everywhere), (everywhere, area)):
        d = evaluate(policy(*order), "civil_affairs", "VER", COORD, Form.BAND, FIRST)
        assert d.allowed and d.reason == "granted by everywhere"
        assert d.rule is not None and d.rule.scope is Scope.ALL
    # only jurisdiction grants: the first of them
    d = evaluate(policy(area, grant("area2", {COORD: Form.BAND})), "civil_affairs", "VER", COORD, Form.BAND, FIRST)
    assert d.reason == "granted by area" and d.rule is not None and d.rule.scope is Scope.JURISDICTION
    # an ALL grant of another form does not widen the matching one
    d = evaluate(
        policy(area, grant("rawall", {COORD: Form.RAW}, scope=Scope.ALL)),
        "civil_affairs",
        "VER",
        COORD,
        Form.BAND,
        FIRST,
    )
    assert d.reason == "granted by area" and d.rule is not None and d.rule.scope is Scope.JURISDICTION
    # an expired ALL grant does not widen a current one
    stale = grant("stale", {COORD: Form.BAND}, scope=Scope.ALL, valid_from=date(2020, 1, 1), valid_to=date(2020, 1, 2))
    d = evaluate(policy(stale, area), "civil_affairs", "VER", COORD, Form.BAND, FIRST)
    assert d.reason == "granted by area" and d.rule is not None and d.rule.scope is Scope.JURISDICTION


def test_decision_defaults() -> None:
    assert Decision(False, "a.b", "r").rule is None
    assert [f.value for f in Form] == ["raw", "masked", "band", "predicate", "exists", "aggregate"]
    assert [s.value for s in Scope] == ["jurisdiction", "all"]


def test_thresholds_only_from_grants_current_on_the_day() -> None:
    from dataclasses import replace

    from hub.policy.engine import allowed_thresholds

    pred = "TaxRecord.incomeAtLeast"
    g = replace(grant("t", {pred: Form.PREDICATE}), thresholds={pred: (20000, 1300)})
    p = policy(g)
    for day, expected in (
        (date(2025, 2, 28), ()),
        (FIRST, (1300, 20000)),
        (LAST, (1300, 20000)),
        (date(2025, 4, 1), ()),
    ):
        assert allowed_thresholds(p, "civil_affairs", "VER", pred, Form.PREDICATE, day) == expected, day
    assert allowed_thresholds(p, "civil_affairs", "VER", pred, Form.BAND, FIRST) == ()  # another form: none
