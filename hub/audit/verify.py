"""Verify the audit log: every entry, the hash chain, and every signed tree head.

The core, :func:`check_log`, works on values only (no settings, no database, no files) so that the same code
checks the live store (:func:`hub.audit.store.verify_store`), an export file (:func:`hub.audit.export.verify_file`)
and an archive. It reports the *first* problem, naming the entry by its sequence number where one can be named.

Per entry, in order:

1. the row's ``seq`` is exactly the next expected number (a gap means deleted entries);
2. SHA-256(0x00 || entry text) equals the stored leaf hash (otherwise the text was modified);
3. the entry's own JSON ``seq`` equals the row's (otherwise rows were reordered or renumbered);
4. its ``prev`` equals the previous entry's *recomputed* leaf hash (otherwise an entry was replaced,
   together with its leaf hash, or inserted).

Then per signed tree head, in order of size: the Ed25519 signature over :func:`head_message`; the root
equals the Merkle root of the recomputed leaves of the first ``tree_size`` entries; signing times do not
go backwards as the size grows. Consecutive heads are consistent (RFC 9162) by construction: both roots are
recomputed from the same leaves. The heads are what make the log tamper-evident against someone who can rewrite
the database: the chain only localises a change, the signed roots prove it.

:func:`stream_log` does this in O(log n) memory: the entries are streamed, only the right edge of the tree is kept
(:class:`hub.audit.merkle.CompactRange`) and each head is checked as the entries pass its size (a head's failure
is reported only if no entry fails). :func:`check_log` also returns every recomputed leaf (exports, archives).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from hub.audit.entry import GENESIS
from hub.audit.head import SignedHead, key_fingerprint
from hub.audit.merkle import EMPTY_ROOT, CompactRange, fold_in, root_from_leaf_hashes

__all__ = [
    "EntryHook",
    "EntryRow",
    "IndexedRow",
    "VerificationFailure",
    "VerifyReport",
    "check_log",
    "checkpoint_problem",
    "checkpoint_root_problem",
    "stream_log",
    "stream_store",
    "verify_log",
]

EntryRow = tuple[int, str, bytes]
IndexedRow = tuple[Any, ...]
"""A row of the live store for :func:`stream_store`: (seq, entry text as UTF-8 bytes, stored leaf hash, *columns)."""
EntryHook = Callable[[int, dict[str, Any]], "str | None"]
"""Extra per-entry check: (seq, parsed entry) -> a problem (without the "entry N: " prefix) or None."""


def _ms_iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


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


class VerificationFailure(Exception):
    """The first problem found (control flow inside verification: callers get a :class:`VerifyReport`)."""

    def __init__(self, seq: int | None, problem: str) -> None:
        super().__init__(problem)
        self.seq = seq
        self.problem = problem


def _seq_and_prev(seq: int, text: str | bytes) -> tuple[dict[str, Any], Any, Any]:
    """The entry's JSON object with its own ``seq`` and ``prev`` (one call per entry in both verify loops)."""
    try:
        obj = orjson.loads(text)
        return obj, obj["seq"], obj["prev"]
    except (ValueError, TypeError, KeyError):
        raise VerificationFailure(
            seq, f"entry {seq}: not a JSON object with seq and prev (rewritten together with its leaf hash)"
        ) from None


def _same_leaf(leaf: bytes, stored: object) -> bool:
    """The stored leaf hash as the driver gave it (bytes, or a memoryview/bytearray) equals ``leaf``."""
    return isinstance(stored, bytes | bytearray | memoryview) and bytes(stored) == leaf


def _peek(it: Iterator[EntryRow]) -> EntryRow | None:
    """The next row, or None at the end or when the next row is itself unreadable."""
    try:
        return next(it, None)
    except VerificationFailure:
        return None


def _own(text: str, key: str) -> object:
    """The entry's own ``seq`` or ``prev`` field (None when the text is not a JSON object)."""
    try:
        obj = json.loads(text)
        return obj.get(key) if isinstance(obj, dict) else None
    except ValueError:
        return None


class _Verifier:
    """One verification run, streaming: only the right edge of the tree (:class:`CompactRange`) is kept.

    Each signed head is checked the moment the entries reach its size (root recomputed from the compact range);
    a head that fails is remembered and reported only if no entry fails (entries are named first, as a whole-log
    check would). ``leaves`` (base + recomputed leaves) is kept only when the caller asks for it (exports and
    archives return them); otherwise an earlier leaf, needed only to explain a failure, comes from ``leaf_at``.
    """

    def __init__(
        self,
        public_key: Ed25519PublicKey,
        first_seq: int,
        prev_of_first: str,
        base_leaves: Sequence[bytes],
        hook: EntryHook | None,
        keep_leaves: bool = True,
        leaf_at: Callable[[int], bytes | None] | None = None,
        roots_at: Iterable[int] = (),
    ) -> None:
        self.public_key = public_key
        self.first_seq = first_seq
        self.prev_of_first = prev_of_first
        self.base = base_leaves
        self.leaves: list[bytes] | None = list(base_leaves) if keep_leaves else None
        self.leaf_at = leaf_at
        self.hook = hook
        self.heads_source: Callable[[], Iterable[SignedHead]] | None = None
        self.range = CompactRange()
        self.folded: Sequence[bytes] = []  # the left siblings the last entry's leaf was folded with
        self.heads: list[SignedHead] = []
        self.next_head = 0
        self.prev_head: SignedHead | None = None
        self.head_failure: VerificationFailure | None = None
        self.roots_at = set(roots_at)
        self.roots: dict[int, bytes] = {}
        self.entries_checked = 0
        self.heads_checked = 0
        self.signed_size = 0

    def _leaf(self, index: int) -> bytes | None:
        """The (verified) leaf hash of an entry before the current one."""
        if self.leaves is not None:
            return self.leaves[index] if 0 <= index < len(self.leaves) else None
        if 0 <= index < len(self.base):
            return self.base[index]
        return self.leaf_at(index) if self.leaf_at is not None else None

    # -- entries --------------------------------------------------------------------------------------------
    def check_base(self) -> None:
        base, first = self.base, self.first_seq
        n = len(base)
        if first < 0:
            raise VerificationFailure(None, f"the first sequence number must be >= 0, got {first}")
        if n != first:
            raise VerificationFailure(
                None, f"expected {first} leaf hashes of the entries before entry {first}, got {n}"
            )
        if any(len(h) != 32 for h in base):
            raise VerificationFailure(None, "a leaf hash of the entries before the range is not 32 bytes")
        expected = base[-1].hex() if n else GENESIS
        if self.prev_of_first != expected:
            raise VerificationFailure(
                first, f"entry {first}: the chain start given for it does not match the preceding leaf"
            )
        self._heads_at(0)
        for h in base:
            self._add(h)

    def _add(self, leaf: bytes) -> None:
        self.range.append(leaf)
        self._reached(self.range.size)

    def _reached(self, size: int) -> None:
        """The range now holds ``size`` leaves: record a wanted root, check the heads of this size."""
        if size in self.roots_at:
            self.roots[size] = self.range.root()
        heads = self.heads
        i = self.next_head
        if i < len(heads) and heads[i].tree_size <= size:
            self._heads_at(size)

    def _undo_last(self) -> CompactRange:
        """The range without its last leaf (only to explain a rewritten entry): the hot loop does not copy it,
        it keeps the left siblings the last leaf was folded with (``self.folded``)."""
        r = self.range.copy()
        if r.size == 0:
            return r
        stack = r._stack
        stack.pop()
        stack.extend(reversed(self.folded))
        r.size -= 1
        return r

    def check_entries(self, rows: Iterable[EntryRow]) -> None:
        leaf_ctx = hashlib.sha256(b"\x00").copy  # as in check_indexed: a copied context, not a new one
        leaves = self.leaves
        keep = leaves.append if leaves is not None else None
        hook = self.hook
        expected = self.first_seq
        prev_hex = self.prev_of_first
        # the compact range's append on its stack (``fold_in``): ``folded`` keeps the left siblings the newest leaf
        # was hashed with, so that the range without it can be rebuilt when a failure needs it
        r = self.range
        stack = r._stack
        wanted = self.roots_at
        heads = self.heads
        next_size = heads[self.next_head].tree_size if self.next_head < len(heads) else -1
        it = iter(rows)
        try:
            for seq, text, stored in it:
                if seq != expected:
                    self._bad_seq(seq, expected)
                hl = leaf_ctx()
                hl.update(text.encode("utf-8"))
                leaf = hl.digest()
                if leaf != stored:
                    raise VerificationFailure(seq, f"entry {seq}: content does not match its leaf hash (modified)")
                obj, own, prev = _seq_and_prev(seq, text)
                if own != seq or type(own) is not int:
                    self._moved(seq, own, obj, leaf, it)
                if prev != prev_hex:
                    self._broken_link(seq, leaf, prev, it)
                if hook is not None:
                    problem = hook(seq, obj)
                    if problem:
                        raise VerificationFailure(seq, f"entry {seq}: {problem}")
                if keep is not None:
                    keep(leaf)
                self.folded = fold_in(stack, r.size, leaf)
                r.size += 1
                if r.size == next_size or (wanted and r.size in wanted):
                    self._reached(r.size)
                    next_size = heads[self.next_head].tree_size if self.next_head < len(heads) else -1
                prev_hex = leaf.hex()
                expected += 1
        finally:
            self.entries_checked = expected - self.first_seq

    def check_indexed(
        self, rows: Iterable[IndexedRow], subjects: Iterator[tuple[int, str]], columns: Sequence[str]
    ) -> tuple[int, str] | None:
        """:meth:`check_entries` for the live store, with its index checks inlined (the hot loop of ``hub audit
        verify``; the same checks, in the same order, with the same messages, as check_entries with the store's
        hook): rows are ``(seq, entry bytes, stored leaf hash, *columns)``; each entry's ``columns`` must equal
        its signed fields, and ``subjects`` (``audit_subjects`` rows ordered by seq, subject) must list exactly
        its ``subjects`` and ``refused_subjects``. Returns the first ``audit_subjects`` row after the last entry
        (None when there is none: otherwise it names an entry that is not there)."""
        # SHA-256 from a copy of a context already fed the 0x00 / 0x01 prefix: OpenSSL 3 makes a new context per
        # hashlib.sha256() call, about as costly as hashing the ~1 KB entry itself (bench/README.md)
        leaf_ctx = hashlib.sha256(b"\x00").copy
        signed_columns = itemgetter(*columns)
        expected = self.first_seq
        prev_hex = self.prev_of_first
        r = self.range
        stack = r._stack
        wanted = self.roots_at
        heads = self.heads
        next_size = heads[self.next_head].tree_size if self.next_head < len(heads) else -1
        next_subject = next
        nxt = next_subject(subjects, None)
        size = r.size
        folded: Sequence[bytes] = self.folded
        it = iter(rows)
        try:
            for row in it:
                seq = row[0]
                if seq != expected:
                    self._bad_seq(seq, expected)
                hl = leaf_ctx()
                hl.update(row[1])
                leaf = hl.digest()
                if leaf != row[2] and not _same_leaf(leaf, row[2]):
                    raise VerificationFailure(seq, f"entry {seq}: content does not match its leaf hash (modified)")
                obj, own, prev = _seq_and_prev(seq, row[1])
                if own != seq or type(own) is not int:
                    self._moved(seq, own, obj, leaf, it)
                if prev != prev_hex:
                    self.folded = list(folded)
                    self._broken_link(seq, leaf, prev, it)
                # the index: the denormalised columns, then the audit_subjects rows
                get = obj.get
                try:
                    signed = signed_columns(obj)
                except KeyError:
                    signed = tuple(get(c) for c in columns)
                if row[3:] != signed:
                    col = next(c for c, a, b in zip(columns, row[3:], signed, strict=True) if a != b)
                    raise VerificationFailure(
                        seq, f"entry {seq}: the {col} column differs from the signed entry (index tampered)"
                    )
                found = []
                while nxt is not None and nxt[0] <= seq:
                    if nxt[0] < seq:
                        raise VerificationFailure(
                            seq,
                            f"entry {seq}: audit_subjects names entry {nxt[0]} out of order or for an entry that is "
                            "not there (index tampered)",
                        )
                    found.append(nxt[1])
                    nxt = next_subject(subjects, None)
                listed = get("subjects", [])
                refused = get("refused_subjects")  # entry v2: residents named in a refused request
                if refused:
                    listed = listed + refused if isinstance(listed, list) and isinstance(refused, list) else None
                if found != listed and (
                    not isinstance(listed, list)
                    or not all(isinstance(x, str) for x in listed)
                    or found != sorted(listed)
                ):
                    raise VerificationFailure(
                        seq,
                        f"entry {seq}: its audit_subjects rows differ from the subjects in the signed entry (index "
                        "tampered)",
                    )
                # ``folded`` is kept in a local and given to ``self.folded`` only before a failure needs it
                folded = fold_in(stack, size, leaf)
                size += 1
                r.size = size
                if size == next_size or (wanted and size in wanted):
                    self.folded = folded
                    self._reached(size)
                    next_size = heads[self.next_head].tree_size if self.next_head < len(heads) else -1
                prev_hex = leaf.hex()
                expected += 1
        finally:
            self.entries_checked = expected - self.first_seq
        return nxt

    def _bad_seq(self, seq: int, expected: int) -> None:
        if seq > expected:
            n = seq - expected
            deleted = "deleted" if n == 1 else f"{n} entries deleted"
            if expected == 0:
                raise VerificationFailure(expected, f"entry {expected}: missing (the log starts at {seq}: {deleted})")
            raise VerificationFailure(
                expected, f"entry {expected}: missing (sequence jumps from {expected - 1} to {seq}: {deleted})"
            )
        raise VerificationFailure(seq, f"entry {seq}: out of order (it comes again after entry {expected - 1})")

    def _moved(self, seq: int, own: object, obj: dict[str, Any], leaf: bytes, it: Iterator[EntryRow]) -> None:
        if type(own) is not int:
            raise VerificationFailure(
                seq, f"entry {seq}: its seq field is not an integer (rewritten together with its leaf hash)"
            )
        if own < seq:  # entries 0 .. seq - 1 have been checked: their leaves are known
            if 0 <= own and self._leaf(own) == leaf:
                raise VerificationFailure(seq, f"entry {seq}: a copy of entry {own} (duplicated over the original)")
            before_leaf = self._leaf(own - 1) if 0 < own else None
            before = before_leaf.hex() if before_leaf is not None else GENESIS if own == 0 else None
            if own >= self.first_seq and obj.get("prev") == before:
                n = seq - own
                what = "a forged entry" if n == 1 else f"{n} forged entries"
                raise VerificationFailure(
                    own,
                    f"entry {own}: inserted ({what}; the original entry {own} and those after it were renumbered up "
                    f"by {n})",
                )
            raise VerificationFailure(seq, f"entry {seq}: out of order: the row holds entry {own} (reordered)")
        nxt = _peek(it)
        if nxt is not None and nxt[0] == seq + 1 and _own(nxt[1], "seq") == own + 1:
            n = own - seq
            deleted = "deleted" if n == 1 else f"{n} entries deleted"
            raise VerificationFailure(
                seq, f"entry {seq}: missing ({deleted}; the later entries were renumbered down by {n})"
            )
        raise VerificationFailure(seq, f"entry {seq}: out of order: the row holds entry {own} (reordered)")

    def _broken_link(self, seq: int, leaf: bytes, prev: object, it: Iterator[EntryRow]) -> None:
        if seq == 0:
            raise VerificationFailure(0, "entry 0: its prev is not the genesis value (modified or inserted)")
        before = seq - 1
        if before >= self.first_seq:
            # This entry names the leaf entry ``before`` had when it was written. If the next entry still chains
            # to this one, or a signed head's root comes out right with that leaf, this entry is the original
            # and entry ``before`` was rewritten together with its stored leaf hash.
            nxt = _peek(it)
            if nxt is not None and nxt[0] == seq + 1 and _own(nxt[1], "prev") == leaf.hex():
                raise VerificationFailure(
                    before,
                    f"entry {before}: rewritten together with its leaf hash (entry {seq} names a different leaf for "
                    "it)",
                )
            size = self._signed_with(before, prev, leaf)
            if size is not None:
                raise VerificationFailure(
                    before,
                    f"entry {before}: rewritten together with its leaf hash (entry {seq} and the tree head at size "
                    f"{size} name a different leaf for it)",
                )
        raise VerificationFailure(seq, f"entry {seq}: out of order / inserted: its prev does not match entry {before}")

    def _signed_with(self, index: int, claimed_hex: object, leaf: bytes) -> int | None:
        """The size of a validly signed head whose root is right if leaf ``index`` (the last one added) were
        ``claimed_hex`` and the next leaf ``leaf``: only heads of size ``index + 1`` or ``index + 2`` qualify."""
        if self.heads_source is None or not isinstance(claimed_hex, str) or len(claimed_hex) != 64:
            return None
        try:
            claimed = bytes.fromhex(claimed_hex)
        except ValueError:
            return None
        if self.range.size != index + 1:
            return None
        candidate = self._undo_last()  # index >= first_seq: the last leaf came through the entries' loop
        candidate.append(claimed)
        roots = {index + 1: candidate.root()}
        candidate.append(leaf)
        roots[index + 2] = candidate.root()
        for h in self.heads_source():
            if h.tree_size not in roots:
                continue
            if not h.verifies(self.public_key):
                continue
            if roots[h.tree_size] == h.root_hash:
                return h.tree_size
        return None

    # -- tree heads -----------------------------------------------------------------------------------------
    def start_heads(self, heads: Iterable[SignedHead]) -> None:
        self.heads = sorted(heads, key=lambda h: (h.tree_size, h.signed_at_ms))

    def _heads_at(self, size: int) -> None:
        """Check every pending head of at most ``size`` leaves (the range holds exactly ``size`` leaves)."""
        heads = self.heads
        while self.next_head < len(heads) and heads[self.next_head].tree_size <= size:
            h = heads[self.next_head]
            self.next_head += 1
            try:
                self._check_head(h, size)
            except VerificationFailure as fail:
                self.head_failure = fail
                self.next_head = len(heads)  # later heads are not reported: the first bad one is

    def replay(self) -> None:
        """Recompute the range from the kept leaves, checking every head on the way."""
        assert self.leaves is not None
        self.range = CompactRange()
        self._heads_at(0)
        for leaf in self.leaves:
            self._add(leaf)

    def finish_heads(self) -> None:
        """After the last entry: report a head that failed, then check the heads beyond the log."""
        if self.head_failure is not None:
            raise self.head_failure
        n = self.range.size
        for h in self.heads[self.next_head :]:
            self._check_head(h, n)

    def _check_head(self, h: SignedHead, n: int) -> None:
        label = f"tree head at size {h.tree_size}"
        if not h.verifies(self.public_key):
            raise VerificationFailure(None, f"{label}: bad signature")
        if h.tree_size < 0:
            raise VerificationFailure(None, f"{label}: a negative tree size")
        if h.tree_size > n:
            missing = h.tree_size - n
            raise VerificationFailure(
                n,
                f"entry {n}: missing ({label} covers {missing} more entr{'y' if missing == 1 else 'ies'} than "
                f"there are: deleted)",
            )
        root = self.range.root()
        prev = self.prev_head
        if root != h.root_hash:
            lo = prev.tree_size if prev is not None else 0
            where = f"entry {lo}" if h.tree_size - lo == 1 else f"entries {lo}–{h.tree_size - 1}"
            raise VerificationFailure(
                lo if h.tree_size - lo == 1 else None,
                f"{label}: root does not match the entries (signed root {h.root_hash.hex()}, recomputed "
                f"{root.hex()}); the change is among {where}",
            )
        if prev is not None and h.signed_at_ms < prev.signed_at_ms:
            raise VerificationFailure(
                None,
                f"{label}: signed at {_ms_iso(h.signed_at_ms)}, before the head at size {prev.tree_size} "
                f"(signed at {_ms_iso(prev.signed_at_ms)})",
            )
        # Both roots were recomputed from the same leaves, so the RFC 9162 consistency proof between consecutive
        # heads (a proof built from those leaves) holds by construction: each head is a prefix of the next.
        self.prev_head = h
        self.heads_checked += 1
        self.signed_size = max(self.signed_size, h.tree_size)


def check_log(
    rows: Iterable[EntryRow],
    heads: Iterable[SignedHead] | Callable[[], Iterable[SignedHead]],
    public_key: Ed25519PublicKey,
    first_seq: int,
    prev_of_first: str,
    base_leaves: Sequence[bytes],
    hook: EntryHook | None = None,
) -> tuple[VerifyReport, list[bytes]]:
    """Verify entries and heads; return the report and base + recomputed leaves of every entry that passed.

    ``heads`` may be a callable (read again when a broken link is explained by a signed root). This keeps every
    leaf (an export or archive returns them); :func:`stream_log` checks the same in O(log n) memory."""
    report, v = _run(rows, heads, public_key, first_seq, prev_of_first, base_leaves, hook, True, None, ())
    assert v.leaves is not None
    return report, v.leaves


def stream_log(
    rows: Iterable[EntryRow],
    heads: Iterable[SignedHead] | Callable[[], Iterable[SignedHead]],
    public_key: Ed25519PublicKey,
    first_seq: int,
    prev_of_first: str,
    base_leaves: Sequence[bytes],
    hook: EntryHook | None = None,
    leaf_at: Callable[[int], bytes | None] | None = None,
    roots_at: Iterable[int] = (),
) -> tuple[VerifyReport, int, dict[int, bytes]]:
    """:func:`check_log` without keeping the leaves: memory O(log n) beyond ``base_leaves`` and the heads.

    Returns the report, the number of leaves recomputed (base included) and the roots of the prefixes whose sizes
    are in ``roots_at`` (for a witnessed checkpoint). ``leaf_at(i)`` gives the leaf hash of an already checked
    entry ``i`` (its stored leaf hash, which equals the recomputed one): only needed to name a duplicated or
    inserted entry precisely."""
    report, v = _run(rows, heads, public_key, first_seq, prev_of_first, base_leaves, hook, False, leaf_at, roots_at)
    return report, v.range.size, v.roots


def stream_store(
    rows: Iterable[IndexedRow],
    subjects: Iterator[tuple[int, str]],
    columns: Sequence[str],
    heads: Iterable[SignedHead] | Callable[[], Iterable[SignedHead]],
    public_key: Ed25519PublicKey,
    first_seq: int,
    prev_of_first: str,
    base_leaves: Sequence[bytes],
    leaf_at: Callable[[int], bytes | None] | None = None,
    roots_at: Iterable[int] = (),
) -> tuple[VerifyReport, int, dict[int, bytes], tuple[int, str] | None]:
    """:func:`stream_log` over the live store's rows with its index checks inlined (:meth:`_Verifier.check_indexed`,
    the fast path of ``hub audit verify``). Also returns the first ``audit_subjects`` row left after the entries
    (None when there is none)."""
    left: list[tuple[int, str] | None] = [None]

    def entries(v: _Verifier) -> None:
        left[0] = v.check_indexed(rows, subjects, columns)

    report, v = _run(
        (), heads, public_key, first_seq, prev_of_first, base_leaves, None, False, leaf_at, roots_at, entries
    )
    return report, v.range.size, v.roots, left[0]


def _run(
    rows: Iterable[EntryRow],
    heads: Iterable[SignedHead] | Callable[[], Iterable[SignedHead]],
    public_key: Ed25519PublicKey,
    first_seq: int,
    prev_of_first: str,
    base_leaves: Sequence[bytes],
    hook: EntryHook | None,
    keep_leaves: bool,
    leaf_at: Callable[[int], bytes | None] | None,
    roots_at: Iterable[int],
    entries: Callable[[_Verifier], None] | None = None,
) -> tuple[VerifyReport, _Verifier]:
    started = time.perf_counter()
    v = _Verifier(public_key, first_seq, prev_of_first, base_leaves, hook, keep_leaves, leaf_at, roots_at)
    report = VerifyReport(ok=True, first_seq=first_seq, key_fingerprint=key_fingerprint(public_key))
    try:
        if callable(heads):
            v.heads_source = heads
        else:
            head_list = list(heads)
            v.heads_source = lambda: head_list
        if keep_leaves:
            # An export's heads follow its entries in the file (its source fills as the rows are read): check
            # the entries, then the heads over the kept leaves.
            v.check_base()
            v.check_entries(rows)
            v.start_heads(v.heads_source())
            v.replay()
        else:
            v.start_heads(v.heads_source())
            v.check_base()
            if entries is not None:
                entries(v)
            else:
                v.check_entries(rows)
        v.finish_heads()
    except VerificationFailure as fail:
        report.ok = False
        report.first_bad_seq = fail.seq
        report.problem = fail.problem
    report.entries_checked = v.entries_checked
    report.heads_checked = v.heads_checked
    report.signed_size = v.signed_size
    report.last_seq = first_seq + v.entries_checked - 1 if v.entries_checked else None
    report.seconds = time.perf_counter() - started
    return report, v


def verify_log(
    entries: Iterable[tuple[int, str, bytes]],
    heads: Sequence[SignedHead],
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
    return check_log(entries, heads, public_key, first_seq, prev_of_first, base_leaves)[0]


def checkpoint_problem(leaves: Sequence[bytes], tree_size: int, root_hash: bytes) -> tuple[int, str] | None:
    """Compare the log's recomputed ``leaves`` with a (witnessed) checkpoint: None if the log extends it, else
    (first bad seq, problem). A log shorter than the checkpoint was shortened after it was witnessed."""
    n = len(leaves)
    recomputed = root_from_leaf_hashes(leaves[:tree_size]) if n >= tree_size else None
    return checkpoint_root_problem(n, recomputed, tree_size, root_hash)


def checkpoint_root_problem(
    n: int, recomputed: bytes | None, tree_size: int, root_hash: bytes
) -> tuple[int, str] | None:
    """:func:`checkpoint_problem` from the log's size ``n`` and its recomputed root at ``tree_size`` (streaming)."""
    if n < tree_size:
        return n, (
            f"entries {n}–{tree_size - 1} are missing: the log was shortened after a checkpoint of size "
            f"{tree_size} was witnessed"
        )
    if (recomputed if tree_size else EMPTY_ROOT) != root_hash:
        return 0, (
            f"the first {tree_size} entries do not match the witnessed checkpoint of size {tree_size}: "
            "the log was rewritten (or shortened and refilled) after it was witnessed"
        )
    return None
