"""The published contract: schema.graphql equals the code's schema; every disclosed field names its provider."""

from __future__ import annotations

from hub.departments import DEPARTMENTS
from hub.schema import build_schema, catalog_of
from tests.conftest import REPO


def test_schema_file_matches_code() -> None:
    on_disk = (REPO / "schema.graphql").read_text(encoding="utf-8")
    assert on_disk == build_schema().as_str() + "\n", "run `hub schema export -o schema.graphql`"


def test_every_disclosed_field_names_its_provider_department() -> None:
    catalog = catalog_of(build_schema())
    assert len(catalog) >= 60
    providers = {e.provider for e in catalog.values()}
    assert providers == {
        "public_security",
        "civil_affairs",
        "disability",
        "medical_security",
        "hrss",
        "tax",
        "real_estate",
        "traffic",
        "market_regulation",
        "provident_fund",
        "education",
    }
    for entry in catalog.values():
        dept = DEPARTMENTS[entry.provider]
        assert f"Provider: {dept.name_en} ({dept.name_zh})." in entry.description, entry.coordinate


def test_schema_exposes_forms_as_directives() -> None:
    sdl = build_schema().as_str()
    assert "directive @disclosure(form: DisclosureForm!, provider: String!) on FIELD_DEFINITION" in sdl
    assert 'isSevere: Boolean! @disclosure(form: PREDICATE, provider: "disability")' in sdl
    assert 'idNumberMasked: String! @disclosure(form: MASKED, provider: "public_security")' in sdl
