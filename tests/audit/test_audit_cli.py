"""``hub audit ...`` run in-process through ``hub.cli.main`` against a real SQLite hub database."""

from __future__ import annotations

import hashlib
import json
import logging
import re
from datetime import date
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from hub.audit.entry import entry_leaf
from hub.audit.merkle import root_from_leaf_hashes, verify_inclusion
from hub.audit.query import access_report
from hub.audit.store import open_audit_log
from hub.cli import main
from hub.errors import HubError
from hub.ids import make_id
from hub.settings import Settings
from tests.audit.test_verify import POLICIES, build_log, db, entry_text, leaf_of, sql, subjects

TIME = re.compile(r"\d+\.\d\d s")


def run(capsys: pytest.CaptureFixture[str], settings: Settings, *argv: str) -> tuple[int, str, str]:
    code = main(["--data-dir", str(settings.data_dir), "audit", *argv])
    out, err = capsys.readouterr()
    return code, TIME.sub("<t> s", out), err


@pytest.fixture
def log60(tmp_path: Path) -> Settings:
    return build_log(tmp_path / "hub", 60, heads=(20, 40, 60))


def _flip_entry(settings: Settings, seq: int, old: str, new: str) -> None:
    text = entry_text(settings, seq)
    assert old in text
    sql(settings, ("UPDATE audit_entries SET entry = ? WHERE seq = ?", (text.replace(old, new, 1), seq)))


def _age(settings: Settings, below_seq: int) -> None:
    sql(settings, ("UPDATE audit_entries SET at = '2020-06-01 00:00:00.000000' WHERE seq < ?", (below_seq,)))


def _root(settings: Settings, size: int) -> str:
    with db(settings) as conn:
        return bytes(conn.execute("SELECT root_hash FROM tree_heads WHERE tree_size = ?", (size,)).fetchone()[0]).hex()


# --------------------------------------------------------------------------------------------- verify
def test_verify_ok(log60: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, log60, "verify") == (0, "OK: audit log: 60 entries (seq 0–59), 3 signed tree heads, <t> s\n", "")


def test_verify_names_the_modified_entry(log60: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    _flip_entry(log60, 17, "CASE-17", "CASE-71")
    assert run(capsys, log60, "verify") == (
        1,
        "FAILED: audit log: entry 17: content does not match its leaf hash (modified)\n",
        "",
    )


def test_verify_names_the_deleted_entry(log60: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    sql(log60, "DELETE FROM audit_entries WHERE seq = 41", "DELETE FROM audit_subjects WHERE seq = 41")
    assert run(capsys, log60, "verify") == (
        1,
        "FAILED: audit log: entry 41: missing (sequence jumps from 40 to 42: deleted)\n",
        "",
    )


def test_verify_with_an_untrusted_key(log60: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = tmp_path / "other.pem"
    other.write_bytes(
        ed25519.Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    assert run(capsys, log60, "verify", "--public-key", str(other)) == (
        1,
        "FAILED: audit log: tree head at size 20: bad signature\n",
        "",
    )


# --------------------------------------------------------------------------------------------- export
def test_export_and_verify_file(log60: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "all.jsonl"
    code, text, _ = run(capsys, log60, "export", "--output", str(out))
    sha = hashlib.sha256(out.read_bytes()).hexdigest()
    assert (code, text) == (0, f"exported entries 0–59 (60 entries, 3 signed tree heads) to {out}; sha256 {sha}\n")
    key = str(log60.key_dir / "audit-public.pem")
    assert run(capsys, log60, "verify", "--file", str(out), "--public-key", key) == (
        0,
        "OK: export all.jsonl: 60 entries (seq 0–59), 3 signed tree heads, <t> s\n",
        "",
    )
    code, text, err = run(capsys, log60, "verify", "--file", str(out))
    assert (code, text) == (0, "OK: export all.jsonl: 60 entries (seq 0–59), 3 signed tree heads, <t> s\n")
    fingerprint = hashlib.sha256(
        serialization.load_pem_public_key(Path(key).read_bytes()).public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
    ).hexdigest()
    assert err == (
        f"note: checked against the key embedded in the file (fingerprint {fingerprint}); "
        "pass --public-key with the key you trust\n"
    )
    # a byte flipped in the file
    raw = out.read_text(encoding="utf-8")
    out.write_text(raw.replace('CASE-27\\"', 'CASE-72\\"', 1), encoding="utf-8")
    assert run(capsys, log60, "verify", "--file", str(out), "--public-key", key) == (
        1,
        "FAILED: export all.jsonl: entry 27: content does not match its leaf hash (modified)\n",
        "",
    )


def test_export_a_range(log60: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "mid.jsonl"
    code, text, _ = run(capsys, log60, "export", "-o", str(out), "--first", "20", "--last", "39")
    sha = hashlib.sha256(out.read_bytes()).hexdigest()
    assert (code, text) == (0, f"exported entries 20–39 (20 entries, 2 signed tree heads) to {out}; sha256 {sha}\n")
    key = str(log60.key_dir / "audit-public.pem")
    assert run(capsys, log60, "verify", "--file", str(out), "--public-key", key)[:2] == (
        0,
        "OK: export mid.jsonl: 20 entries (seq 20–39), 2 signed tree heads, <t> s\n",
    )
    assert run(capsys, log60, "export", "-o", str(out), "--first", "50", "--last", "99") == (
        2,
        "",
        "error [BAD_ARGUMENT]: no entries 50–99 in the log (newest: 59)\n",
    )


# --------------------------------------------------------------------------------------------- archive
def test_archive_before_a_date(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = build_log(tmp_path / "hub", 65, heads=(20, 40, 60))
    _age(settings, 45)
    code, text, _ = run(capsys, settings, "archive", "--before", "2021-01-01")
    file = settings.data_dir / "archive" / "audit-000000000000-000000000039.jsonl"
    sha = hashlib.sha256(file.read_bytes()).hexdigest()
    assert (code, text) == (
        0,
        f"archived entries 0–39 (40 entries older than 2021-01-01T00:00:00+00:00) to {file}; sha256 {sha}\n",
    )
    assert run(capsys, settings, "verify") == (
        0,
        "OK: audit log: 65 entries (seq 0–64; 40 of them in 1 archive), 3 signed tree heads, <t> s; "
        "the newest 5 entries are not yet covered by a signed tree head\n",
        "",
    )
    assert run(capsys, settings, "archive", "--before", "2021-01-01") == (
        0,
        "nothing to archive: no signed tree head covers only entries older than the cut-off\n",
        "",
    )
    code, text, _ = run(capsys, settings, "archive", "--older-than-days", "0")
    assert code == 0 and text.startswith("archived entries 40–59 (20 entries older than ")
    assert run(capsys, settings, "verify")[:2] == (
        0,
        "OK: audit log: 65 entries (seq 0–64; 60 of them in 2 archives), 3 signed tree heads, <t> s; "
        "the newest 5 entries are not yet covered by a signed tree head\n",
    )
    # the archive file itself verifies offline
    key = str(settings.key_dir / "audit-public.pem")
    assert run(capsys, settings, "verify", "--file", str(file), "--public-key", key)[:2] == (
        0,
        f"OK: export {file.name}: 40 entries (seq 0–39), 2 signed tree heads, <t> s\n",
    )
    # tampering with the archive is caught and names the entry
    raw = file.read_text(encoding="utf-8")
    file.write_text(raw.replace('CASE-9\\"', 'CASE-6\\"', 1), encoding="utf-8")
    assert run(capsys, settings, "verify") == (
        1,
        f"FAILED: audit log: archive {file.name}: entry 9: content does not match its leaf hash (modified)\n",
        "",
    )


def test_archive_default_retention(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HUB_POLICY_DIR", str(POLICIES))
    settings = build_log(tmp_path / "hub", 30, heads=(10, 20, 30))
    _age(settings, 25)  # 2020-06-01 is more than the longest retention (1825 days) ago
    code, text, _ = run(capsys, settings, "archive")
    assert code == 0 and text.startswith("archived entries 0–19 (20 entries older than ")


def test_archive_argument_errors(log60: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(
            ["--data-dir", str(log60.data_dir), "audit", "archive", "--before", "2021-01-01", "--older-than-days", "3"]
        )
    assert exc.value.code == 2
    capsys.readouterr()
    assert run(capsys, log60, "archive", "--before", "last tuesday") == (
        2,
        "",
        "error [BAD_ARGUMENT]: --before: 'last tuesday' is not a date (YYYY-MM-DD) or ISO time\n",
    )


# --------------------------------------------------------------------------------------------- subject
RESIDENT = make_id("330113", date(1958, 3, 4), 123)


def _access_line(settings: Settings, seq: int) -> str:
    e = json.loads(entry_text(settings, seq))
    return (
        f"{e['at']} seq {seq} allow department=civil_affairs client=linping-ca officer=officer-{seq % 7} "
        f"purpose=CASE case=CASE-{seq} fields=Person.name"
    )


def test_subject_lists_every_access(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = Settings(data_dir=tmp_path / "hub", policy_dir=POLICIES)
    log = open_audit_log(settings)
    me = log.pseudonym(RESIDENT)
    log.engine.dispose()
    build_log(
        settings.data_dir, 30, heads=(10, 20, 30), subjects_of=lambda i: [me] if i in (3, 14, 27) else subjects(i)
    )
    expected = [_access_line(settings, s) for s in (3, 14, 27)]
    code, text, err = run(capsys, settings, "subject", RESIDENT)
    assert (code, err) == (0, "")
    assert text.splitlines() == [*expected, "3 recorded accesses to this resident"]
    # still complete once the oldest entries are archived (read back from the archive file)
    _age(settings, 12)
    run(capsys, settings, "archive", "--before", "2021-01-01")
    code, text, err = run(capsys, settings, "subject", RESIDENT)
    assert (code, err, text.splitlines()) == (0, "", [*expected, "3 recorded accesses to this resident"])
    # the officers' API report (hub.audit.query.access_report) reads the archive too
    log = open_audit_log(settings)
    try:
        report = access_report(log.engine, me, data_dir=settings.data_dir)
        assert [(a["seq"], a["case_ref"]) for a in report] == [(3, "CASE-3"), (14, "CASE-14"), (27, "CASE-27")]
        archive = next((settings.data_dir / "archive").glob("*.jsonl"))
        archive.rename(archive.with_suffix(".moved"))
        with pytest.raises(HubError, match=rf"incomplete: archive file\(s\) missing: {archive.name} \(entries 0–9\)"):
            access_report(log.engine, me, data_dir=settings.data_dir)
        assert run(capsys, settings, "subject", RESIDENT)[2] == (
            f"warning: archive file {archive.name} (entries 0–9) is missing\n"
        )
        archive.with_suffix(".moved").rename(archive)
    finally:
        log.engine.dispose()
    nobody = make_id("330113", date(1990, 1, 1), 2)
    assert run(capsys, settings, "subject", nobody) == (0, "0 recorded accesses to this resident\n", "")
    assert RESIDENT not in caplog.text


def test_subject_reads_the_id_from_stdin(
    log60: Settings, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO(RESIDENT + "\n"))
    assert run(capsys, log60, "subject", "-") == (0, "0 recorded accesses to this resident\n", "")


def test_verify_rejects_a_key_file_that_is_not_a_key(
    log60: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a key")
    assert run(capsys, log60, "verify", "--public-key", str(junk)) == (
        2,
        "",
        f"error [BAD_ARGUMENT]: {junk} is not an Ed25519 public key in PEM form\n",
    )
    assert run(capsys, log60, "verify", "--file", str(tmp_path / "nope.jsonl")) == (
        2,
        "",
        f"error [NOT_FOUND]: no such file: {tmp_path / 'nope.jsonl'}\n",
    )


def test_subject_rejects_a_bad_id_without_repeating_it(log60: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    wrong = RESIDENT[:-1] + ("0" if RESIDENT[-1] != "0" else "1")
    code, text, err = run(capsys, log60, "subject", wrong)
    assert (code, text, err) == (2, "", "error [BAD_ID_NUMBER]: the ID number's check character is wrong\n")
    assert wrong not in text + err


# --------------------------------------------------------------------------------------------- sign and prove
def test_sign(log60: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, log60, "sign") == (0, f"signed tree head: size 60, root {_root(log60, 60)}\n", "")
    log = open_audit_log(log60)
    log.write([({**json.loads(entry_text(log60, 0)), "request_id": f"new-{i}"}, []) for i in range(3)])
    log.engine.dispose()
    leaves = [leaf_of(log60, i) for i in range(63)]
    assert run(capsys, log60, "sign") == (
        0,
        f"signed tree head: size 63, root {root_from_leaf_hashes(leaves).hex()}\n",
        "",
    )
    assert run(capsys, log60, "verify")[0] == 0


def test_sign_after_archiving(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = build_log(tmp_path / "hub", 25, heads=(10, 20))
    _age(settings, 25)
    leaves = [leaf_of(settings, i) for i in range(25)]  # entries 0..19 leave the database now
    run(capsys, settings, "archive", "--before", "2021-01-01")
    assert run(capsys, settings, "sign") == (
        0,
        f"signed tree head: size 25, root {root_from_leaf_hashes(leaves).hex()}\n",
        "",
    )
    assert run(capsys, settings, "verify")[:2] == (
        0,
        "OK: audit log: 25 entries (seq 0–24; 20 of them in 1 archive), 3 signed tree heads, <t> s\n",
    )


def test_prove(log60: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    code, text, err = run(capsys, log60, "prove", "--seq", "5")
    assert (code, err) == (0, "")
    proof = json.loads(text)
    assert (proof["seq"], proof["tree_size"], proof["verified"], proof["root_hash"]) == (5, 60, True, _root(log60, 60))
    assert proof["entry"] == entry_text(log60, 5) and proof["leaf_hash"] == entry_leaf(proof["entry"]).hex()
    assert len(proof["path"]) == 6  # ceil(log2(60))
    verify_inclusion(
        bytes.fromhex(proof["leaf_hash"]),
        5,
        60,
        [bytes.fromhex(p) for p in proof["path"]],
        bytes.fromhex(_root(log60, 60)),
    )
    code, text, _ = run(capsys, log60, "prove", "--seq", "19", "--size", "20")
    assert code == 0 and json.loads(text)["tree_size"] == 20 and json.loads(text)["root_hash"] == _root(log60, 20)
    assert run(capsys, log60, "prove", "--seq", "60") == (
        2,
        "",
        "error [BAD_ARGUMENT]: entry 60 is not in the tree of size 60\n",
    )
    assert run(capsys, log60, "prove", "--seq", "1", "--size", "33") == (
        2,
        "",
        "error [NOT_FOUND]: no signed tree head at size 33\n",
    )
    _flip_entry(log60, 5, "CASE-5", "CASE-6")
    assert run(capsys, log60, "prove", "--seq", "5") == (
        1,
        "FAILED: entry 5: not included in the signed tree head at size 60 (calculated root does not match the "
        "expected root)\n",
        "",
    )


def test_prove_an_archived_entry(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = build_log(tmp_path / "hub", 30, heads=(10, 20, 30))
    _age(settings, 25)
    run(capsys, settings, "archive", "--before", "2021-01-01")
    code, text, _ = run(capsys, settings, "prove", "--seq", "7")
    proof = json.loads(text)
    assert code == 0 and proof["verified"] is True and proof["archived_in"] == "audit-000000000000-000000000019.jsonl"
    assert "entry" not in proof and proof["tree_size"] == 30
