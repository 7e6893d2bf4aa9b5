"""Verify the audit log: every entry, the hash chain, and every signed tree head.

The core, :func:`verify_log`, works on values only (no database, no files) so that the same code checks
the live store (:func:`verify_store`), an export file (:func:`hub.audit.export.verify_file`) and an
archive. It reports the *first* problem, naming the entry by its sequence number where one can be named.

Per entry, in order:

1. the row's ``seq`` is exactly the next expected number (a gap means deleted entries);
2. SHA-256(0x00 || entry text) equals the stored leaf hash (otherwise the text was modified);
3. the entry's own JSON ``seq`` equals the row's (otherwise rows were reordered or renumbered);
4. its ``prev`` equals the previous entry's *recomputed* leaf hash (otherwise an entry was replaced,
   together with its leaf hash, or inserted).

Then per signed tree head, in order of size: the Ed25519 signature over :func:`head_message`; the root
equals the Merkle root of the recomputed leaves of the first ``tree_size`` entries; signing times do not
go backwards as the size grows; and an RFC 9162 consistency proof between each pair of consecutive heads
verifies. The heads are what make the log tamper-evident against someone who can rewrite the database:
the chain only localises a change, the signed roots prove it.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from hub.audit.entry import GENESIS, head_message
from hub.audit.merkle import MerkleTree, ProofError, root_from_leaf_hashes, verify_consistency
from hub.settings import Settings

__all__ = [
    "EntryHook",
    "HeadRecord",
    "VerifyReport",
    "key_fingerprint",
    "load_public_key",
    "signed_at_ms",
    "verify_log",
    "verify_store",
]

EntryRow = tuple[int, str, bytes]
EntryHook = Callable[[int, dict[str, Any]], "str | None"]
"""Extra per-entry check: (seq, parsed entry) -> a problem (without the "entry N: " prefix) or None."""


def signed_at_ms(at: datetime) -> int:
    """The millisecond timestamp a head signature covers, computed exactly as ``AuditLog.sign_head`` does."""
    at = at if at.tzinfo else at.replace(tzinfo=UTC)
    return int(at.timestamp() * 1000)


def _ms_iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class HeadRecord:
    """A signed tree head as stored: the signature covers ``head_message(tree_size, root_hash, signed_at_ms)``."""

    tree_size: int
    root_hash: bytes
    signed_at_ms: int
    key_id: str
    signature: bytes

    @classmethod
    def from_row(
        cls, tree_size: int, root_hash: bytes, signed_at: datetime, key_id: str, signature: bytes
    ) -> HeadRecord:
        return cls(int(tree_size), bytes(root_hash), signed_at_ms(signed_at), str(key_id), bytes(signature))


@dataclass
class VerifyReport:
    ok: bool
    entries_checked: int = 0
    heads_checked: int = 0
    first_bad_seq: int | None = None
    problem: str = ""
    first_seq: int = 0
    last_seq: int | None = None  # the last entry checked (None: no entries)
    signed_size: int = 0  # the largest verified tree head: entries below it are covered by a signature
    archives_checked: int = 0
    archived_entries: int = 0  # of entries_checked, how many came from archive files
    seconds: float = 0.0
    key_fingerprint: str = ""

    @property
    def unsigned_entries(self) -> int:
        """Entries after the largest verified head: protected by the hash chain only, not yet by a signature."""
        if self.last_seq is None:
            return 0
        return max(0, self.last_seq + 1 - max(self.signed_size, self.first_seq))

    def summary(self, what: str = "audit log") -> str:
        """One line: ``OK: ...`` with counts and time, or ``FAILED: <problem>``."""
        if not self.ok:
            return f"FAILED: {what}: {self.problem}"
        if self.last_seq is None:
            entries = "0 entries"
        else:
            entries = f"{_n(self.entries_checked, 'entry', 'entries')} (seq {self.first_seq}–{self.last_seq}"
            if self.archives_checked:
                s = "" if self.archives_checked == 1 else "s"
                entries += f"; {self.archived_entries} of them in {self.archives_checked} archive{s}"
            entries += ")"
        heads = _n(self.heads_checked, "signed tree head", "signed tree heads")
        line = f"OK: {what}: {entries}, {heads}, {self.seconds:.2f} s"
        if self.unsigned_entries == 1:
            line += "; the newest entry is not yet covered by a signed tree head"
        elif self.unsigned_entries:
            line += f"; the newest {self.unsigned_entries} entries are not yet covered by a signed tree head"
        return line


def _n(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


class _Fail(Exception):
    def __init__(self, seq: int | None, problem: str) -> None:
        super().__init__(problem)
        self.seq = seq
        self.problem = problem


def load_public_key(path: Path) -> Ed25519PublicKey:
    return public_key_from_pem(path.read_bytes())


def public_key_from_pem(pem: bytes) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(pem)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return key


def raw_public_key(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_fingerprint(key: Ed25519PublicKey) -> str:
    """SHA-256 of the raw 32-byte public key, hex: compare it with the fingerprint you were given."""
    return hashlib.sha256(raw_public_key(key)).hexdigest()


def _peek(it: Iterator[EntryRow]) -> EntryRow | None:
    """The next row, or None at the end or when the next row is itself unreadable."""
    try:
        return next(it, None)
    except _Fail:
        return None


def _own_seq(text: str) -> object:
    try:
        obj = json.loads(text)
        return obj.get("seq") if isinstance(obj, dict) else None
    except ValueError:
        return None


def _own_prev(text: str) -> object:
    try:
        obj = json.loads(text)
        return obj.get("prev") if isinstance(obj, dict) else None
    except ValueError:
        return None


class _Verifier:
    """One verification run. ``leaves`` grows to base leaves + recomputed leaves of the checked entries."""

    def __init__(
        self,
        public_key: Ed25519PublicKey,
        first_seq: int,
        prev_of_first: str,
        base_leaves: Sequence[bytes],
        hook: EntryHook | None,
    ) -> None:
        self.public_key = public_key
        self.first_seq = first_seq
        self.prev_of_first = prev_of_first
        self.leaves: list[bytes] = list(base_leaves)
        self.hook = hook
        self.heads_source: Callable[[], Iterable[HeadRecord]] | None = None
        self.entries_checked = 0
        self.heads_checked = 0
        self.signed_size = 0

    # -- entries --------------------------------------------------------------------------------------------
    def check_base(self) -> None:
        n, first = len(self.leaves), self.first_seq
        if first < 0:
            raise _Fail(None, f"the first sequence number must be >= 0, got {first}")
        if n != first:
            raise _Fail(None, f"expected {first} leaf hashes of the entries before entry {first}, got {n}")
        if any(len(h) != 32 for h in self.leaves):
            raise _Fail(None, "a leaf hash of the entries before the range is not 32 bytes")
        expected = self.leaves[-1].hex() if n else GENESIS
        if self.prev_of_first != expected:
            raise _Fail(first, f"entry {first}: the chain start given for it does not match the preceding leaf")

    def check_entries(self, rows: Iterable[EntryRow]) -> None:
        sha = hashlib.sha256
        loads = json.loads
        leaves = self.leaves
        append = leaves.append
        hook = self.hook
        expected = self.first_seq
        prev_hex = self.prev_of_first
        it = iter(rows)
        try:
            for seq, text, stored in it:
                if seq != expected:
                    self._bad_seq(seq, expected)
                leaf = sha(b"\x00" + text.encode("utf-8")).digest()
                if leaf != stored:
                    raise _Fail(seq, f"entry {seq}: content does not match its leaf hash (modified)")
                try:
                    obj = loads(text)
                    own = obj["seq"]
                    prev = obj["prev"]
                except (ValueError, TypeError, KeyError):
                    raise _Fail(
                        seq,
                        f"entry {seq}: not a JSON object with seq and prev (rewritten together with its leaf hash)",
                    ) from None
                if own != seq or type(own) is not int:
                    self._moved(seq, own, obj, leaf, it)
                if prev != prev_hex:
                    self._broken_link(seq, leaf, prev, it)
                if hook is not None:
                    problem = hook(seq, obj)
                    if problem:
                        raise _Fail(seq, f"entry {seq}: {problem}")
                append(leaf)
                prev_hex = leaf.hex()
                expected += 1
        finally:
            self.entries_checked = len(leaves) - self.first_seq

    def _bad_seq(self, seq: int, expected: int) -> None:
        if seq > expected:
            n = seq - expected
            deleted = "deleted" if n == 1 else f"{n} entries deleted"
            if expected == 0:
                raise _Fail(expected, f"entry {expected}: missing (the log starts at {seq}: {deleted})")
            raise _Fail(expected, f"entry {expected}: missing (sequence jumps from {expected - 1} to {seq}: {deleted})")
        raise _Fail(seq, f"entry {seq}: out of order (it comes again after entry {expected - 1})")

    def _moved(self, seq: int, own: object, obj: dict[str, Any], leaf: bytes, it: Iterator[EntryRow]) -> None:
        if type(own) is not int:
            raise _Fail(seq, f"entry {seq}: its seq field is not an integer (rewritten together with its leaf hash)")
        leaves = self.leaves
        if own < seq:
            if 0 <= own < len(leaves) and leaves[own] == leaf:
                raise _Fail(seq, f"entry {seq}: a copy of entry {own} (duplicated over the original)")
            before = leaves[own - 1].hex() if 0 < own <= len(leaves) else GENESIS if own == 0 else None
            if own >= self.first_seq and obj.get("prev") == before:
                n = seq - own
                what = "a forged entry" if n == 1 else f"{n} forged entries"
                raise _Fail(
                    own,
                    f"entry {own}: inserted ({what}; the original entry {own} and those after it were renumbered up "
                    f"by {n})",
                )
            raise _Fail(seq, f"entry {seq}: out of order: the row holds entry {own} (reordered)")
        nxt = _peek(it)
        if nxt is not None and nxt[0] == seq + 1 and _own_seq(nxt[1]) == own + 1:
            n = own - seq
            deleted = "deleted" if n == 1 else f"{n} entries deleted"
            raise _Fail(seq, f"entry {seq}: missing ({deleted}; the later entries were renumbered down by {n})")
        raise _Fail(seq, f"entry {seq}: out of order: the row holds entry {own} (reordered)")

    def _broken_link(self, seq: int, leaf: bytes, prev: object, it: Iterator[EntryRow]) -> None:
        if seq == 0:
            raise _Fail(0, "entry 0: its prev is not the genesis value (modified or inserted)")
        before = seq - 1
        if before >= self.first_seq:
            # This entry names the leaf entry ``before`` had when it was written. If the next entry still chains
            # to this one, or a signed head's root comes out right with that leaf, this entry is the original
            # and entry ``before`` was rewritten together with its stored leaf hash.
            nxt = _peek(it)
            if nxt is not None and nxt[0] == seq + 1 and _own_prev(nxt[1]) == leaf.hex():
                raise _Fail(
                    before,
                    f"entry {before}: rewritten together with its leaf hash (entry {seq} names a different leaf for "
                    "it)",
                )
            size = self._signed_with(before, prev, [*self.leaves, leaf])
            if size is not None:
                raise _Fail(
                    before,
                    f"entry {before}: rewritten together with its leaf hash (entry {seq} and the tree head at size "
                    f"{size} name a different leaf for it)",
                )
        raise _Fail(seq, f"entry {seq}: out of order / inserted: its prev does not match entry {before}")

    def _signed_with(self, index: int, claimed_hex: object, leaves: list[bytes]) -> int | None:
        """The size of a validly signed head whose root is right if leaf ``index`` were ``claimed_hex``."""
        if self.heads_source is None or not isinstance(claimed_hex, str) or len(claimed_hex) != 64:
            return None
        try:
            claimed = bytes.fromhex(claimed_hex)
        except ValueError:
            return None
        candidate = [*leaves[:index], claimed, *leaves[index + 1 :]]
        for h in self.heads_source():
            if not index < h.tree_size <= len(candidate):
                continue
            try:
                self.public_key.verify(h.signature, head_message(h.tree_size, h.root_hash, h.signed_at_ms))
            except (InvalidSignature, ValueError):
                continue
            if root_from_leaf_hashes(candidate[: h.tree_size]) == h.root_hash:
                return h.tree_size
        return None

    # -- tree heads -----------------------------------------------------------------------------------------
    def check_heads(self, heads: Iterable[HeadRecord]) -> None:
        leaves = self.leaves
        n = len(leaves)
        tree = MerkleTree(leaves)
        prev: HeadRecord | None = None
        for h in sorted(heads, key=lambda h: (h.tree_size, h.signed_at_ms)):
            label = f"tree head at size {h.tree_size}"
            try:
                self.public_key.verify(h.signature, head_message(h.tree_size, h.root_hash, h.signed_at_ms))
            except (InvalidSignature, ValueError):
                raise _Fail(None, f"{label}: bad signature") from None
            if h.tree_size < 0:
                raise _Fail(None, f"{label}: a negative tree size")
            if h.tree_size > n:
                missing = h.tree_size - n
                raise _Fail(
                    n,
                    f"entry {n}: missing ({label} covers {missing} more entr{'y' if missing == 1 else 'ies'} than "
                    f"there are: deleted)",
                )
            root = tree.root(h.tree_size)
            if root != h.root_hash:
                lo = prev.tree_size if prev is not None else 0
                where = f"entry {lo}" if h.tree_size - lo == 1 else f"entries {lo}–{h.tree_size - 1}"
                raise _Fail(
                    lo if h.tree_size - lo == 1 else None,
                    f"{label}: root does not match the entries (signed root {h.root_hash.hex()}, recomputed "
                    f"{root.hex()}); the change is among {where}",
                )
            if prev is not None:
                if h.signed_at_ms < prev.signed_at_ms:
                    raise _Fail(
                        None,
                        f"{label}: signed at {_ms_iso(h.signed_at_ms)}, before the head at size {prev.tree_size} "
                        f"(signed at {_ms_iso(prev.signed_at_ms)})",
                    )
                if prev.tree_size > 0:
                    try:
                        verify_consistency(
                            prev.tree_size,
                            h.tree_size,
                            tree.consistency_proof(prev.tree_size, h.tree_size),
                            prev.root_hash,
                            h.root_hash,
                        )
                    except (ProofError, ValueError):
                        raise _Fail(
                            None, f"tree heads {prev.tree_size} → {h.tree_size}: consistency proof does not verify"
                        ) from None
            prev = h
            self.heads_checked += 1
            self.signed_size = max(self.signed_size, h.tree_size)


def _run(
    rows: Iterable[EntryRow],
    heads: Iterable[HeadRecord] | Callable[[], Iterable[HeadRecord]],
    public_key: Ed25519PublicKey,
    first_seq: int,
    prev_of_first: str,
    base_leaves: Sequence[bytes],
    hook: EntryHook | None = None,
) -> tuple[VerifyReport, list[bytes]]:
    """Verify; return the report and base leaves + recomputed leaves of every entry that passed."""
    started = time.perf_counter()
    v = _Verifier(public_key, first_seq, prev_of_first, base_leaves, hook)
    if callable(heads):
        v.heads_source = heads
    else:
        head_list = list(heads)
        v.heads_source = lambda: head_list
    report = VerifyReport(ok=True, first_seq=first_seq, key_fingerprint=key_fingerprint(public_key))
    try:
        v.check_base()
        v.check_entries(rows)
        v.check_heads(v.heads_source())
    except _Fail as fail:
        report.ok = False
        report.first_bad_seq = fail.seq
        report.problem = fail.problem
    report.entries_checked = v.entries_checked
    report.heads_checked = v.heads_checked
    report.signed_size = v.signed_size
    report.last_seq = first_seq + v.entries_checked - 1 if v.entries_checked else None
    report.seconds = time.perf_counter() - started
    return report, v.leaves


def verify_log(
    entries: Iterable[tuple[int, str, bytes]],
    heads: Sequence[HeadRecord],
    public_key: Ed25519PublicKey,
    first_seq: int = 0,
    prev_of_first: str = GENESIS,
    base_leaves: Sequence[bytes] = (),
) -> VerifyReport:
    """Verify entries ``(seq, entry_text, stored_leaf_hash)`` in seq order and the signed ``heads``.

    ``first_seq``/``prev_of_first``/``base_leaves`` describe what comes before the first entry when only a
    suffix is checked (after archiving, or for an export): ``base_leaves`` are the leaf hashes of entries
    ``0 .. first_seq - 1`` (needed because a head's root covers the log from entry 0) and ``prev_of_first``
    must be the hex of the last of them (``GENESIS`` when ``first_seq == 0``).
    """
    return _run(entries, heads, public_key, first_seq, prev_of_first, base_leaves)[0]


# -- the live store ---------------------------------------------------------------------------------------------
_COLUMNS = ("request_id", "client_id", "department", "officer", "purpose", "case_ref", "decision")
_C0, _C1, _C2, _C3, _C4, _C5, _C6 = _COLUMNS


def checkpoint_problem(leaves: Sequence[bytes], tree_size: int, root_hash: bytes) -> tuple[int, str] | None:
    """Compare the log's recomputed ``leaves`` with a (witnessed) checkpoint: None if the log extends it, else
    (first bad seq, problem). A log shorter than the checkpoint was shortened after it was witnessed."""
    n = len(leaves)
    if n < tree_size:
        return n, (
            f"entries {n}–{tree_size - 1} are missing: the log was shortened after a checkpoint of size "
            f"{tree_size} was witnessed"
        )
    if root_from_leaf_hashes(leaves[:tree_size]) != root_hash:
        return 0, (
            f"the first {tree_size} entries do not match the witnessed checkpoint of size {tree_size}: "
            "the log was rewritten (or shortened and refilled) after it was witnessed"
        )
    return None


def verify_store(
    settings: Settings, public_key_path: Path | None = None, checkpoint: tuple[int, bytes] | None = None
) -> VerifyReport:
    """Verify the hub database's audit log, starting from its verified archive files (if any).

    The heads are checked against ``public_key_path`` when given (the key the operator trusts), otherwise
    against ``<data_dir>/keys/audit-public.pem``. ``checkpoint`` (tree size, root hash), from a checkpoint a
    witness cosigned and whose signatures the caller checked, must be a prefix of the log. Besides the log
    itself, the denormalised columns of ``audit_entries`` and the ``audit_subjects`` index are compared with
    the signed entries, because searches and residents' access reports rely on them.
    """
    from sqlalchemy import select

    from hub.audit.archive import archived_state
    from hub.db import audit_entries, audit_subjects, hub_engine, tree_heads, upgrade

    started = time.perf_counter()
    key_path = public_key_path or settings.key_dir / "audit-public.pem"
    if not key_path.exists():
        return VerifyReport(ok=False, problem=f"no audit public key at {key_path}")
    public_key = load_public_key(key_path)
    upgrade(settings.database_url)
    engine = hub_engine(settings.database_url)
    try:
        state = archived_state(settings, engine, public_key)
        if state.report is not None and not state.report.ok:
            state.report.seconds = time.perf_counter() - started
            return state.report
        first = state.next_seq
        base = state.leaves
        with engine.connect() as conn, engine.connect() as subj_conn:
            t = audit_entries
            result = conn.execution_options(yield_per=20_000).execute(
                select(t.c.seq, t.c.entry, t.c.leaf_hash, *(t.c[c] for c in _COLUMNS)).order_by(t.c.seq)
            )
            subjects = iter(
                subj_conn.execution_options(yield_per=20_000).execute(
                    select(audit_subjects.c.seq, audit_subjects.c.subject).order_by(
                        audit_subjects.c.seq, audit_subjects.c.subject
                    )
                )
            )
            current: list[Any] = [None]
            pending: list[Any] = [next(subjects, None)]

            def rows() -> Iterator[EntryRow]:
                for r in result:
                    current[0] = r
                    leaf = r[2]
                    yield r[0], r[1], leaf if type(leaf) is bytes else bytes(leaf)

            def hook(seq: int, obj: dict[str, Any]) -> str | None:
                row = current[0]
                get = obj.get
                signed = (get(_C0), get(_C1), get(_C2), get(_C3), get(_C4), get(_C5), get(_C6))
                if row[3:10] != signed:
                    col = next(c for c, a, b in zip(_COLUMNS, row[3:10], signed, strict=True) if a != b)
                    return f"the {col} column differs from the signed entry (index tampered)"
                found = []
                nxt = pending[0]
                while nxt is not None and nxt[0] <= seq:
                    if nxt[0] < seq:
                        return (
                            f"audit_subjects names entry {nxt[0]} out of order or for an entry that is not "
                            "there (index tampered)"
                        )
                    found.append(nxt[1])
                    nxt = next(subjects, None)
                pending[0] = nxt
                listed = get("subjects", [])
                refused = get("refused_subjects")  # entry v2: residents named in a refused request
                if refused:
                    listed = listed + refused if isinstance(listed, list) and isinstance(refused, list) else None
                if found == listed:  # the usual case: the gateway writes them sorted
                    return None
                if (
                    not isinstance(listed, list)
                    or not all(isinstance(x, str) for x in listed)
                    or found != sorted(listed)
                ):
                    return "its audit_subjects rows differ from the subjects in the signed entry (index tampered)"
                return None

            def heads() -> list[HeadRecord]:
                return [
                    HeadRecord.from_row(r.tree_size, r.root_hash, r.signed_at, r.key_id, r.signature)
                    for r in conn.execute(select(tree_heads).order_by(tree_heads.c.tree_size))
                ]

            prev = base[-1].hex() if base else GENESIS
            report, leaves = _run(rows(), heads, public_key, first, prev, base, hook)
            if report.ok and pending[0] is not None:
                s = pending[0][0]
                report.ok, report.first_bad_seq = False, s
                report.problem = (
                    f"entry {s}: audit_subjects has rows for it but the entry is not there (index tampered)"
                )
            if report.ok and checkpoint is not None:
                bad = checkpoint_problem(leaves, *checkpoint)
                if bad is not None:
                    report.ok, (report.first_bad_seq, report.problem) = False, bad
    finally:
        engine.dispose()
    if state.archives:
        report.first_seq = 0
        report.archives_checked = len(state.archives)
        report.archived_entries = first
        report.entries_checked += first
        if report.last_seq is None:
            report.last_seq = first - 1
    report.seconds = time.perf_counter() - started
    return report
