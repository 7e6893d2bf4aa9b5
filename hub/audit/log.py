"""``AuditLog``: the only writer of the audit tables.

Appends are group-committed: concurrent requests' entries are written in one transaction, and each
request waits until its own entry is durably committed before its response may leave (fail closed).
Sequence numbers are gap-free leaf indexes; each entry also names the previous leaf (``prev``) so that
``hub audit verify`` can name the first entry that was flipped, deleted, inserted or reordered.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from functools import partial
from typing import Any

import anyio
from cryptography.hazmat.primitives.asymmetric import ed25519
from sqlalchemy import Connection, Dialect, Engine, Table, func, insert, select, text
from sqlalchemy.exc import IntegrityError

from hub.audit.checkpoint import Checkpoint
from hub.audit.entry import (
    ENTRY_VERSION,
    GENESIS,
    MAX_ENTRY_BYTES,
    canonical,
    digest_key_id,
    entry_leaf,
    keyed_digest,
    plain_body,
    pseudonym,
)
from hub.audit.head import SignedHead
from hub.audit.merkle import MerkleTree
from hub.audit.witness import WitnessConfig, push_all
from hub.clock import Clock, system_clock
from hub.db import audit_entries, audit_subjects, tree_heads
from hub.errors import AuditUnavailable

log = logging.getLogger("hub.audit")

DEFAULT_ORIGIN = "hub.local/audit"
ADVISORY_LOCK = 0x6875622D61756474  # "hub-audt": serialises appenders across PostgreSQL sessions
# Entry fields copied into index columns, with the column's size (hub/db.py): a value that does not fit is
# withheld (""), never allowed to fail the transaction the other requests' entries share.
INDEXED = {
    "request_id": 40,
    "client_id": 64,
    "department": 40,
    "officer": 80,
    "purpose": 20,
    "case_ref": 80,
    "decision": 10,
}
_HEX = frozenset("0123456789abcdef")


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _subject_list(subjects: Any) -> list[str]:
    return sorted({s for s in subjects if isinstance(s, str) and len(s) == 64 and set(s) <= _HEX})


def sound_record(body: dict[str, Any], subjects: Any) -> tuple[dict[str, Any], list[str], str]:
    """Make one entry safe to write, whatever the request put into it: plain bounded values only, index
    columns that fit, and a body that encodes. Returns (body, subjects, its canonical text without the fields
    the writer adds). Never raises: what cannot be kept is replaced and named by a reason code."""
    clean, dropped = plain_body(body)
    reasons = clean.get("reasons")
    reasons = [r for r in reasons if isinstance(r, str)] if isinstance(reasons, list) else []
    reasons += [f"AUDIT_VALUE_WITHHELD:{k}" for k in dropped if k != "reasons"]
    for col, size in INDEXED.items():
        value = clean.get(col)
        if not isinstance(value, str) or len(value) > size:
            if col in clean and col not in dropped:
                reasons.append(f"AUDIT_VALUE_WITHHELD:{col}")
            clean[col] = ""
    if "reasons" in body or reasons:
        clean["reasons"] = reasons
    for reserved in ("seq", "prev", "at", "subjects"):
        clean.pop(reserved, None)
    try:
        text = canonical(clean)
        if len(text) > MAX_ENTRY_BYTES:
            raise ValueError("entry too large")
    except (TypeError, ValueError, RecursionError):
        v = clean.get("v")
        minimal: dict[str, Any] = {"v": v if isinstance(v, int) and not isinstance(v, bool) else ENTRY_VERSION}
        minimal.update({col: clean[col] for col in INDEXED})
        minimal["reasons"] = ["AUDIT_ENTRY_UNENCODABLE"]
        clean = minimal
        text = canonical(clean)
    try:
        subject_list = _subject_list(subjects)
    except TypeError:
        subject_list = []
    return clean, subject_list, text.decode("utf-8")


def no_archives() -> Iterable[bytes]:
    return ()


LAST_ENTRY = select(audit_entries.c.seq, audit_entries.c.leaf_hash).order_by(audit_entries.c.seq.desc()).limit(1)
LAST_ENTRY_SQL = "SELECT seq, leaf_hash FROM audit_entries ORDER BY seq DESC LIMIT 1"


class _RawInsert:
    """An INSERT of every column of ``table`` as the dialect's compiler writes it, with its bind processors (a
    datetime as SQLite's text form), for rows given as dicts."""

    def __init__(self, table: Table, dialect: Dialect) -> None:
        compiled = insert(table).compile(dialect=dialect)
        self.sql = compiled.string
        self.columns = [(n, table.c[n].type._cached_bind_processor(dialect)) for n in compiled.positiontup or ()]

    def params(self, row: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(row[n] if f is None else f(row[n]) for n, f in self.columns)


class AuditLog:
    """Appends entries, keeps the Merkle tree over them and signs its heads.

    ``archived`` gives the verified leaf hashes of the entries moved out by ``hub audit archive`` (the tree's
    first leaves; hub.audit.archive.archived_leaves). It is asked while the tree is empty, and may raise
    (an archive that does not verify): then no head is signed."""

    def __init__(
        self,
        engine: Engine,
        signing_key: ed25519.Ed25519PrivateKey,
        pseudonym_key: bytes,
        key_id: str = "audit-1",
        clock: Clock = system_clock,
        origin: str = DEFAULT_ORIGIN,
        witnesses: Sequence[WitnessConfig] = (),
        digest_key: bytes | None = None,
        archived: Callable[[], Iterable[bytes]] = no_archives,
    ) -> None:
        self.engine = engine
        self.archived = archived
        self.clock = clock
        self.signing_key = signing_key
        self.pseudonym_key = pseudonym_key
        # keys/audit-digest/ (hub.auth.keys); when none is given, one derived from the pseudonym key (library use)
        self.digest_key = digest_key or hmac.new(pseudonym_key, b"hub-audit-digest-key", hashlib.sha256).digest()
        self.digest_key_id = digest_key_id(self.digest_key)
        self.key_id = key_id
        self.origin = origin  # the checkpoints' origin line (C2SP tlog-checkpoint), also their key name
        self.witnesses = tuple(witnesses)  # asked to cosign every head signed (hub/audit/witness.py)
        self._pending: list[tuple[dict[str, Any], list[str], asyncio.Future[tuple[int, bytes]]]] = []
        self._flushing = False
        self._task: asyncio.Task[None] | None = None
        self._tree = MerkleTree()
        # appends on SQLite go through the DB-API connection (``_write_sqlite``); off when the engine is traced
        # (hub/tracing.py: its spans come from SQLAlchemy's execution layer)
        self.raw_sqlite = engine.dialect.name == "sqlite"
        self._raw: dict[str, _RawInsert] | None = None

    def pseudonym(self, id_number: str) -> str:
        return pseudonym(self.pseudonym_key, id_number)

    def digest(self, kind: str, request_id: str, payload: bytes) -> str:
        """The keyed digest of one request's ``request`` body or ``result`` data (entry v2)."""
        return keyed_digest(self.digest_key, kind, request_id, payload)

    # -- appending --------------------------------------------------------------------------------------
    def _lock(self, conn: Connection) -> None:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": ADVISORY_LOCK})

    def write(self, records: Sequence[tuple[dict[str, Any], list[str]]]) -> list[int]:
        """Append records (entry body, subject pseudonyms) in one durable transaction; return their seqs."""
        return [seq for seq, _ in self.write_receipts(records)]

    def write_receipts(
        self, records: Sequence[tuple[dict[str, Any], list[str]]], *, sound: bool = False
    ) -> list[tuple[int, bytes]]:
        """As ``write``, returning each entry's (seq, leaf hash): the receipt a response carries. ``sound``: the
        records were already made sound (``append`` does that before the group commit), so not again."""
        for attempt in range(5):
            try:
                return self._write_once(records, sound)
            except (IntegrityError, sqlite3.IntegrityError):  # another process took the same seq: retry after it
                if attempt == 4:
                    raise
                time.sleep(0.01 * (attempt + 1))
        raise AssertionError("unreachable")

    def _write_once(
        self, records: Sequence[tuple[dict[str, Any], list[str]]], sound: bool = False
    ) -> list[tuple[int, bytes]]:
        if self.raw_sqlite:
            return self._write_sqlite(records, sound)
        with self.engine.begin() as conn:
            self._lock(conn)
            last = conn.execute(LAST_ENTRY).first()
            rows, subject_rows, seqs = self._rows(records, sound, last)
            conn.execute(insert(audit_entries), rows)
            if subject_rows:
                conn.execute(insert(audit_subjects), subject_rows)
        return seqs

    def _write_sqlite(
        self, records: Sequence[tuple[dict[str, Any], list[str]]], sound: bool
    ) -> list[tuple[int, bytes]]:
        """``_write_once`` on SQLite through the pool's DB-API connection (its pragmas: WAL, synchronous=FULL): the
        same statements in the same transaction, without SQLAlchemy's execution layer, which cost more CPU than
        the rest of the write (issue 16). The engine's cursor events still fire (observers, tests' faults)."""
        if self._raw is None:
            self._raw = {t.name: _RawInsert(t, self.engine.dialect) for t in (audit_entries, audit_subjects)}
        entries, subjects_insert = self._raw["audit_entries"], self._raw["audit_subjects"]
        conn = self.engine.raw_connection()
        try:
            cursor = conn.cursor()
            self._execute(cursor, LAST_ENTRY_SQL, (), False)
            last = cursor.fetchone()
            rows, subject_rows, seqs = self._rows(records, sound, last)
            self._execute(cursor, entries.sql, [entries.params(r) for r in rows], True)
            if subject_rows:
                self._execute(cursor, subjects_insert.sql, [subjects_insert.params(r) for r in subject_rows], True)
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        finally:
            conn.close()  # back to the pool
        return seqs

    def _execute(self, cursor: Any, sql: str, params: Any, many: bool) -> None:
        events = self.engine.dispatch
        events.before_cursor_execute(None, cursor, sql, params, None, many)
        (cursor.executemany if many else cursor.execute)(sql, params)
        events.after_cursor_execute(None, cursor, sql, params, None, many)

    def _rows(
        self, records: Sequence[tuple[dict[str, Any], list[str]]], sound: bool, last: Any
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[tuple[int, bytes]]]:
        """The rows of ``records`` after ``last`` (the log's last (seq, leaf hash), None when it is empty)."""
        seq = 0 if last is None else last[0] + 1
        prev = GENESIS if last is None else bytes(last[1]).hex()
        rows: list[dict[str, Any]] = []
        subject_rows: list[dict[str, Any]] = []
        seqs: list[tuple[int, bytes]] = []
        for raw_body, raw_subjects in records:
            if sound:
                body, subjects = dict(raw_body), list(raw_subjects)
            else:
                body, subjects, _ = sound_record(raw_body, raw_subjects)
            if "refused_subjects" in body:  # v2: residents named in a refused request, indexed for their report
                body["refused_subjects"] = [
                    s for s in _subject_list(_as_list(body["refused_subjects"])) if s not in set(subjects)
                ]
            at = self.clock()
            entry = dict(body, seq=seq, prev=prev, at=at.isoformat(timespec="milliseconds"), subjects=subjects)
            entry_text = canonical(entry).decode("utf-8")
            leaf = entry_leaf(entry_text)
            rows.append(
                {
                    "seq": seq,
                    "request_id": body["request_id"],
                    "at": at,
                    "client_id": body["client_id"],
                    "department": body["department"],
                    "officer": body["officer"],
                    "purpose": body["purpose"],
                    "case_ref": body["case_ref"],
                    "decision": body["decision"],
                    "entry": entry_text,
                    "leaf_hash": leaf,
                }
            )
            refused = body.get("refused_subjects")
            indexed = sorted(subjects + refused) if refused else subjects
            subject_rows.extend({"seq": seq, "subject": s} for s in indexed)
            seqs.append((seq, leaf))
            prev = leaf.hex()
            seq += 1
        return rows, subject_rows, seqs

    async def append(self, body: dict[str, Any], subjects: list[str]) -> tuple[int, bytes]:
        """Append one entry and wait until it is durably committed; return its (seq, leaf hash).
        ``AuditUnavailable`` otherwise.

        The entry is made sound and encoded here, before it joins a group commit: an entry that cannot be
        written as given is written with a reason code instead, and never fails another request's commit."""
        fut: asyncio.Future[tuple[int, bytes]] = asyncio.get_running_loop().create_future()
        body, subjects, _ = sound_record(body, subjects)
        self._pending.append((body, subjects, fut))
        if not self._flushing:
            self._flushing = True
            self._task = asyncio.create_task(self._flush())
        return await fut

    async def _flush(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    seqs = await anyio.to_thread.run_sync(
                        partial(self.write_receipts, sound=True), [(b, s) for b, s, _ in batch]
                    )
                except Exception:
                    if len(batch) == 1:
                        log.exception("audit append failed; 1 response withheld")
                        self._fail(batch)
                        continue
                    # One entry the database refuses must not fail the others: write them one by one.
                    log.exception("audit group commit of %d entries failed; writing them one by one", len(batch))
                    for one in batch:
                        try:
                            (seq,) = await anyio.to_thread.run_sync(
                                partial(self.write_receipts, sound=True), [(one[0], one[1])]
                            )
                        except Exception:
                            log.exception("audit append failed; 1 response withheld")
                            self._fail([one])
                        else:
                            if not one[2].done():
                                one[2].set_result(seq)
                else:
                    for (_, _, fut), seq in zip(batch, seqs, strict=True):
                        if not fut.done():
                            fut.set_result(seq)
        finally:
            self._flushing = False

    @staticmethod
    def _fail(batch: list[tuple[dict[str, Any], list[str], asyncio.Future[tuple[int, bytes]]]]) -> None:
        for _, _, fut in batch:
            if not fut.done():
                fut.set_exception(AuditUnavailable("the audit record could not be written; no data was released"))

    # -- the tree and its signed heads ----------------------------------------------------------------
    def size(self) -> int:
        with self.engine.connect() as conn:
            last = conn.execute(select(func.max(audit_entries.c.seq))).scalar()
            return 0 if last is None else int(last) + 1

    def tree(self) -> MerkleTree:
        """The Merkle tree over the stored leaves, extended incrementally from the last call."""
        with self.engine.connect() as conn:
            if self._tree.size == 0:  # entries moved out by `hub audit archive` are the tree's first leaves
                self._tree.extend(self.archived())
            rows = conn.execute(
                select(audit_entries.c.leaf_hash)
                .where(audit_entries.c.seq >= self._tree.size)
                .order_by(audit_entries.c.seq)
            )
            self._tree.extend(bytes(r[0]) for r in rows)
        return self._tree

    def forget_tree(self) -> None:
        """Drop the cached tree: it is read again from the archives and the database on next use."""
        self._tree = MerkleTree()

    def sign_head(self, now: datetime | None = None) -> SignedHead:
        """Sign a tree head over the whole log now (idempotent per size: an existing head is returned), then
        ask the configured witnesses to cosign its checkpoint (failures are logged, never raised)."""
        head = self._sign_head(now)
        if self.witnesses:
            push_all(self.engine, self.witnesses, self.checkpoint(head), self.tree(), self.clock)
        return head

    def checkpoint(self, head: SignedHead) -> Checkpoint:
        """``head`` as a C2SP checkpoint signed by the audit key (the same tree, root and size)."""
        return head.to_checkpoint(self.origin).sign(self.origin, self.signing_key)

    def _sign_head(self, now: datetime | None = None) -> SignedHead:
        tree = self.tree()
        size = tree.size
        with self.engine.connect() as conn:
            existing = conn.execute(select(tree_heads).where(tree_heads.c.tree_size == size)).first()
        if existing is not None:
            return SignedHead.from_row(existing)
        head = SignedHead.sign(size, tree.root(), now or self.clock(), self.key_id, self.signing_key)
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(tree_heads).values(
                        tree_size=size,
                        root_hash=head.root_hash,
                        signed_at=head.signed_at,
                        key_id=self.key_id,
                        signature=head.signature,
                    )
                )
        except IntegrityError:  # another process signed the same size first
            with self.engine.connect() as conn:
                return SignedHead.from_row(conn.execute(select(tree_heads).where(tree_heads.c.tree_size == size)).one())
        return head

    def heads(self) -> list[SignedHead]:
        with self.engine.connect() as conn:
            return [SignedHead.from_row(r) for r in conn.execute(select(tree_heads).order_by(tree_heads.c.tree_size))]
