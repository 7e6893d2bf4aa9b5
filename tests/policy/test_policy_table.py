"""Every (consumer, purpose, field, form) in the shipped policies, and every negation, against table b."""

from __future__ import annotations

from datetime import date

import pytest

from hub.departments import DEPARTMENTS
from hub.policy.engine import evaluate
from hub.policy.loader import load_policies
from hub.policy.model import Form
from hub.schema import build_schema, catalog_of
from tests.conftest import POLICIES
from tests.policy.expected import EXPECTED

CATALOG = catalog_of(build_schema())
POLICY = load_policies(POLICIES, DEPARTMENTS, CATALOG, date(2026, 11, 29))
PURPOSES = sorted(POLICY.purposes)
TODAY = date(2026, 11, 29)

CASES = [
    (consumer, purpose, coordinate, form)
    for consumer in sorted(DEPARTMENTS)
    for purpose in PURPOSES
    for coordinate in sorted(CATALOG)
    for form in Form
]


def test_matrix_size() -> None:
    assert len(CATALOG) == 76
    assert sum(len(v) for v in EXPECTED.values()) == sum(
        len(rules) for table in POLICY.table.values() for rules in table.values()
    )


@pytest.mark.parametrize(("consumer", "purpose"), [(c, p) for c in sorted(DEPARTMENTS) for p in PURPOSES])
def test_consumer_purpose_matrix(consumer: str, purpose: str) -> None:
    """All fields x all forms for one (consumer, purpose): granted exactly where table b says, in its form."""
    expected = EXPECTED.get((consumer, purpose), {})
    for coordinate in sorted(CATALOG):
        for form in Form:
            d = evaluate(POLICY, consumer, purpose, coordinate, form, TODAY)
            want = expected.get(coordinate) == form.value
            assert d.allowed is want, (consumer, purpose, coordinate, form.value, d.reason)
            if not d.allowed:
                if coordinate in expected:
                    assert d.reason == f"{coordinate} is granted only as {expected[coordinate]}, not {form.value}"
                else:
                    assert d.reason == f"no grant of {coordinate} to {consumer} for purpose {purpose}"


def test_every_expected_field_has_its_declared_form() -> None:
    for (consumer, purpose), fields in EXPECTED.items():
        for coordinate, form in fields.items():
            assert CATALOG[coordinate].form.value == form, (consumer, purpose, coordinate)


def test_grant_validity_dates_apply() -> None:
    before = evaluate(POLICY, "civil_affairs", "VER", "TaxRecord.annualWageIncome", Form.RAW, date(2023, 12, 31))
    assert not before.allowed
    assert before.reason == "grant tax-ver covers TaxRecord.annualWageIncome only from 2024-01-01 to 2028-12-31"
    after = evaluate(POLICY, "civil_affairs", "VER", "TaxRecord.annualWageIncome", Form.RAW, date(2029, 1, 1))
    assert not after.allowed
