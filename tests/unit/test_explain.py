"""``hub policy explain`` on a one-grant policy folder: every row and the header, exactly."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import pytest

from hub.departments import DEPARTMENTS
from hub.errors import RequestError
from hub.policy.explain import explain, explain_rows
from hub.policy.loader import load_purposes
from hub.schema import build_schema, catalog_of
from hub.settings import Settings

REPO = Path(__file__).resolve().parents[2]
DAY = date(2026, 11, 29)
GRANT = """provider = "public_security"

[[grants]]
id = "only"
consumers = ["utilities"]
purposes = ["REF"]
scope = "all"
valid_from = 2024-01-01
valid_to = 2099-12-31
legal_basis = "test"
fields = { "Person.nameMasked" = "masked" }
"""


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    root = tmp_path_factory.mktemp("explain")
    (root / "policies").mkdir()
    shutil.copy(REPO / "policies" / "purposes.toml", root / "policies" / "purposes.toml")
    (root / "policies" / "public_security.toml").write_text(GRANT, encoding="utf-8")
    return Settings(data_dir=root, policy_dir=root / "policies")


def test_rows(settings: Settings) -> None:
    catalog = catalog_of(build_schema())
    rows = explain_rows(settings, "utilities", "REF", DAY)
    ordered = sorted(catalog.values(), key=lambda e: (e.provider, e.coordinate))
    assert [(c, f) for c, f, _, _ in rows] == [(e.coordinate, e.form.value) for e in ordered]
    visible = [r for r in rows if r[2] == "VISIBLE"]
    assert visible == [
        ("Person.nameMasked", "masked", "VISIBLE", "grant only (public_security.toml:3), scope all, until 2099-12-31")
    ]
    denied = {c: why for c, _, v, why in rows if v == "denied"}
    assert len(denied) == len(rows) - 1
    assert denied["Person.name"] == "no grant of Person.name to utilities for purpose REF"
    # on a day the grant does not cover, it is denied with the dates
    late = dict((c, why) for c, _, _, why in explain_rows(settings, "utilities", "REF", date(2100, 1, 1)))
    assert late["Person.nameMasked"] == "grant only covers Person.nameMasked only from 2024-01-01 to 2099-12-31"


def test_text(settings: Settings) -> None:
    purposes = load_purposes(settings.policy_dir / "purposes.toml")
    ref = purposes["REF"]
    rows = explain_rows(settings, "utilities", "REF", DAY)
    w = max(len(r[0]) for r in rows)
    lines = explain(settings, "utilities", "REF", DAY).split("\n")
    yes_no = {True: "yes", False: "no"}
    assert lines[:4] == [
        f"consumer utilities ({DEPARTMENTS['utilities'].name_zh}), purpose REF: {ref.name_en} ({ref.name_zh}) on {DAY}",
        f"case reference required: {yes_no[ref.requires_case]}; "
        f"household authorization required: {yes_no[ref.requires_authorization]}",
        f"1 of {len(rows)} fields visible",
        "",
    ]
    assert len(lines) == 4 + len(rows)
    name = "Person.nameMasked"
    assert f"{name:<{w}}  masked     VISIBLE  grant only (public_security.toml:3), scope all, until 2099-12-31" in lines
    assert f"{'Person.name':<{w}}  raw        denied   no grant of Person.name to utilities for purpose REF" in lines
    assert w == max(len(c) for c in catalog_of(build_schema()))


def test_unknown_consumer_and_purpose(settings: Settings) -> None:
    with pytest.raises(RequestError) as info:
        explain_rows(settings, "nobody", "REF", DAY)
    assert (info.value.code, info.value.message) == ("BAD_ARGUMENT", "unknown consumer department 'nobody'")
    with pytest.raises(RequestError) as info:
        explain_rows(settings, "utilities", "NOPE", DAY)
    assert (info.value.code, info.value.message) == ("BAD_ARGUMENT", "unknown purpose 'NOPE'")


def test_a_threshold_predicate_shows_its_allowed_figures(tmp_path: Path) -> None:
    (tmp_path / "policies").mkdir()
    shutil.copy(REPO / "policies" / "purposes.toml", tmp_path / "policies" / "purposes.toml")
    (tmp_path / "policies" / "medical_security.toml").write_text(
        GRANT.replace('provider = "public_security"', 'provider = "medical_security"').replace(
            'fields = { "Person.nameMasked" = "masked" }',
            '[grants.fields]\n"MedicalRecord.outOfPocket12mAtLeast" = "predicate"\n'
            '[grants.thresholds]\n"MedicalRecord.outOfPocket12mAtLeast" = [20000, 1300]\n',
        ),
        encoding="utf-8",
    )
    settings = Settings(data_dir=tmp_path, policy_dir=tmp_path / "policies")
    rows = {r[0]: r for r in explain_rows(settings, "utilities", "REF", DAY)}
    assert rows["MedicalRecord.outOfPocket12mAtLeast"] == (
        "MedicalRecord.outOfPocket12mAtLeast",
        "predicate",
        "VISIBLE",
        "grant only (medical_security.toml:3), scope all, until 2099-12-31, threshold only 1,300, 20,000",
    )
