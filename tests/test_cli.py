"""The client registry from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hub.cli import main


def test_clients_lifecycle(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_POLICY_DIR", str(Path(__file__).resolve().parents[1] / "policies"))
    d = ["--data-dir", str(tmp_path)]
    assert (
        main(
            [
                *d,
                "clients",
                "add",
                "lp-ca",
                "--department",
                "civil_affairs",
                "--area",
                "330113",
                "--purposes",
                "CASE,MON",
            ]
        )
        == 0
    )
    added = json.loads(capsys.readouterr().out)
    assert added["client_id"] == "lp-ca" and len(added["client_secret"]) >= 40
    assert main([*d, "clients", "update", "lp-ca", "--purposes", "CASE", "--roles", "authorization_clerk"]) == 0
    assert capsys.readouterr().out == "lp-ca: purposes CASE; roles authorization_clerk\n"
    assert main([*d, "clients", "disable", "lp-ca"]) == 0
    assert main([*d, "clients", "list"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[-1].split() == [
        "lp-ca",
        "civil_affairs",
        "330113",
        "CASE",
        "authorization_clerk",
        "disabled",
    ]
    assert main([*d, "clients", "enable", "lp-ca"]) == 0
    assert main([*d, "clients", "update", "lp-ca", "--purposes", "FUN"]) == 2
    assert capsys.readouterr().err.endswith("error [BAD_ARGUMENT]: unknown purpose 'FUN'\n")
    assert main([*d, "clients", "add", "x", "--department", "police", "--area", "33", "--purposes", "CASE"]) == 2
    assert "unknown department 'police'" in capsys.readouterr().err
    assert added["client_secret"] not in (tmp_path / "hub.sqlite").read_bytes().decode("latin-1")


def test_authorizations_from_the_command_line_meet_the_same_validity_rules(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The operator's ``hub authorizations add`` is held to the one-year rule the GraphQL mutation applies."""
    monkeypatch.setenv("HUB_POLICY_DIR", str(Path(__file__).resolve().parents[1] / "policies"))
    d = ["--data-dir", str(tmp_path)]
    add = [*d, "authorizations", "add", "H330113000173", "--signer", "户主", "--document-sha256", "ab" * 32]
    add += ["--recorded-by", "operator-zhou", "--valid-from", "2028-02-29"]
    assert main([*add, "--valid-to", "2029-03-01"]) == 2
    err = capsys.readouterr().err
    assert err.endswith(
        "error [AUTHORIZATION_TOO_LONG]: an authorization is valid for at most one year: "
        "validTo may be 2029-02-28 at the latest\n"
    )
    assert main([*add, "--valid-to", "2028-02-28"]) == 2
    assert capsys.readouterr().err.endswith("error [BAD_ARGUMENT]: validFrom is after validTo\n")
    assert main([*add, "--valid-to", "2029-02-28"]) == 0
    assert json.loads(capsys.readouterr().out)["valid_to"] == "2029-02-28"
