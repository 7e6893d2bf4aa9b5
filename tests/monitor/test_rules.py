"""Rule files are validated when the hub starts: each mistake refuses start-up, naming file and line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from hub.errors import ConfigError
from hub.settings import Settings
from hub.state import HubState
from tests.conftest import POLICIES, working_clock

M1 = (POLICIES / "monitoring" / "M1.toml").read_text(encoding="utf-8")


def _policies(
    tmp_path: Path, rule: str, edit: tuple[str, str] | None = None, grants: tuple[str, str] | None = None
) -> Path:
    folder = tmp_path / "policies"
    shutil.copytree(POLICIES, folder)
    (folder / "monitoring" / "M99.toml").write_text(
        rule if edit is None else rule.replace(*edit).replace('id = "M1"', 'id = "M99"'), encoding="utf-8"
    )
    if grants is not None:
        file = folder / "disability.toml"
        file.write_text(file.read_text(encoding="utf-8").replace(*grants), encoding="utf-8")
    return folder


def _line(text: str, needle: str) -> int:
    return next(i for i, ln in enumerate(text.splitlines(), start=1) if needle in ln)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (('"DisabilityRecord.isSevere" = true', '"DisabilityRecord.isSevre" = true'),
         "unknown field 'DisabilityRecord.isSevre'"),
        (('triggers = ["disability_changed"]', 'triggers = ["disability_upgraded"]'),
         "unknown event kind 'disability_upgraded'"),
        (('programme = "dibao"', 'programme = "dibao_plus"'), "unknown programme 'dibao_plus'"),
        (('"TaxRecord.incomeBand" = ["BELOW_1X",', '"TaxRecord.incomeBand" = ["BELOW_HALF",'),
         "TaxRecord.incomeBand: unknown value 'BELOW_HALF'"),
        (('due_working_days = 7', 'due_working_days = 7\npurpose = "CASE"'), "unknown key 'purpose'"),
        (('"DisabilityRecord.isSevere" = true', '"DisabilityRecord.grade" = { at_least = 1 }'),
         "DisabilityRecord.grade is not granted to civil_affairs for MON"),
    ],
)  # fmt: skip
def test_a_bad_rule_refuses_start_up(tmp_path: Path, edit: tuple[str, str], message: str) -> None:
    folder = _policies(tmp_path, M1, edit)
    text = (folder / "monitoring" / "M99.toml").read_text(encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        HubState(Settings(data_dir=tmp_path, policy_dir=folder), working_clock())
    assert info.value.code == "RULE_INVALID"
    assert message in info.value.message
    assert info.value.message.startswith(f"M99.toml:{_line(text, edit[1].splitlines()[-1])}: ")


def test_a_rule_whose_condition_policy_no_longer_grants_refuses_start_up(tmp_path: Path) -> None:
    """The disability federation withdraws isSevere from the MON grant: M1 (which needs it) stops the hub."""
    grant = '"DisabilityRecord.isSevere" = "predicate"\n"DisabilityRecord.changedWithinDays"'
    folder = _policies(tmp_path, "", grants=(grant, '"DisabilityRecord.changedWithinDays"'))
    (folder / "monitoring" / "M99.toml").unlink()
    with pytest.raises(ConfigError) as info:
        HubState(Settings(data_dir=tmp_path, policy_dir=folder), working_clock())
    assert info.value.message == (
        f"M1.toml:{_line(M1, 'DisabilityRecord.isSevere')}: rule M1: DisabilityRecord.isSevere is not granted to "
        "civil_affairs for MON (no grant of DisabilityRecord.isSevere to civil_affairs for purpose MON); "
        "a rule may use only what monitoring is granted"
    )


def test_the_shipped_rules_load() -> None:
    from hub.cli import main

    assert main(["policy", "check"]) == 0
