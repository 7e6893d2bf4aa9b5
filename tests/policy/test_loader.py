"""Broken policy files: each is a clear error naming the file, the entry and the line; the hub refuses to start."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import pytest

from hub.app import create_app
from hub.cli import main
from hub.departments import DEPARTMENTS
from hub.errors import ConfigError
from hub.policy.loader import load_policies
from hub.schema import build_schema, catalog_of
from hub.settings import Settings
from tests.conftest import POLICIES

CATALOG = catalog_of(build_schema())
TODAY = date(2026, 11, 29)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    dest = tmp_path / "policies"
    shutil.copytree(POLICIES, dest)
    return dest


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def error_of(folder: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_policies(folder, DEPARTMENTS, CATALOG, TODAY)
    assert info.value.code == "POLICY_INVALID"
    return info.value.message


def test_shipped_policies_load() -> None:
    policy = load_policies(POLICIES, DEPARTMENTS, CATALOG, TODAY)
    assert len(policy.grants) == 35 and sorted(policy.purposes) == ["AUDIT", "CASE", "MON", "REF", "STAT", "VER"]


def test_unknown_field(folder: Path) -> None:
    edit(folder / "tax.toml", '"TaxRecord.year" = "raw"', '"TaxRecord.yeer" = "raw"')
    assert error_of(folder) == "tax.toml:13: grant 'tax-ver': unknown field 'TaxRecord.yeer'"


def test_unknown_purpose(folder: Path) -> None:
    edit(folder / "tax.toml", 'purposes = ["VER"]', 'purposes = ["VERIFY"]')
    assert error_of(folder) == "tax.toml:7: grant 'tax-ver': unknown purpose 'VERIFY'"


def test_unknown_consumer(folder: Path) -> None:
    edit(folder / "tax.toml", 'consumers = ["civil_affairs"]', 'consumers = ["police"]')
    assert error_of(folder) == "tax.toml:6: grant 'tax-ver': unknown consumer department 'police'"


def test_unknown_form(folder: Path) -> None:
    edit(folder / "tax.toml", '"TaxRecord.year" = "raw"', '"TaxRecord.year" = "blurred"')
    assert error_of(folder) == (
        "tax.toml:13: grant 'tax-ver': unknown form 'blurred' for TaxRecord.year "
        "(raw, masked, band, predicate, exists, aggregate)"
    )


def test_form_must_match_the_field(folder: Path) -> None:
    edit(folder / "tax.toml", '"TaxRecord.incomeBand" = "band"', '"TaxRecord.incomeBand" = "raw"')
    assert error_of(folder) == ("tax.toml:26: grant 'tax-mon-case': TaxRecord.incomeBand is disclosed as band, not raw")


def test_only_the_provider_grants_its_fields(folder: Path) -> None:
    edit(folder / "tax.toml", '"TaxRecord.year" = "raw"', '"MedicalRecord.outOfPocket12m" = "raw"')
    assert error_of(folder) == (
        "tax.toml:13: grant 'tax-ver': MedicalRecord.outOfPocket12m is provided by medical_security, not tax"
    )


def test_expired_grant(folder: Path) -> None:
    edit(folder / "tax.toml", "valid_to = 2028-12-31", "valid_to = 2025-06-30")
    assert error_of(folder) == (
        "tax.toml:10: grant 'tax-ver': expired on 2025-06-30; remove it or renew it with a new validity"
    )


def test_malformed_toml(folder: Path) -> None:
    edit(folder / "tax.toml", 'provider = "tax"', 'provider = "tax')
    message = error_of(folder)
    assert message.startswith("tax.toml: not valid TOML: ") and "line 2" in message


def test_missing_key_and_duplicate_id(folder: Path) -> None:
    edit(folder / "tax.toml", 'legal_basis = "民发〔2022〕85号; sharing agreement TAX-CA-2024-08 (verification)"\n', "")
    assert error_of(folder) == "tax.toml:4: grant 'tax-ver': missing legal_basis"


def test_duplicate_grant_across_files(folder: Path) -> None:
    edit(folder / "tax.toml", 'id = "tax-ver"', 'id = "hrss-ver"')
    assert "grant 'hrss-ver' also defined in" in error_of(folder)


def test_purpose_file_problems(folder: Path) -> None:
    edit(folder / "purposes.toml", "requires_case = true", 'requires_case = "yes"')
    assert error_of(folder) == "purposes.toml:6: purpose VER: requires_case must be true or false"


def test_server_refuses_to_start(folder: Path, tmp_path: Path) -> None:
    edit(folder / "hrss.toml", '"EmploymentRecord.pensionType" = "raw"', '"EmploymentRecord.pension" = "raw"')
    with pytest.raises(ConfigError, match="hrss.toml:13: grant 'hrss-ver': unknown field 'EmploymentRecord.pension'"):
        create_app(Settings(data_dir=tmp_path / "data", policy_dir=folder))


def test_policy_check_command(
    folder: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HUB_POLICY_DIR", str(folder))
    assert main(["policy", "check"]) == 0
    assert capsys.readouterr().out.startswith("policies OK: 6 purposes, 35 grants")
    edit(folder / "tax.toml", 'purposes = ["VER"]', 'purposes = ["VERIFY"]')
    assert main(["policy", "check"]) == 2
    assert capsys.readouterr().err == "error [POLICY_INVALID]: tax.toml:7: grant 'tax-ver': unknown purpose 'VERIFY'\n"


def test_explain_command(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_POLICY_DIR", str(POLICIES))
    assert main(["policy", "explain", "--consumer", "utilities", "--purpose", "REF", "--date", "2026-11-29"]) == 0
    out = capsys.readouterr().out
    assert "4 of 76 fields visible" in out
    assert any(
        line.startswith("Person.nameMasked") and "VISIBLE" in line and "grant ps-ref" in line
        for line in out.splitlines()
    )
    assert any(line.startswith("Person.name ") and "denied" in line for line in out.splitlines())
