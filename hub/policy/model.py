"""Policy values: purposes, grants, the compiled lookup table and decisions. No I/O here."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import date


class Form(enum.Enum):
    """How a field's value is disclosed. See docs/policies.md for each form's exact pattern."""

    RAW = "raw"
    MASKED = "masked"
    BAND = "band"
    PREDICATE = "predicate"
    EXISTS = "exists"
    AGGREGATE = "aggregate"


class Scope(enum.Enum):
    JURISDICTION = "jurisdiction"  # residents whose area code starts with the consumer's area code
    ALL = "all"  # every resident the provider holds


@dataclass(frozen=True)
class Purpose:
    id: str
    name_zh: str
    name_en: str
    legal_basis: str
    requires_case: bool
    requires_authorization: bool
    retention_days: int


@dataclass(frozen=True)
class Grant:
    id: str
    provider: str
    consumers: tuple[str, ...]
    purposes: tuple[str, ...]
    fields: dict[str, Form]
    scope: Scope
    valid_from: date
    valid_to: date
    legal_basis: str
    file: str
    # predicate coordinate -> the thresholds it may be asked with (``[grants.thresholds]``)
    thresholds: dict[str, tuple[int, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class Rule:
    """One compiled entry: (consumer, purpose, coordinate) -> this rule."""

    grant_id: str
    form: Form
    scope: Scope
    valid_from: date
    valid_to: date
    file: str
    thresholds: tuple[int, ...] = ()  # for a threshold predicate: the values allowed


@dataclass(frozen=True)
class Decision:
    allowed: bool
    coordinate: str
    reason: str
    rule: Rule | None = None


@dataclass
class PolicySet:
    purposes: dict[str, Purpose]
    grants: list[Grant]
    # (consumer, purpose) -> coordinate -> rules (several grants may cover one coordinate)
    table: dict[tuple[str, str], dict[str, list[Rule]]] = field(default_factory=dict)
