"""Verify the live store (``hub audit verify``): the hub database's entries streamed through the DB-API cursor.

The checks are :mod:`hub.audit.verify`'s (every entry, the hash chain, every signed tree head, a witnessed
checkpoint) plus the index: the denormalised columns of ``audit_entries`` and the ``audit_subjects`` rows must
equal the signed entries, because searches and residents' access reports rely on them. Memory is O(log n): a
page of rows and the right edge of the tree (docs/audit.md, "Verifying").

Speed (bench/README.md, "audit verify"): the rows come from the driver's own cursor, a page at a time
(``fetchmany``), with only the columns the checks need and the entry as UTF-8 bytes (hashed and parsed without
decoding and encoding it again); the checks run in one loop (:meth:`hub.audit.verify._Verifier.check_indexed`).
The entries and the ``audit_subjects`` rows are read in one transaction (one snapshot: a hub writing meanwhile
cannot make them disagree).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from itertools import chain
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from hub.audit.entry import GENESIS
from hub.audit.head import SignedHead
from hub.audit.verify import VerifyReport, checkpoint_root_problem, stream_store
from hub.db import audit_entries, tree_heads

if TYPE_CHECKING:
    from hub.audit.store import AuditStore

__all__ = ["COLUMNS", "PAGE", "verify_store"]

COLUMNS = ("request_id", "client_id", "department", "officer", "purpose", "case_ref", "decision")
PAGE = 2_000  # rows fetched at a time (a server-side cursor on PostgreSQL): ~2 MB of entries in memory


def _pages(cursor: Any, size: int) -> Iterator[Any]:
    """The cursor's rows, ``size`` at a time (DB-API ``fetchmany``), as one iterator."""
    fetch = cursor.fetchmany
    return chain.from_iterable(iter(lambda: fetch(size), []))


def verify_store(store: AuditStore, checkpoint: tuple[int, bytes] | None = None) -> VerifyReport:
    """Verify the hub database's audit log, starting from its verified archive files (if any).

    The heads are checked against the store's public key (the one given to :func:`open_audit_store`, the key
    the operator trusts, or else ``<data_dir>/keys/audit-public.pem``). ``checkpoint`` (tree size, root hash),
    from a checkpoint a witness cosigned and whose signatures the caller checked, must be a prefix of the log.
    Besides the log itself, the denormalised columns of ``audit_entries`` and the ``audit_subjects`` index are
    compared with the signed entries, because searches and residents' access reports rely on them.
    """
    started = time.perf_counter()
    engine = store.engine
    state = store.archived
    if state.report is not None and not state.report.ok:
        state.report.seconds = time.perf_counter() - started
        return state.report
    first = state.next_seq
    base = state.leaves
    with engine.connect() as conn:
        # the heads first: every entry a head covers was written before it, so the entries read next include them
        head_list = [SignedHead.from_row(r) for r in conn.execute(select(tree_heads).order_by(tree_heads.c.tree_size))]

    def heads() -> list[SignedHead]:
        return head_list

    def leaf_at(seq: int) -> bytes | None:
        # only to name a duplicated or inserted entry: entries before the current one have been checked, so
        # their stored leaf hash is the recomputed one
        with engine.connect() as c:
            leaf = c.execute(select(audit_entries.c.leaf_hash).where(audit_entries.c.seq == seq)).scalar()
        return None if leaf is None else bytes(leaf)

    postgres = engine.dialect.name == "postgresql"
    as_bytes = "convert_to(entry, 'UTF8')" if postgres else "CAST(entry AS BLOB)"
    entries_sql = f"SELECT seq, {as_bytes}, leaf_hash, {', '.join(COLUMNS)} FROM audit_entries ORDER BY seq"
    subjects_sql = "SELECT seq, subject FROM audit_subjects ORDER BY seq, subject"
    raw = engine.raw_connection()
    try:
        driver = raw.driver_connection
        if postgres:
            raw.rollback()  # a fresh transaction, one snapshot for both reads; server-side cursors stream them
            cur = raw.cursor()
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            cur.close()
            entries_cur: Any = driver.cursor(name="hub_verify_entries")  # type: ignore[union-attr]
            subjects_cur: Any = driver.cursor(name="hub_verify_subjects")  # type: ignore[union-attr]
            entries_cur.itersize = subjects_cur.itersize = PAGE
        else:
            driver.execute("BEGIN")  # type: ignore[union-attr]  # one read snapshot for both statements (WAL)
            entries_cur, subjects_cur = raw.cursor(), raw.cursor()
        entries_cur.execute(entries_sql)
        subjects_cur.execute(subjects_sql)
        prev = base[-1].hex() if base else GENESIS
        sizes = (checkpoint[0],) if checkpoint is not None else ()
        report, n, roots, left = stream_store(
            _pages(entries_cur, PAGE),
            _pages(subjects_cur, PAGE),
            COLUMNS,
            heads,
            store.public_key,
            first,
            prev,
            base,
            leaf_at,
            sizes,
        )
        entries_cur.close()
        subjects_cur.close()
    finally:
        raw.rollback()
        raw.close()
    if report.ok and left is not None:
        s = left[0]
        report.ok, report.first_bad_seq = False, s
        report.problem = f"entry {s}: audit_subjects has rows for it but the entry is not there (index tampered)"
    if report.ok and checkpoint is not None:
        bad = checkpoint_root_problem(n, roots.get(checkpoint[0]), *checkpoint)
        if bad is not None:
            report.ok, (report.first_bad_seq, report.problem) = False, bad
    if state.archives:
        report.first_seq = 0
        report.archives_checked = len(state.archives)
        report.archived_entries = first
        report.entries_checked += first
        if report.last_seq is None:
            report.last_seq = first - 1
    report.seconds = time.perf_counter() - started
    return report
