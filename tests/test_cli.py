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


def test_administrative_changes_are_audit_entries(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Who may see residents' data changes with the registry, the authorizations and the officer accounts: each
    change made from the command line is an entry (route admin), naming the OS account, never a secret."""
    import io
    import sqlite3

    monkeypatch.setenv("HUB_POLICY_DIR", str(Path(__file__).resolve().parents[1] / "policies"))
    monkeypatch.setenv("USER", "ops-li")
    monkeypatch.setenv("LOGNAME", "ops-li")
    d = ["--data-dir", str(tmp_path)]
    assert main([*d, "clients", "add", "lp-ca", "--department", "civil_affairs", "--area", "330113",
                 "--purposes", "CASE,MON"]) == 0  # fmt: skip
    first_secret = json.loads(capsys.readouterr().out)["client_secret"]
    assert main([*d, "clients", "update", "lp-ca", "--purposes", "CASE"]) == 0
    capsys.readouterr()
    assert main([*d, "clients", "rotate-secret", "lp-ca"]) == 0
    second_secret = json.loads(capsys.readouterr().out)["client_secret"]
    assert main([*d, "clients", "disable", "lp-ca"]) == 0
    assert main([*d, "clients", "update", "lp-ca", "--purposes", "FUN"]) == 2  # refused: no entry
    authz = ["H330113000173", "--signer", "户主", "--document-sha256", "ab" * 32, "--recorded-by", "clerk-wu"]
    assert main([*d, "authorizations", "add", *authz, "--valid-from", "2026-01-01", "--valid-to", "2026-12-31"]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("correct horse battery\n"))
    assert main([*d, "officers", "add", "officer-zhao", "--password-stdin"]) == 0
    capsys.readouterr()
    db = sqlite3.connect(tmp_path / "hub.sqlite")
    entries = [json.loads(e) for (e,) in db.execute("SELECT entry FROM audit_entries ORDER BY seq")]
    admin = [e for e in entries if e.get("route") == "admin"]
    assert [(e["reasons"], e["admin"]["action"]) for e in admin] == [
        (["ADMIN_CLIENT_ADD"], "client-add"),
        (["ADMIN_CLIENT_UPDATE"], "client-update"),
        (["ADMIN_CLIENT_ROTATE_SECRET"], "client-rotate-secret"),
        (["ADMIN_CLIENT_DISABLE"], "client-disable"),
        (["ADMIN_AUTHORIZATION_ADD"], "authorization-add"),
        (["ADMIN_OFFICER_ADD"], "officer-add"),
    ]
    assert {e["officer"] for e in admin} == {"os:ops-li"} and {e["decision"] for e in admin} == {"allow"}
    assert admin[0]["admin"] == {"action": "client-add", "client_id": "lp-ca", "department": "civil_affairs",
                                 "area": "330113", "purposes": "CASE,MON", "roles": ""}  # fmt: skip
    assert (admin[0]["client_id"], admin[0]["department"], admin[0]["area"]) == ("lp-ca", "civil_affairs", "330113")
    assert admin[1]["admin"]["purposes"] == "CASE" and admin[5]["admin"]["account"] == "officer-zhao"
    text = "\n".join(e for (e,) in db.execute("SELECT entry FROM audit_entries"))
    for secret in (first_secret, second_secret, "correct horse battery", "H330113000173"):
        assert secret not in text
    assert main([*d, "audit", "verify"]) == 0
