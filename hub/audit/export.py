"""Export a range of the audit log to one self-contained JSON-lines file, and verify such a file offline.

File format ``hub-audit-export/v1`` (UTF-8, one JSON object per line, ``\\n`` line ends; all hashes and
signatures are lowercase hex):

* line 1, the header::

    {"format": "hub-audit-export/v1", "first_seq": F, "last_seq": L, "entries": L - F + 1, "heads": H,
     "public_key_pem": "-----BEGIN PUBLIC KEY-----...", "key_fingerprint": "<sha256 of the raw key>",
     "prev_of_first": "<hex leaf hash of entry F - 1, or 64 zeros>",
     "base_leaves": ["<hex leaf hash of entry 0>", ..., "<entry F - 1>"], "exported_at": "<ISO-8601>"}

* then one line per entry, in sequence order: ``{"seq": n, "entry": "<canonical JSON text>", "leaf_hash": "<hex>"}``
* then one line per signed tree head of size <= L + 1, by size: ``{"tree_size": n, "root_hash": "<hex>",
  "signed_at": "<ISO-8601, ms>", "signed_at_ms": <the integer the signature covers>, "key_id": "...",
  "signature": "<hex Ed25519 signature over head_message(tree_size, root, signed_at_ms)>"}``

``base_leaves`` are needed because a head's root covers the log from entry 0. They are not trusted on
their own: every head whose size reaches into the range checks them, through its signed root.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import Engine, select

from hub.audit.checkpoint import raw_key
from hub.audit.entry import GENESIS
from hub.audit.head import HeadError, SignedHead, is_hex, key_fingerprint, load_public_key, public_key_from_pem
from hub.audit.verify import EntryRow, VerificationFailure, VerifyReport, check_log
from hub.clock import Clock, system_clock
from hub.db import audit_entries, tree_heads

__all__ = ["FORMAT", "ExportResult", "check_export", "file_sha256", "verify_file", "write_export"]

FORMAT = "hub-audit-export/v1"


@dataclass(frozen=True)
class ExportResult:
    path: Path
    first_seq: int
    last_seq: int
    entries: int
    heads: int
    sha256: str


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_export(
    engine: Engine,
    path: Path,
    public_key_pem: bytes,
    base: list[bytes],
    first: int,
    last: int,
    clock: Clock = system_clock,
) -> int:
    """Write entries ``first..last`` and the heads of size <= last + 1 (atomically: temp file, fsync, rename)."""
    t = audit_entries
    key = public_key_from_pem(public_key_pem)
    tmp = path.with_name(path.name + ".tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    with engine.connect() as conn:
        heads = conn.execute(
            select(tree_heads).where(tree_heads.c.tree_size <= last + 1).order_by(tree_heads.c.tree_size)
        ).all()
        header = {
            "format": FORMAT,
            "first_seq": first,
            "last_seq": last,
            "entries": last - first + 1,
            "heads": len(heads),
            "public_key_pem": public_key_pem.decode("ascii"),
            "key_fingerprint": key_fingerprint(key),
            "prev_of_first": base[-1].hex() if base else GENESIS,
            "base_leaves": [b.hex() for b in base],
            "exported_at": clock().isoformat(timespec="milliseconds"),
        }
        with tmp.open("w", encoding="utf-8", newline="\n") as f:
            f.write(_dumps(header) + "\n")
            rows = conn.execution_options(yield_per=20_000).execute(
                select(t.c.seq, t.c.entry, t.c.leaf_hash).where(t.c.seq >= first, t.c.seq <= last).order_by(t.c.seq)
            )
            for seq, entry, leaf in rows:
                f.write(_dumps({"seq": seq, "entry": entry, "leaf_hash": bytes(leaf).hex()}) + "\n")
            for h in heads:
                f.write(_dumps(SignedHead.from_row(h).to_json()) + "\n")
            f.flush()
            os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)
    return len(heads)


# -- offline verification ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class ExportHeader:
    first_seq: int
    last_seq: int
    public_key: Ed25519PublicKey
    prev_of_first: str
    base_leaves: list[bytes]


def _header(line: bytes) -> ExportHeader:
    def bad(why: str) -> VerificationFailure:
        return VerificationFailure(None, f"line 1 is not a valid {FORMAT} header: {why}")

    try:
        h = json.loads(line)
    except ValueError:
        raise bad("not JSON") from None
    if not isinstance(h, dict) or h.get("format") != FORMAT:
        raise bad("wrong or missing format")
    first, last = h.get("first_seq"), h.get("last_seq")
    if type(first) is not int or type(last) is not int or first < 0 or last < first - 1:
        raise bad("first_seq / last_seq")
    base = h.get("base_leaves")
    if not isinstance(base, list) or not all(is_hex(b, 32) for b in base):
        raise bad("base_leaves must be a list of hex SHA-256 hashes")
    prev = h.get("prev_of_first")
    if not is_hex(prev, 32):
        raise bad("prev_of_first")
    pem = h.get("public_key_pem")
    try:
        key = public_key_from_pem(pem.encode("ascii")) if isinstance(pem, str) else None
    except ValueError:
        key = None
    if key is None:
        raise bad("public_key_pem is not an Ed25519 public key")
    assert isinstance(prev, str)
    return ExportHeader(first, last, key, prev, [bytes.fromhex(b) for b in base])


def _head_line(d: dict[str, Any], line_no: int) -> SignedHead:
    try:
        return SignedHead.from_json(d)
    except HeadError as exc:
        if exc.tree_size is None:
            raise VerificationFailure(None, f"line {line_no}: not a valid tree head line (modified)") from None
        raise VerificationFailure(None, f"tree head at size {exc.tree_size}: {exc.message} (modified)") from None


def _entries(f: IO[bytes], header: ExportHeader, heads: list[SignedHead], line_no: int = 1) -> Iterator[EntryRow]:
    """Entry rows of an export; the head lines that follow them are collected into ``heads``."""
    expected = header.first_seq
    for raw in f:
        line_no += 1
        try:
            d = json.loads(raw)
        except ValueError:
            if b'"tree_size"' in raw:
                raise VerificationFailure(None, f"line {line_no}: not a valid tree head line (modified)") from None
            raise VerificationFailure(
                expected, f"entry {expected}: line {line_no} of the file is not valid JSON (modified)"
            ) from None
        if isinstance(d, dict) and "tree_size" in d:
            heads.append(_head_line(d, line_no))
            break
        if not (
            isinstance(d, dict)
            and type(d.get("seq")) is int
            and isinstance(d.get("entry"), str)
            and is_hex(d.get("leaf_hash"), 32)
        ):
            raise VerificationFailure(
                expected, f"entry {expected}: line {line_no} of the file is not a valid entry line (modified)"
            )
        seq = d["seq"]
        if seq > header.last_seq:
            raise VerificationFailure(seq, f"entry {seq}: after the header's last_seq {header.last_seq} (inserted)")
        yield seq, d["entry"], bytes.fromhex(d["leaf_hash"])
        expected = seq + 1
    if expected <= header.last_seq:
        raise VerificationFailure(
            expected,
            f"entry {expected}: missing (the file ends at entry {expected - 1} but its header says last_seq "
            f"{header.last_seq}: truncated)",
        )
    for raw in f:
        line_no += 1
        try:
            d = json.loads(raw)
        except ValueError:
            raise VerificationFailure(None, f"line {line_no}: not a valid tree head line (modified)") from None
        if not isinstance(d, dict) or "tree_size" not in d:
            raise VerificationFailure(None, f"line {line_no}: an entry line among the tree heads (inserted)")
        heads.append(_head_line(d, line_no))


def check_export(path: Path, trusted: Ed25519PublicKey | None) -> tuple[VerifyReport, ExportHeader | None, list[bytes]]:
    """Verify an export file. Returns the report, the header, and base + recomputed leaves of its entries."""
    with path.open("rb") as f:
        first_line = f.readline()
        try:
            header = _header(first_line)
        except VerificationFailure as fail:
            return VerifyReport(ok=False, problem=fail.problem), None, []
        key = header.public_key
        if trusted is not None:
            if raw_key(trusted) != raw_key(key):
                problem = (
                    f"the file's public key (fingerprint {key_fingerprint(key)[:16]}…) is not the trusted key "
                    f"(fingerprint {key_fingerprint(trusted)[:16]}…)"
                )
                return VerifyReport(ok=False, first_seq=header.first_seq, problem=problem), header, []
            key = trusted
        heads: list[SignedHead] = []
        report, leaves = check_log(
            _entries(f, header, heads), lambda: heads, key, header.first_seq, header.prev_of_first, header.base_leaves
        )
    return report, header, leaves


def verify_file(path: Path, public_key_path: Path | None = None) -> VerifyReport:
    """Verify an export file offline, with the public key the operator trusts (or, without one, the embedded key).

    With ``public_key_path`` the file's embedded key must also equal it. Without it the check only shows the
    file is consistent with *its own* key: compare ``report.key_fingerprint`` with the one you trust.
    """
    trusted = load_public_key(public_key_path) if public_key_path is not None else None
    return check_export(path, trusted)[0]
