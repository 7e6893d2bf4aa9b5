"""Change events: the kinds departments publish, and the checks an outbox row must pass.

An event says what changed for whom and when (resident ID number, kind, date), never the data itself. Each
department writes its events to its own ``change_events`` table (``hub.departments.OUTBOXES``); the hub reads
them after its cursor. A row that fails a check here is recorded as rejected with the reason and skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from hub.ids import id_problem

# kind -> the departments that may publish it
EVENT_KINDS: dict[str, tuple[str, ...]] = {
    "disability_changed": ("disability",),  # certificate issued, or category/grade changed
    "death_registered": ("public_security",),
    "household_changed": ("public_security",),  # a member moved in or out
    "hospital_discharge": ("medical_security",),
    "unemployment_registered": ("hrss",),
    "benefit_ended": ("hrss", "civil_affairs"),  # unemployment benefit, or an assistance tier, ended
    "school_enrolled": ("education",),  # admitted to a new stage (senior high, university)
    "dropout_flagged": ("education",),
    "vehicle_registered": ("traffic",),
    "property_registered": ("real_estate",),
    "business_role_registered": ("market_regulation",),
    "income_reassessed": ("tax",),
    "contributions_stopped": ("provident_fund",),
    "house_damaged": ("emergency",),  # registered disaster victim whose house was damaged
}


@dataclass(frozen=True)
class Event:
    department: str
    seq: int
    id_number: str
    kind: str
    occurred_on: date


def check(department: str, row: tuple[Any, ...], today: date) -> Event | str:
    """An ``Event`` from an outbox row ``(seq, id_number, kind, occurred_on, recorded_at)``, or why it is rejected.
    The reason never repeats the ID number."""
    seq, id_number, kind, occurred_on = row[0], row[1], row[2], row[3]
    if not isinstance(id_number, str) or (problem := id_problem(id_number)) is not None:
        return f"bad ID number: {problem or 'missing'}"
    if kind not in EVENT_KINDS:
        return f"unknown event kind {str(kind)[:40]!r}"
    if department not in EVENT_KINDS[kind]:
        return f"{kind} is not published by {department}"
    if isinstance(occurred_on, str):
        try:
            occurred_on = date.fromisoformat(occurred_on[:10])
        except ValueError:
            return "occurred_on is not a date"
    if not isinstance(occurred_on, date):
        return "occurred_on is missing"
    if occurred_on > today + timedelta(days=1):
        return f"occurred_on {occurred_on} is in the future"
    return Event(department, int(seq), id_number, kind, occurred_on)
