"""``hub audit search``, ``export --since/--until``, ``subject --since``; ``NO_HUB_DATA`` where a command finds no
hub; output piped into ``head`` (a real subprocess). Entries are written with a fixed clock, so the dates in the
tests are the entries' own, whatever the day the suite runs."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from hub.audit.store import open_audit_log
from hub.cli import main
from hub.clock import TestClock
from hub.ids import make_id
from hub.settings import Settings
from tests.audit.test_verify import POLICIES

RESIDENT = make_id("330113", date(1961, 5, 6), 321)
OTHER = make_id("330113", date(1972, 8, 9), 45)

# (UTC time, client, officer, purpose, case, decision, field, resident named, out_of_area)
ROWS: list[tuple[datetime, str, str, str, str, str, str, str | None, int]] = [
    (
        datetime(2026, 3, 1, 2, 0, tzinfo=UTC),
        "linping-ca",
        "officer-wang",
        "CASE",
        "CASE-1",
        "allow",
        "Person.name",
        RESIDENT,
        0,
    ),
    (
        datetime(2026, 3, 1, 9, 0, tzinfo=UTC),
        "linping-med",
        "officer-li",
        "REF",
        "",
        "deny",
        "Person.name",
        RESIDENT,
        0,
    ),
    # 23:30 on 1 March in China
    (
        datetime(2026, 3, 1, 15, 30, tzinfo=UTC),
        "linping-ca",
        "officer-wang",
        "MON",
        "",
        "allow",
        "CivilAffairsRecord.tier",
        OTHER,
        0,
    ),
    # 00:30 on 2 March in China, one hour later
    (
        datetime(2026, 3, 1, 16, 30, tzinfo=UTC),
        "hangzhou-ca",
        "officer-zhao",
        "CASE",
        "CASE-9",
        "allow",
        "Person.name",
        OTHER,
        2,
    ),
    (
        datetime(2026, 3, 3, 4, 0, tzinfo=UTC),
        "linping-ca",
        "officer-wang",
        "CASE",
        "CASE-2",
        "allow",
        "MedicalRecord.outOfPocket12mBand",
        RESIDENT,
        0,
    ),
    (
        datetime(2026, 3, 4, 4, 0, tzinfo=UTC),
        "officer",
        "auditor-qian",
        "AUDIT",
        "",
        "allow",
        "Person.name",
        RESIDENT,
        0,
    ),
]


def build(root: Path, rows: list[Any] = ROWS) -> Settings:
    settings = Settings(data_dir=root, policy_dir=POLICIES)
    log = open_audit_log(settings)
    clock = TestClock(rows[0][0])
    log.clock = clock
    for at, client, officer, purpose, case, decision, field, resident, out in rows:
        clock.set(at)
        subject = [log.pseudonym(resident)] if resident and decision == "allow" else []
        body = {
            "request_id": f"req-{at.isoformat()}",
            "client_id": client,
            "department": "civil_affairs" if client.endswith("-ca") else "x",
            "officer": officer,
            "purpose": purpose,
            "case_ref": case,
            "decision": decision,
            "fields": [{"coordinate": field, "form": "raw"}] if decision == "allow" else [],
            "out_of_area": out,
            "refused_subjects": [log.pseudonym(resident)] if resident and decision != "allow" else [],
        }
        log.write([(body, subject)])
    log.sign_head(now=rows[-1][0])
    log.engine.dispose()
    return settings


@pytest.fixture
def small(tmp_path: Path) -> Settings:
    return build(tmp_path / "hub")


def run(capsys: pytest.CaptureFixture[str], settings: Settings, *argv: str) -> tuple[int, str, str]:
    code = main(["--data-dir", str(settings.data_dir), "audit", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def seqs(capsys: pytest.CaptureFixture[str], settings: Settings, *argv: str) -> list[int]:
    code, out, err = run(capsys, settings, "search", "--json", *argv)
    assert code == 0, err
    return [json.loads(line)["seq"] for line in out.splitlines()]


def test_each_filter_finds_exactly_its_entries(small: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert seqs(capsys, small) == [0, 1, 2, 3, 4, 5]
    assert seqs(capsys, small, "--officer", "officer-wang") == [0, 2, 4]
    assert seqs(capsys, small, "--consumer", "linping-ca") == [0, 2, 4]
    assert seqs(capsys, small, "--consumer", "linping-ca", "--purpose", "CASE") == [0, 4]
    assert seqs(capsys, small, "--purpose", "AUDIT") == [5]
    assert seqs(capsys, small, "--decision", "deny") == [1]
    assert seqs(capsys, small, "--field", "CivilAffairsRecord.tier") == [2]
    assert seqs(capsys, small, "--case", "CASE-9") == [3]
    assert seqs(capsys, small, "--flag", "OUT_OF_AREA_ATTEMPT") == [3]
    # allowed, residents touched, no case, not AUDIT: only the MON lookup (an officer's AUDIT lookup is not flagged)
    assert seqs(capsys, small, "--flag", "NO_CASE_REFERENCE") == [2]
    assert seqs(capsys, small, "--officer", "nobody") == []


def test_dates_are_china_dates_and_until_includes_its_day(small: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    # entry 2 is 23:30 on 1 March in China, entry 3 is 00:30 on 2 March (both 1 March in UTC)
    assert seqs(capsys, small, "--until", "2026-03-01") == [0, 1, 2]
    assert seqs(capsys, small, "--since", "2026-03-02") == [3, 4, 5]
    assert seqs(capsys, small, "--since", "2026-03-02", "--until", "2026-03-03") == [3, 4]
    # an ISO time is an exact instant; --until excludes it
    assert seqs(capsys, small, "--since", "2026-03-01T09:00:00+00:00", "--until", "2026-03-01T16:30:00Z") == [1, 2]
    assert run(capsys, small, "search", "--since", "yesterday") == (
        2,
        "",
        "error [BAD_ARGUMENT]: --since: 'yesterday' is not a date (YYYY-MM-DD, China time) or an ISO time\n",
    )


def test_resident_is_searched_by_pseudonym_and_never_shown(
    small: Settings, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    # the refused attempt (1) names the resident too
    assert seqs(capsys, small, "--resident", RESIDENT) == [0, 1, 4, 5]
    monkeypatch.setattr("sys.stdin", io.StringIO(OTHER + "\n"))
    assert seqs(capsys, small, "--resident", "-") == [2, 3]
    code, out, err = run(capsys, small, "search", "--resident", RESIDENT)
    assert code == 0 and RESIDENT not in out + err
    bad = RESIDENT[:-1] + ("0" if RESIDENT[-1] != "0" else "1")
    code, out, err = run(capsys, small, "search", "--resident", bad)
    assert code == 2 and err.startswith("error [BAD_ID_NUMBER]") and bad not in err


def test_table_is_readable_and_pages_say_how_to_go_on(small: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, small, "search", "--consumer", "hangzhou-ca")
    assert code == 0 and err == "1 entry\n"
    header, row = out.splitlines()
    assert header.split() == [
        "seq",
        "at",
        "(China)",
        "decision",
        "consumer",
        "officer",
        "purpose",
        "case",
        "fields",
        "flags",
    ]
    assert row.split() == [
        "3",
        "2026-03-02",
        "00:30:00",
        "allow",
        "hangzhou-ca",
        "officer-zhao",
        "CASE",
        "CASE-9",
        "Person.name",
        "OUT_OF_AREA_ATTEMPT",
    ]
    assert header.index("officer") == row.index("officer-zhao")  # columns line up
    code, out, err = run(capsys, small, "search", "--limit", "2")
    assert [line.split()[0] for line in out.splitlines()[1:]] == ["0", "1"]
    assert err == "2 entries\nmore entries may match: add --after 1 for the next page\n"
    assert seqs(capsys, small, "--limit", "2", "--after", "1") == [2, 3]
    assert seqs(capsys, small, "--limit", "2", "--after", "3") == [4, 5]
    code, _, err = run(capsys, small, "search", "--limit", "2", "--after", "3")
    assert "more entries" not in err


def test_export_since_until_writes_that_range_and_it_verifies(
    small: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "march2.jsonl"
    code, text, err = run(capsys, small, "export", "-o", str(out), "--since", "2026-03-02", "--until", "2026-03-03")
    assert (code, err) == (0, "") and text.startswith("exported entries 3–4 (2 entries, ")
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [x["seq"] for x in lines if "entry" in x] == [3, 4]
    assert run(capsys, small, "verify", "--file", str(out))[0] == 0
    assert run(capsys, small, "export", "-o", str(out), "--since", "2027-01-01") == (
        2,
        "",
        "error [NOT_FOUND]: no entry was written in that time range\n",
    )
    assert run(capsys, small, "export", "-o", str(out), "--since", "2026-03-02", "--first", "0")[0] == 2


def test_subject_since_until(small: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, small, "subject", RESIDENT, "--since", "2026-03-02")
    assert code == 0
    lines = out.splitlines()
    assert [line.split()[2] for line in lines[:-1]] == ["4", "5"]
    assert lines[-1] == "2 recorded accesses to this resident in that time range"
    code, out, _ = run(capsys, small, "subject", RESIDENT, "--until", "2026-03-01")
    assert [line.split()[2] for line in out.splitlines()[:-1]] == ["0", "1"]
    assert "REFUSED" in out.splitlines()[1]


# ------------------------------------------------------------------------------------------ no hub data here
READING_COMMANDS = [
    ["audit", "search"],
    ["audit", "verify"],
    ["audit", "export", "-o", "x.jsonl"],
    ["audit", "subject", RESIDENT],
    ["audit", "sign"],
    ["audit", "checkpoint"],
    ["audit", "prove", "--seq", "0"],
    ["audit", "archive"],
    ["clients", "list"],
    ["clients", "disable", "x"],
    ["clients", "update", "x", "--purposes", "CASE"],
    ["clients", "rotate-secret", "x"],
    ["authorizations", "list"],
    ["authorizations", "revoke", "1"],
    ["operations", "list"],
    ["operations", "mode", "x", "log", "--by", "me"],
    ["monitor", "sweep", "--quiet"],
    ["console", "list-officers"],
]


@pytest.mark.parametrize("argv", READING_COMMANDS, ids=lambda a: " ".join(a[:2]))
def test_a_command_without_hub_data_says_where_it_looked(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HUB_DATA_DIR", raising=False)
    monkeypatch.delenv("HUB_DATABASE_URL", raising=False)
    monkeypatch.setenv("HUB_POLICY_DIR", str(POLICIES))
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        f"error [NO_HUB_DATA]: no hub data in {tmp_path.resolve() / '.hub'} (the default: neither --data-dir nor "
        "HUB_DATA_DIR was given; looked for hub.sqlite there). Point the command at a hub with `hub --data-dir DIR` "
        f"or HUB_DATA_DIR=DIR; for the demo, run `hub demo` (it writes .hub-demo/) and then `hub --data-dir "
        f".hub-demo {argv[0]} ...`\n"
    )
    assert list(tmp_path.iterdir()) == []  # no empty hub was created


def test_no_hub_data_points_at_the_demo_when_it_is_there(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    build(tmp_path / ".hub-demo")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HUB_DATABASE_URL", raising=False)
    monkeypatch.setenv("HUB_DATA_DIR", str(tmp_path / "typo"))
    assert main(["audit", "search"]) == 2
    err = capsys.readouterr().err
    assert f"no hub data in {tmp_path.resolve() / 'typo'} (from HUB_DATA_DIR;" in err
    assert err.endswith("the demo's data is in .hub-demo/: run `hub --data-dir .hub-demo audit ...`\n")
    assert main(["--data-dir", "elsewhere", "clients", "list"]) == 2
    assert "(given with --data-dir;" in capsys.readouterr().err
    assert not (tmp_path / "typo").exists() and not (tmp_path / "elsewhere").exists()
    # what the hint says works
    assert main(["--data-dir", ".hub-demo", "audit", "search", "--limit", "1"]) == 0
    # setting a hub up still may create it, and verifying a file needs no hub
    monkeypatch.delenv("HUB_DATA_DIR")
    assert main(["--data-dir", "new", "db", "upgrade"]) == 0
    assert (tmp_path / "new" / "hub.sqlite").is_file()


# ------------------------------------------------------------------------------------------ piped into head
def test_output_piped_into_head_ends_quietly(tmp_path: Path) -> None:
    """More output than a pipe holds (about 300 KB of JSON lines), read by ``head -1``: no traceback, status 141
    (128 + SIGPIPE, as a C program killed by the signal would give)."""
    start = datetime(2026, 3, 5, 2, 0, tzinfo=UTC)
    rows = [
        (
            start + timedelta(seconds=i),
            "linping-ca",
            f"officer-{i % 9}",
            "CASE",
            f"CASE-{i}",
            "allow",
            "Person.name",
            None,
            0,
        )
        for i in range(400)
    ]
    settings = build(tmp_path / "hub", rows)
    err = tmp_path / "stderr.txt"
    shell = (
        f"{sys.executable} -m hub --data-dir {settings.data_dir} audit search --json --limit 400 2>{err} | head -1; "
        "exit ${PIPESTATUS[0]}"
    )
    r = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, timeout=120)
    assert err.read_text() == ""  # no "Traceback", no "Exception ignored ... BrokenPipeError"
    assert r.returncode == 141
    assert json.loads(r.stdout)["seq"] == 0 and r.stdout.count("\n") == 1
