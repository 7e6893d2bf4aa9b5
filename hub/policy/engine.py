"""Pure policy decisions: values in, ``Decision`` out. No session, no request, no clock (``today`` is passed)."""

from __future__ import annotations

from datetime import date

from hub.policy.model import Decision, Form, PolicySet, Rule, Scope


def compile_table(policy: PolicySet) -> None:
    """Fill ``policy.table`` so a decision is a dictionary lookup."""
    table: dict[tuple[str, str], dict[str, list[Rule]]] = {}
    for g in policy.grants:
        for consumer in g.consumers:
            for purpose in g.purposes:
                slot = table.setdefault((consumer, purpose), {})
                for coordinate, form in g.fields.items():
                    rule = Rule(g.id, form, g.scope, g.valid_from, g.valid_to, g.file, g.thresholds.get(coordinate, ()))
                    slot.setdefault(coordinate, []).append(rule)
    policy.table = table


def evaluate(policy: PolicySet, consumer: str, purpose: str, coordinate: str, form: Form, today: date) -> Decision:
    """May ``consumer`` see ``coordinate`` (declared with ``form``) for ``purpose`` on ``today``?"""
    rules = policy.table.get((consumer, purpose), {}).get(coordinate)
    if not rules:
        return Decision(False, coordinate, f"no grant of {coordinate} to {consumer} for purpose {purpose}")
    current = [r for r in rules if r.valid_from <= today <= r.valid_to]
    if not current:
        r = rules[0]
        return Decision(
            False, coordinate, f"grant {r.grant_id} covers {coordinate} only from {r.valid_from} to {r.valid_to}"
        )
    matching = [r for r in current if r.form is form]
    if not matching:
        granted = ", ".join(sorted({r.form.value for r in current}))
        return Decision(False, coordinate, f"{coordinate} is granted only as {granted}, not {form.value}")
    # prefer the widest scope among the grants that match
    best = next((r for r in matching if r.scope is Scope.ALL), matching[0])
    return Decision(True, coordinate, f"granted by {best.grant_id}", best)


def allowed_thresholds(
    policy: PolicySet, consumer: str, purpose: str, coordinate: str, form: Form, today: date
) -> tuple[int, ...]:
    """The thresholds a threshold predicate may be asked with: every current matching grant's list, together."""
    rules = policy.table.get((consumer, purpose), {}).get(coordinate, [])
    values = {t for r in rules if r.form is form and r.valid_from <= today <= r.valid_to for t in r.thresholds}
    return tuple(sorted(values))
