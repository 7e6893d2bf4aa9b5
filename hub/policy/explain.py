"""``hub policy explain``: every disclosed field and why a consumer may or may not see it."""

from __future__ import annotations

from datetime import date

from hub.departments import DEPARTMENTS
from hub.errors import RequestError
from hub.policy.engine import allowed_thresholds, evaluate
from hub.policy.load import load_policy_set
from hub.schema import build_schema, catalog_of
from hub.settings import Settings


def explain_rows(settings: Settings, consumer: str, purpose: str, today: date) -> list[tuple[str, str, str, str]]:
    """(coordinate, form, verdict, why) for every disclosed field, sorted by provider then coordinate."""
    catalog = catalog_of(build_schema())
    policy = load_policy_set(settings, catalog)
    if consumer not in DEPARTMENTS:
        raise RequestError(f"unknown consumer department {consumer!r}", code="BAD_ARGUMENT")
    if purpose not in policy.purposes:
        raise RequestError(f"unknown purpose {purpose!r}", code="BAD_ARGUMENT")
    rows = []
    for entry in sorted(catalog.values(), key=lambda e: (e.provider, e.coordinate)):
        d = evaluate(policy, consumer, purpose, entry.coordinate, entry.form, today)
        if d.allowed and d.rule is not None:
            why = f"grant {d.rule.grant_id} ({d.rule.file}), scope {d.rule.scope.value}, until {d.rule.valid_to}"
            if entry.arguments:
                allowed = allowed_thresholds(policy, consumer, purpose, entry.coordinate, entry.form, today)
                why += f", {'/'.join(entry.arguments)} only {', '.join(f'{t:,}' for t in allowed)}"
            rows.append((entry.coordinate, entry.form.value, "VISIBLE", why))
        else:
            rows.append((entry.coordinate, entry.form.value, "denied", d.reason))
    return rows


def explain(settings: Settings, consumer: str, purpose: str, today: date) -> str:
    rows = explain_rows(settings, consumer, purpose, today)
    p = load_policy_set(settings).purposes[purpose]
    visible = sum(1 for r in rows if r[2] == "VISIBLE")
    head = [
        f"consumer {consumer} ({DEPARTMENTS[consumer].name_zh}), "
        f"purpose {purpose}: {p.name_en} ({p.name_zh}) on {today}",
        f"case reference required: {'yes' if p.requires_case else 'no'}; "
        f"household authorization required: {'yes' if p.requires_authorization else 'no'}",
        f"{visible} of {len(rows)} fields visible",
        "",
    ]
    w = max(len(r[0]) for r in rows)
    return "\n".join(head + [f"{c:<{w}}  {f:<9}  {v:<7}  {why}" for c, f, v, why in rows])
