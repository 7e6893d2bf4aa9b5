"""``hub.audit.verify`` / ``export`` / ``archive``: a real SQLite hub database, tampered with by direct SQL.

Every tamper test asserts the exact sequence number the verifier names and its exact sentence.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from hub.audit import store
from hub.audit.archive import archived_leaves
from hub.audit.entry import GENESIS, canonical, entry_leaf, head_message
from hub.audit.export import ExportResult, verify_file
from hub.audit.head import SignedHead, key_fingerprint, load_public_key
from hub.audit.log import AuditLog
from hub.audit.store import ArchiveResult, open_audit_log, open_audit_store
from hub.audit.verify import VerifyReport, verify_log
from hub.auth.keys import KeyRing
from hub.db import hub_engine
from hub.errors import RequestError
from hub.settings import Settings

REPO = Path(__file__).resolve().parents[2]
POLICIES = REPO / "policies"
T0 = datetime(2026, 1, 1, 8, 0, tzinfo=UTC)


# --------------------------------------------------------------------------------------------- helpers
def body(i: int) -> dict[str, Any]:
    return {
        "request_id": f"req-{i:06d}",
        "client_id": "linping-ca",
        "department": "civil_affairs",
        "officer": f"officer-{i % 7}",
        "purpose": "CASE",
        "case_ref": f"CASE-{i}",
        "decision": "allow",
        "fields": [{"coordinate": "Person.name", "form": "raw"}],
    }


def subjects(i: int) -> list[str]:
    return [hashlib.sha256(f"resident-{i % 5}".encode()).hexdigest()]


def build_log(root: Path, n: int, heads: Sequence[int] = (), batch: int = 10, subjects_of: Any = subjects) -> Settings:
    """A hub database holding ``n`` synthetic entries with tree heads signed at the sizes in ``heads``."""
    settings = Settings(data_dir=root, policy_dir=POLICIES)
    log = open_audit_log(settings)
    written = 0
    for mark in sorted({*heads, n}):
        while written < mark:
            upto = min(mark, written + batch)
            log.write([(body(i), subjects_of(i)) for i in range(written, upto)])
            written = upto
        if mark in heads:
            log.sign_head(now=T0 + timedelta(minutes=mark))
    log.engine.dispose()
    return settings


def verify_store(settings: Settings, public_key_path: Path | None = None) -> VerifyReport:
    with open_audit_store(settings, public_key_path) as opened:
        return store.verify_store(opened)


def export_range(settings: Settings, path: Path, first: int = 0, last: int | None = None) -> ExportResult:
    with open_audit_store(settings) as opened:
        return store.export_range(opened, path, first, last)


def archive_before(settings: Settings, **kw: Any) -> ArchiveResult | None:
    with open_audit_store(settings) as opened:
        return store.archive_before(opened, **kw)


def db(settings: Settings) -> sqlite3.Connection:
    return sqlite3.connect(settings.data_dir / "hub.sqlite", isolation_level=None)


def sql(settings: Settings, *statements: tuple[str, Sequence[Any] | Mapping[str, Any]] | str) -> None:
    with db(settings) as conn:
        for s in statements:
            if isinstance(s, str):
                conn.execute(s)
            else:
                conn.execute(*s)


def entry_text(settings: Settings, seq: int) -> str:
    with db(settings) as conn:
        row = conn.execute("SELECT entry FROM audit_entries WHERE seq = ?", (seq,)).fetchone()
    assert row is not None
    return str(row[0])


def leaf_of(settings: Settings, seq: int) -> bytes:
    with db(settings) as conn:
        row = conn.execute("SELECT leaf_hash FROM audit_entries WHERE seq = ?", (seq,)).fetchone()
    return bytes(row[0])


def rewrite(settings: Settings, seq: int, **changes: Any) -> str:
    """Rewrite entry ``seq`` *and* its leaf hash and columns consistently, as a careful insider would."""
    entry = json.loads(entry_text(settings, seq))
    entry.update(changes)
    text = canonical(entry).decode()
    cols = {k: v for k, v in changes.items() if k in ("officer", "case_ref", "decision", "client_id")}
    sets = "".join(f", {k} = :{k}" for k in cols)
    sql(
        settings,
        (
            f"UPDATE audit_entries SET entry = :entry, leaf_hash = :leaf{sets} WHERE seq = :seq",  # noqa: S608
            {"entry": text, "leaf": entry_leaf(text), "seq": seq, **cols},
        ),
    )
    return text


def shift(settings: Settings, from_seq: int, by: int) -> None:
    """Renumber rows ``seq >= from_seq`` by ``by`` (via negative numbers, to dodge the primary key)."""
    for table in ("audit_entries", "audit_subjects"):
        sql(
            settings,
            (f"UPDATE {table} SET seq = -(seq + ?) - 1 WHERE seq >= ?", (by, from_seq)),  # noqa: S608
            f"UPDATE {table} SET seq = -seq - 1 WHERE seq < 0",  # noqa: S608
        )


def insert_entry(settings: Settings, seq: int, prev: str, subject_list: list[str]) -> None:
    entry = dict(body(9000 + seq), seq=seq, prev=prev, at="2026-01-01T08:00:00.000+00:00", subjects=subject_list)
    text = canonical(entry).decode()
    sql(
        settings,
        (
            "INSERT INTO audit_entries (seq, request_id, at, client_id, department, officer, purpose, case_ref,"
            " decision, entry, leaf_hash) VALUES (?, ?, '2026-01-01 08:00:00.000000', ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                seq,
                entry["request_id"],
                entry["client_id"],
                entry["department"],
                entry["officer"],
                entry["purpose"],
                entry["case_ref"],
                entry["decision"],
                text,
                entry_leaf(text),
            ),
        ),
    )
    for s in subject_list:
        sql(settings, ("INSERT INTO audit_subjects (seq, subject) VALUES (?, ?)", (seq, s)))


def assert_fails(report: VerifyReport, seq: int | None, problem: str) -> None:
    assert (report.ok, report.first_bad_seq, report.problem) == (False, seq, problem)


@pytest.fixture
def log60(tmp_path: Path) -> Settings:
    """60 entries; heads signed at sizes 20, 40 and 60."""
    return build_log(tmp_path, 60, heads=(20, 40, 60))


# --------------------------------------------------------------------------------------------- intact logs
def test_intact_log_verifies(log60: Settings) -> None:
    r = verify_store(log60)
    assert (r.ok, r.problem, r.first_bad_seq) == (True, "", None)
    assert (r.entries_checked, r.heads_checked, r.first_seq, r.last_seq, r.unsigned_entries) == (60, 3, 0, 59, 0)
    assert r.key_fingerprint == key_fingerprint(load_public_key(log60.key_dir / "audit-public.pem"))
    assert r.summary().startswith("OK: audit log: 60 entries (seq 0–59), 3 signed tree heads, ")


def test_unsigned_tail_is_reported(tmp_path: Path) -> None:
    r = verify_store(build_log(tmp_path, 25, heads=(20,)))
    assert r.ok and r.unsigned_entries == 5
    assert r.summary().endswith("; the newest 5 entries are not yet covered by a signed tree head")


def test_empty_log_verifies(tmp_path: Path) -> None:
    r = verify_store(build_log(tmp_path, 0))
    assert (r.ok, r.entries_checked, r.heads_checked, r.last_seq) == (True, 0, 0, None)


def test_ten_thousand_entries(tmp_path: Path) -> None:
    settings = build_log(tmp_path, 10_000, heads=range(2_000, 10_001, 2_000), batch=1_000)
    r = verify_store(settings)
    assert (r.ok, r.entries_checked, r.heads_checked, r.last_seq) == (True, 10_000, 5, 9_999)


# --------------------------------------------------------------------------------------------- entries
def test_flipped_byte(log60: Settings) -> None:
    text = entry_text(log60, 17)
    i = text.index("officer-3")
    sql(log60, ("UPDATE audit_entries SET entry = ? WHERE seq = 17", (text[:i] + "Officer-3" + text[i + 9 :],)))
    assert_fails(verify_store(log60), 17, "entry 17: content does not match its leaf hash (modified)")


def test_deleted_entry(log60: Settings) -> None:
    sql(log60, "DELETE FROM audit_entries WHERE seq = 23", "DELETE FROM audit_subjects WHERE seq = 23")
    assert_fails(verify_store(log60), 23, "entry 23: missing (sequence jumps from 22 to 24: deleted)")


def test_deleted_run_of_entries(log60: Settings) -> None:
    sql(log60, "DELETE FROM audit_entries WHERE seq BETWEEN 30 AND 32")
    assert_fails(verify_store(log60), 30, "entry 30: missing (sequence jumps from 29 to 33: 3 entries deleted)")


def test_deleted_first_entry(log60: Settings) -> None:
    sql(log60, "DELETE FROM audit_entries WHERE seq = 0")
    assert_fails(verify_store(log60), 0, "entry 0: missing (the log starts at 1: deleted)")


def test_deleted_last_entry_is_caught_by_the_head(log60: Settings) -> None:
    sql(log60, "DELETE FROM audit_entries WHERE seq = 59", "DELETE FROM audit_subjects WHERE seq = 59")
    assert_fails(
        verify_store(log60), 59, "entry 59: missing (tree head at size 60 covers 1 more entry than there are: deleted)"
    )


def test_deleted_and_renumbered(log60: Settings) -> None:
    sql(log60, "DELETE FROM audit_entries WHERE seq = 31", "DELETE FROM audit_subjects WHERE seq = 31")
    shift(log60, 32, -1)
    assert_fails(verify_store(log60), 31, "entry 31: missing (deleted; the later entries were renumbered down by 1)")


def test_forged_entry_replacing_a_deleted_one(log60: Settings) -> None:
    # delete entry 31 and put a crafted one in its place, with the right prev and a matching leaf hash
    sql(log60, "DELETE FROM audit_entries WHERE seq = 31", "DELETE FROM audit_subjects WHERE seq = 31")
    insert_entry(log60, 31, leaf_of(log60, 30).hex(), subjects(31))
    assert_fails(
        verify_store(log60),
        31,
        "entry 31: rewritten together with its leaf hash (entry 32 names a different leaf for it)",
    )


def test_forged_entry_inserted_with_renumbering(log60: Settings) -> None:
    shift(log60, 31, +1)
    insert_entry(log60, 31, leaf_of(log60, 30).hex(), [])
    assert_fails(
        verify_store(log60),
        31,
        "entry 31: inserted (a forged entry; the original entry 31 and those after it were renumbered up by 1)",
    )


def test_swapped_entries(log60: Settings) -> None:
    cols = "entry, leaf_hash, request_id, officer, case_ref"
    with db(log60) as conn:
        a = conn.execute(f"SELECT {cols} FROM audit_entries WHERE seq = 12").fetchone()  # noqa: S608
        b = conn.execute(f"SELECT {cols} FROM audit_entries WHERE seq = 45").fetchone()  # noqa: S608
    upd = "UPDATE audit_entries SET entry = ?, leaf_hash = ?, request_id = ?, officer = ?, case_ref = ? WHERE seq = ?"
    sql(log60, (upd, (*b, 12)), (upd, (*a, 45)))
    assert_fails(verify_store(log60), 12, "entry 12: out of order: the row holds entry 45 (reordered)")


def test_swapped_texts_only(log60: Settings) -> None:
    a, b = entry_text(log60, 12), entry_text(log60, 13)
    sql(
        log60,
        ("UPDATE audit_entries SET entry = ? WHERE seq = 12", (b,)),
        ("UPDATE audit_entries SET entry = ? WHERE seq = 13", (a,)),
    )
    assert_fails(verify_store(log60), 12, "entry 12: content does not match its leaf hash (modified)")


def test_rewritten_with_leaf_hash_is_caught_by_the_next_prev(log60: Settings) -> None:
    rewrite(log60, 37, officer="officer-innocent")
    assert_fails(
        verify_store(log60),
        37,
        "entry 37: rewritten together with its leaf hash (entry 38 names a different leaf for it)",
    )


def test_rewritten_second_to_last_entry_is_named_with_the_signed_head(log60: Settings) -> None:
    # no entry after 59 confirms it, but the head at size 60 does: with 59's prev as leaf 58 its root is right
    rewrite(log60, 58, officer="officer-innocent")
    assert_fails(
        verify_store(log60),
        58,
        "entry 58: rewritten together with its leaf hash (entry 59 and the tree head at size 60 name a different "
        "leaf for it)",
    )


def test_rewritten_last_entry_is_caught_by_the_signed_head(log60: Settings) -> None:
    old = leaf_of(log60, 59)
    rewrite(log60, 59, officer="officer-innocent")
    r = verify_store(log60)
    with db(log60) as conn:
        signed = bytes(conn.execute("SELECT root_hash FROM tree_heads WHERE tree_size = 60").fetchone()[0])
    leaves = [leaf_of(log60, i) for i in range(60)]
    from hub.audit.merkle import root_from_leaf_hashes

    assert root_from_leaf_hashes([*leaves[:59], old]) == signed
    assert_fails(
        r,
        None,
        f"tree head at size 60: root does not match the entries (signed root {signed.hex()}, recomputed "
        f"{root_from_leaf_hashes(leaves).hex()}); the change is among entries 40–59",
    )


def test_rewritten_history_with_a_consistent_chain_is_caught_by_the_heads(log60: Settings) -> None:
    # rewrite entry 25 and re-chain every later entry: the hash chain is perfect again, only signatures tell
    prev = rewrite(log60, 25, officer="officer-innocent")
    for seq in range(26, 60):
        prev = rewrite(log60, seq, prev=entry_leaf(prev).hex())
    r = verify_store(log60)
    assert r.first_bad_seq is None and r.problem.startswith("tree head at size 40: root does not match the entries")
    assert r.problem.endswith("the change is among entries 20–39")


def test_modified_index_column(log60: Settings) -> None:
    sql(log60, "UPDATE audit_entries SET officer = 'someone-else' WHERE seq = 5")
    assert_fails(verify_store(log60), 5, "entry 5: the officer column differs from the signed entry (index tampered)")


def test_removed_subject_index_row(log60: Settings) -> None:
    sql(log60, "DELETE FROM audit_subjects WHERE seq = 8")
    assert_fails(
        verify_store(log60),
        8,
        "entry 8: its audit_subjects rows differ from the subjects in the signed entry (index tampered)",
    )


# --------------------------------------------------------------------------------------------- heads
def test_tampered_head_root(log60: Settings) -> None:
    sql(log60, ("UPDATE tree_heads SET root_hash = ? WHERE tree_size = 40", (b"\x11" * 32,)))
    assert_fails(verify_store(log60), None, "tree head at size 40: bad signature")


def test_tampered_head_signature(log60: Settings) -> None:
    with db(log60) as conn:
        sig = bytearray(conn.execute("SELECT signature FROM tree_heads WHERE tree_size = 20").fetchone()[0])
    sig[10] ^= 1
    sql(log60, ("UPDATE tree_heads SET signature = ? WHERE tree_size = 20", (bytes(sig),)))
    assert_fails(verify_store(log60), None, "tree head at size 20: bad signature")


def test_tampered_head_size(log60: Settings) -> None:
    sql(log60, "UPDATE tree_heads SET tree_size = 41 WHERE tree_size = 40")
    assert_fails(verify_store(log60), None, "tree head at size 41: bad signature")


def test_wrong_public_key(log60: Settings, tmp_path: Path) -> None:
    other = tmp_path / "other.pem"
    other.write_bytes(
        ed25519.Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    assert_fails(verify_store(log60, public_key_path=other), None, "tree head at size 20: bad signature")


def test_head_signed_before_a_smaller_one(tmp_path: Path) -> None:
    settings = build_log(tmp_path, 20, heads=(10,))
    log = open_audit_log(settings)
    log.sign_head(now=T0)  # size 20, but earlier than the head at size 10 (T0 + 10 min)
    log.engine.dispose()
    assert_fails(
        verify_store(settings),
        None,
        "tree head at size 20: signed at 2026-01-01T08:00:00.000+00:00, before the head at size 10 "
        "(signed at 2026-01-01T08:10:00.000+00:00)",
    )


def test_validly_signed_wrong_root(tmp_path: Path) -> None:
    settings = build_log(tmp_path, 30, heads=(10, 20))
    key = open_audit_log(settings).signing_key
    ms = int((T0 + timedelta(hours=1)).timestamp() * 1000)
    forged = b"\x22" * 32
    sql(
        settings,
        (
            "INSERT INTO tree_heads (tree_size, root_hash, signed_at, key_id, signature)"
            " VALUES (30, ?, ?, 'audit-1', ?)",
            (forged, "2026-01-01 09:00:00.000000", key.sign(head_message(30, forged, ms))),
        ),
    )
    r = verify_store(settings)
    assert r.first_bad_seq is None
    assert r.problem.startswith(f"tree head at size 30: root does not match the entries (signed root {forged.hex()}")
    assert r.problem.endswith("; the change is among entries 20–29")


# --------------------------------------------------------------------------------------------- pure core
def _values(settings: Settings) -> tuple[list[tuple[int, str, bytes]], list[SignedHead], ed25519.Ed25519PublicKey]:
    with db(settings) as conn:
        rows = [
            (s, e, bytes(h)) for s, e, h in conn.execute("SELECT seq, entry, leaf_hash FROM audit_entries ORDER BY seq")
        ]
    log = open_audit_log(settings)
    heads = log.heads()
    log.engine.dispose()
    return rows, heads, load_public_key(settings.key_dir / "audit-public.pem")


def test_verify_log_on_values_and_on_a_suffix(log60: Settings) -> None:
    rows, heads, key = _values(log60)
    r = verify_log(rows, heads, key)
    assert (r.ok, r.entries_checked, r.heads_checked) == (True, 60, 3)
    leaves = [entry_leaf(e) for _, e, _ in rows]
    suffix = verify_log(rows[20:], heads, key, first_seq=20, prev_of_first=leaves[19].hex(), base_leaves=leaves[:20])
    assert (suffix.ok, suffix.entries_checked, suffix.heads_checked, suffix.first_seq) == (True, 40, 3, 20)
    # a falsified base is caught by the first head that covers it
    bad_base = [*leaves[:5], b"\x00" * 32, *leaves[6:20]]
    r = verify_log(rows[20:], heads, key, first_seq=20, prev_of_first=leaves[19].hex(), base_leaves=bad_base)
    assert not r.ok and r.problem.startswith("tree head at size 20: root does not match the entries")
    assert_fails(
        verify_log(rows[20:], heads, key, first_seq=20, prev_of_first=GENESIS, base_leaves=leaves[:20]),
        20,
        "entry 20: the chain start given for it does not match the preceding leaf",
    )
    assert_fails(
        verify_log(rows[20:], heads, key, first_seq=20, prev_of_first=leaves[19].hex()),
        None,
        "expected 20 leaf hashes of the entries before entry 20, got 0",
    )


def test_verify_log_genesis_and_duplicates(log60: Settings) -> None:
    rows, heads, key = _values(log60)
    assert_fails(
        verify_log([rows[0], rows[1], rows[1]], [], key), 1, "entry 1: out of order (it comes again after entry 1)"
    )
    assert_fails(
        verify_log([rows[0], rows[1], rows[0]], [], key), 0, "entry 0: out of order (it comes again after entry 1)"
    )
    entry = json.loads(rows[0][1])
    entry["prev"] = "ab" * 32
    text = canonical(entry).decode()
    assert_fails(
        verify_log([(0, text, entry_leaf(text))], [], key),
        0,
        "entry 0: its prev is not the genesis value (modified or inserted)",
    )


# --------------------------------------------------------------------------------------------- export
def _flip_in_line(path: Path, line_index: int, old: str, new: str) -> None:
    lines = path.read_text(encoding="utf-8").split("\n")
    assert old in lines[line_index]
    lines[line_index] = lines[line_index].replace(old, new, 1)
    path.write_text("\n".join(lines), encoding="utf-8")


def test_export_and_verify_offline(log60: Settings, tmp_path: Path) -> None:
    out = tmp_path / "out" / "all.jsonl"
    res = export_range(log60, out)
    assert (res.first_seq, res.last_seq, res.entries, res.heads) == (0, 59, 60, 3)
    assert res.sha256 == hashlib.sha256(out.read_bytes()).hexdigest()
    lines = out.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1 + 60 + 3
    header = json.loads(lines[0])
    assert (header["format"], header["first_seq"], header["last_seq"], header["base_leaves"]) == (
        "hub-audit-export/v1",
        0,
        59,
        [],
    )
    assert json.loads(lines[1])["seq"] == 0 and json.loads(lines[-1])["tree_size"] == 60
    key = log60.key_dir / "audit-public.pem"
    r = verify_file(out, key)
    assert (r.ok, r.entries_checked, r.heads_checked, r.last_seq) == (True, 60, 3, 59)
    assert verify_file(out).ok  # embedded key only: consistent with itself


def test_export_of_a_middle_range(log60: Settings, tmp_path: Path) -> None:
    out = tmp_path / "mid.jsonl"
    res = export_range(log60, out, first=20, last=39)
    assert (res.first_seq, res.last_seq, res.entries, res.heads) == (20, 39, 20, 2)
    header = json.loads(out.read_text(encoding="utf-8").split("\n", 1)[0])
    assert len(header["base_leaves"]) == 20 and header["prev_of_first"] == leaf_of(log60, 19).hex()
    r = verify_file(out, log60.key_dir / "audit-public.pem")
    assert (r.ok, r.first_seq, r.last_seq, r.entries_checked, r.heads_checked) == (True, 20, 39, 20, 2)


def test_export_flipped_byte_names_the_entry(log60: Settings, tmp_path: Path) -> None:
    out = tmp_path / "all.jsonl"
    export_range(log60, out)
    _flip_in_line(out, 1 + 27, "CASE-27", "CASE-28")
    assert_fails(
        verify_file(out, log60.key_dir / "audit-public.pem"),
        27,
        "entry 27: content does not match its leaf hash (modified)",
    )


def test_export_broken_line_names_the_entry(log60: Settings, tmp_path: Path) -> None:
    out = tmp_path / "all.jsonl"
    export_range(log60, out)
    _flip_in_line(out, 1 + 33, '{"seq"', "{\"seq'")
    assert_fails(
        verify_file(out, log60.key_dir / "audit-public.pem"),
        33,
        "entry 33: line 35 of the file is not valid JSON (modified)",
    )


def test_export_truncated(log60: Settings, tmp_path: Path) -> None:
    out = tmp_path / "all.jsonl"
    export_range(log60, out)
    lines = out.read_text(encoding="utf-8").splitlines(keepends=True)
    out.write_text("".join(lines[:60] + lines[61:]), encoding="utf-8")  # drop entry 59's line
    assert_fails(
        verify_file(out, log60.key_dir / "audit-public.pem"),
        59,
        "entry 59: missing (the file ends at entry 58 but its header says last_seq 59: truncated)",
    )


def test_export_tampered_head(log60: Settings, tmp_path: Path) -> None:
    out = tmp_path / "all.jsonl"
    export_range(log60, out)
    lines = out.read_text(encoding="utf-8").splitlines()
    head = json.loads(lines[-2])
    head["root_hash"] = "33" * 32
    lines[-2] = json.dumps(head)
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert_fails(verify_file(out, log60.key_dir / "audit-public.pem"), None, "tree head at size 40: bad signature")


def test_export_with_the_wrong_public_key(log60: Settings, tmp_path: Path) -> None:
    out = tmp_path / "all.jsonl"
    export_range(log60, out)
    other_key = ed25519.Ed25519PrivateKey.generate().public_key()
    other = tmp_path / "other.pem"
    other.write_bytes(
        other_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    real = load_public_key(log60.key_dir / "audit-public.pem")
    assert_fails(
        verify_file(out, other),
        None,
        f"the file's public key (fingerprint {key_fingerprint(real)[:16]}…) is not the trusted key "
        f"(fingerprint {key_fingerprint(other_key)[:16]}…)",
    )


def test_export_resigned_by_someone_else(log60: Settings, tmp_path: Path) -> None:
    """A forger who rewrites an entry, re-signs every head and embeds their own key fools only the embedded key."""
    out = tmp_path / "all.jsonl"
    export_range(log60, out)
    lines = out.read_text(encoding="utf-8").splitlines()
    forger = ed25519.Ed25519PrivateKey.generate()
    header = json.loads(lines[0])
    header["public_key_pem"] = (
        forger.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    lines[0] = json.dumps(header)
    for i in range(61, 64):
        head = json.loads(lines[i])
        msg = head_message(head["tree_size"], bytes.fromhex(head["root_hash"]), head["signed_at_ms"])
        head["signature"] = forger.sign(msg).hex()
        lines[i] = json.dumps(head)
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert verify_file(out).ok
    assert not verify_file(out, log60.key_dir / "audit-public.pem").ok


def test_export_bad_range(log60: Settings, tmp_path: Path) -> None:
    with pytest.raises(RequestError, match="no entries 50–70 in the log"):
        export_range(log60, tmp_path / "x.jsonl", 50, 70)


# --------------------------------------------------------------------------------------------- archive
def _age(settings: Settings, below_seq: int) -> None:
    sql(settings, ("UPDATE audit_entries SET at = '2020-06-01 00:00:00.000000' WHERE seq < ?", (below_seq,)))


def test_archive_then_verify(tmp_path: Path) -> None:
    settings = build_log(tmp_path, 65, heads=(20, 40, 60))
    _age(settings, 45)  # entries 0..44 are old; the last head within them is at 40
    res = archive_before(settings, before=datetime(2021, 1, 1, tzinfo=UTC))
    assert res is not None
    assert (res.first_seq, res.last_seq, res.entries) == (0, 39, 40)
    assert res.file == tmp_path / "archive" / "audit-000000000000-000000000039.jsonl"
    with db(settings) as conn:
        assert conn.execute("SELECT min(seq), count(*) FROM audit_entries").fetchone() == (40, 25)
        assert conn.execute("SELECT count(*) FROM audit_subjects WHERE seq < 40").fetchone() == (0,)
        row = conn.execute("SELECT first_seq, last_seq, file, sha256, verified FROM archives").fetchone()
    assert row == (0, 39, str(res.file.resolve()), hashlib.sha256(res.file.read_bytes()).hexdigest(), 1)
    r = verify_store(settings)
    assert (r.ok, r.entries_checked, r.archived_entries, r.archives_checked, r.heads_checked) == (True, 65, 40, 1, 3)
    assert (r.first_seq, r.last_seq, r.unsigned_entries) == (0, 64, 5)
    assert r.summary().startswith("OK: audit log: 65 entries (seq 0–64; 40 of them in 1 archive), 3 signed tree heads,")
    assert verify_file(res.file, settings.key_dir / "audit-public.pem").ok
    # nothing more is old enough
    assert archive_before(settings, before=datetime(2021, 1, 1, tzinfo=UTC)) is None
    # a second archive continues the first
    res2 = archive_before(settings, keep_days=0)
    assert res2 is not None and (res2.first_seq, res2.last_seq) == (40, 59)
    r = verify_store(settings)
    assert (r.ok, r.entries_checked, r.archived_entries, r.archives_checked) == (True, 65, 60, 2)


def test_archive_needs_a_signed_head(tmp_path: Path) -> None:
    settings = build_log(tmp_path, 30, heads=(20,))
    _age(settings, 15)
    assert archive_before(settings, before=datetime(2021, 1, 1, tzinfo=UTC)) is None


def test_export_of_archived_entries_is_refused(tmp_path: Path) -> None:
    settings = build_log(tmp_path, 40, heads=(20, 40))
    _age(settings, 25)
    archive_before(settings, before=datetime(2021, 1, 1, tzinfo=UTC))
    with pytest.raises(RequestError, match="entries before 20 are archived"):
        export_range(settings, tmp_path / "x.jsonl", 0)
    res = export_range(settings, tmp_path / "rest.jsonl", 20)
    assert (res.first_seq, res.last_seq, res.heads) == (20, 39, 2)
    assert verify_file(tmp_path / "rest.jsonl", settings.key_dir / "audit-public.pem").ok


@pytest.fixture
def archived(tmp_path: Path) -> tuple[Settings, Path]:
    settings = build_log(tmp_path, 50, heads=(20, 40, 50))
    _age(settings, 45)
    res = archive_before(settings, before=datetime(2021, 1, 1, tzinfo=UTC))
    assert res is not None and res.last_seq == 39
    return settings, res.file


def test_tampered_archive_file(archived: tuple[Settings, Path]) -> None:
    settings, file = archived
    _flip_in_line(file, 1 + 7, "CASE-7", "CASE-8")
    assert_fails(
        verify_store(settings),
        7,
        f"archive {file.name}: entry 7: content does not match its leaf hash (modified)",
    )


def test_archive_file_changed_outside_the_entries(archived: tuple[Settings, Path]) -> None:
    settings, file = archived
    old = hashlib.sha256(file.read_bytes()).hexdigest()
    _flip_in_line(file, 0, '"exported_at":"', '"exported_at":"X')
    new = hashlib.sha256(file.read_bytes()).hexdigest()
    assert_fails(
        verify_store(settings),
        None,
        f"archive {file.name} (entries 0–39): its SHA-256 is {new}, the archives table says {old}",
    )


def test_missing_archive_file(archived: tuple[Settings, Path]) -> None:
    settings, file = archived
    file.unlink()
    assert_fails(verify_store(settings), 0, f"entry 0: archive file {file.name} (entries 0–39) is missing")


def test_removed_archive_record(archived: tuple[Settings, Path]) -> None:
    settings, file = archived
    sql(settings, "DELETE FROM archives")
    assert_fails(verify_store(settings), 0, "entry 0: missing (the log starts at 40: 40 entries deleted)")


def test_signing_after_archiving_with_the_seeded_log(archived: tuple[Settings, Path]) -> None:
    settings, _ = archived
    opened = open_audit_store(settings, writer=True)
    log = opened.log()
    assert opened.verified_archives().next_seq == 40
    log.write([(body(i), subjects(i)) for i in range(50, 53)])
    head = log.sign_head()
    log.engine.dispose()
    assert head.tree_size == 53
    r = verify_store(settings)
    assert (r.ok, r.entries_checked, r.heads_checked, r.unsigned_entries) == (True, 53, 4, 0)


def test_plain_audit_log_signs_correct_heads_after_archiving(archived: tuple[Settings, Path]) -> None:
    settings, _ = archived
    keys = KeyRing(settings.key_dir)  # as the hub builds its log (hub/app.py): the archived leaves on demand
    key = keys.audit_private_key()
    engine = hub_engine(settings.database_url)
    log = AuditLog(engine, key, keys.pseudonym_key(), archived=lambda: archived_leaves(engine, key.public_key()))
    log.write([(body(i), subjects(i)) for i in range(50, 53)])
    log.sign_head()
    log.engine.dispose()
    assert verify_store(settings).ok
