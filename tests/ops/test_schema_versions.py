"""A versioned schema: `hub schema diff` and the CI gate `hub schema check` (a breaking change needs a new major
version, a CHANGELOG section naming it, and a deprecation before a removal). The repository itself passes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hub.cli import main

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = (ROOT / "schema.graphql").read_text(encoding="utf-8")
NEW_BAND = "balanceBand: BalanceBand @disclosure"
OLD_BAND = "balanceBand: AmountBand @disclosure"
CHANGED = (
    "BREAKING FIELD_CHANGED_KIND: Field ProvidentFundRecord.balanceBand changed type from AmountBand to BalanceBand."
)


@pytest.fixture
def hub_cli(capsys: pytest.CaptureFixture[str]) -> Any:
    def run(*args: str) -> tuple[int, str, str]:
        status = main(list(args))
        out = capsys.readouterr()
        return status, out.out, out.err

    return run


def release(tmp_path: Path, version: str, sdl: str) -> Path:
    history = tmp_path / "history"
    history.mkdir(exist_ok=True)
    (history / f"{version}.graphql").write_text(sdl, encoding="utf-8")
    return history


def gate(hub_cli: Any, tmp_path: Path, version: str, changelog: str, schema: str = SCHEMA) -> tuple[int, str, str]:
    (tmp_path / "schema.graphql").write_text(schema, encoding="utf-8")
    (tmp_path / "CHANGELOG.md").write_text(changelog, encoding="utf-8")
    return hub_cli(  # type: ignore[no-any-return]
        "schema", "check", "--schema", str(tmp_path / "schema.graphql"), "--history", str(tmp_path / "history"),
        "--changelog", str(tmp_path / "CHANGELOG.md"), "--version", version,
    )  # fmt: skip


def test_the_repository_passes_its_own_gate(hub_cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    status, out, err = hub_cli("schema", "check")
    assert (status, err) == (0, ""), err
    assert out.startswith("schema 0.1.0: ok (0 breaking")


def test_diff_names_the_balance_band_change(hub_cli: Any, tmp_path: Path) -> None:
    assert NEW_BAND in SCHEMA
    (tmp_path / "old.graphql").write_text(SCHEMA.replace(NEW_BAND, OLD_BAND), encoding="utf-8")
    status, out, _ = hub_cli("schema", "diff", str(tmp_path / "old.graphql"), str(ROOT / "schema.graphql"))
    assert (status, out.splitlines()) == (1, [CHANGED])
    status, out, _ = hub_cli("schema", "diff", str(ROOT / "schema.graphql"), str(ROOT / "schema.graphql"))
    assert (status, out) == (0, "no breaking or dangerous changes\n")
    (tmp_path / "broken.graphql").write_text("type Query {", encoding="utf-8")
    status, _, err = hub_cli("schema", "diff", str(tmp_path / "broken.graphql"), str(ROOT / "schema.graphql"))
    assert status == 2 and err.startswith(f"error [BAD_ARGUMENT]: {tmp_path / 'broken.graphql'}: not a valid schema")


def test_a_breaking_change_needs_a_version_and_a_changelog_section(hub_cli: Any, tmp_path: Path) -> None:
    release(tmp_path, "0.1.0", SCHEMA.replace(NEW_BAND, OLD_BAND))
    status, out, err = gate(hub_cli, tmp_path, "0.1.0", "# Changelog\n")
    assert status == 1 and out.splitlines() == [CHANGED]
    assert err.splitlines() == [
        "error: 1 breaking change(s) since 0.1.0, but the version is 0.1.0: raise the major version "
        "(the minor one before 1.0)",
        "error: CHANGELOG.md has no '## 0.1.0' section for the breaking change(s)",
    ]
    # a patch release may not break either
    assert gate(hub_cli, tmp_path, "0.1.1", "## 0.1.1\n- ProvidentFundRecord.balanceBand\n")[0] == 1
    # a section that does not name the coordinate
    status, _, err = gate(hub_cli, tmp_path, "0.2.0", "## 0.2.0\n- bands changed\n")
    assert status == 1 and "'## 0.2.0' does not name ProvidentFundRecord.balanceBand" in err
    # a new minor version under 1.0, with the change named: passes
    status, out, err = gate(hub_cli, tmp_path, "0.2.0", "## 0.2.0 (2026-06-01)\n- `ProvidentFundRecord.balanceBand`\n")
    assert (status, err) == (0, "") and out.splitlines()[-1].startswith("schema 0.2.0: ok (1 breaking")


def test_a_removed_field_must_have_been_deprecated(hub_cli: Any, tmp_path: Path) -> None:
    removed = SCHEMA.replace(NEW_BAND, "balanceBandV2: BalanceBand @disclosure")  # the old name goes away
    assert removed != SCHEMA
    release(tmp_path, "1.0.0", SCHEMA)
    changelog = "## 2.0.0\n- ProvidentFundRecord.balanceBand removed\n"
    status, _, err = gate(hub_cli, tmp_path, "2.0.0", changelog, schema=removed)
    assert status == 1
    assert err == "error: ProvidentFundRecord.balanceBand was removed without first being marked @deprecated in 1.0.0\n"
    deprecated = SCHEMA.replace(NEW_BAND, 'balanceBand: BalanceBand @deprecated(reason: "use balance") @disclosure')
    release(tmp_path, "1.1.0", deprecated)
    status, _, err = gate(hub_cli, tmp_path, "2.0.0", changelog, schema=removed)
    assert (status, err) == (0, "")
