"""The audit store: the hub database's audit tables, the audit keys and the archive files, opened once.

:func:`open_audit_store` is the only code that upgrades the database, opens its engine, loads the audit keys and
checks the archives for the audit commands and tools; verification (:func:`verify_store`), export
(:func:`export_range`), archiving (:func:`archive_before`) and the writer (:meth:`AuditStore.log`) take the store
it returns. The top of the audit layers (docs/design.md): the file formats, the archive reader, the pure
verifier and the log below it know nothing of settings or of this store.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from pathlib import Path
from types import TracebackType

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import Engine, delete, func, insert, select

from hub.audit.archive import ARCHIVE_DIR, ArchivedState, ArchiveError, archived_state
from hub.audit.export import ExportResult, check_export, file_sha256, write_export
from hub.audit.head import public_key_from_pem
from hub.audit.log import AuditLog
from hub.audit.verify_store import verify_store
from hub.auth.keys import KeyRing
from hub.clock import Clock, system_clock
from hub.db import archives, audit_entries, audit_subjects, hub_engine, tree_heads, upgrade
from hub.errors import ConfigError, RequestError
from hub.settings import Settings

__all__ = [
    "ArchiveResult",
    "AuditKeyMissing",
    "AuditStore",
    "archive_before",
    "default_retention_days",
    "export_range",
    "open_audit_log",
    "open_audit_store",
    "verify_store",
]


class AuditKeyMissing(ConfigError):
    """There is no audit public key to check the log with (``CONFIG_ERROR``)."""


class AuditStore:
    """An opened audit store. ``archived`` (the verified archived prefix) is checked on first use."""

    def __init__(self, settings: Settings, engine: Engine, public_key_pem: bytes, keys: KeyRing | None = None) -> None:
        self.settings = settings
        self.engine = engine
        self.public_key_pem = public_key_pem
        self.public_key: Ed25519PublicKey = public_key_from_pem(public_key_pem)
        self.keys = keys

    @cached_property
    def archived(self) -> ArchivedState:
        """The archive files, each verified in order; ``report`` says which one does not verify."""
        return archived_state(self.settings.data_dir, self.engine, self.public_key)

    def verified_archives(self, what: str = "log") -> ArchivedState:
        """The archived prefix; ``ArchiveError`` when an archive does not verify."""
        return self.archived.verified(what)

    def log(self) -> AuditLog:
        """The writer (opened with ``writer=True``), its Merkle tree starting from the verified archived prefix:
        ``AuditLog.tree()`` loads leaves ``WHERE seq >= tree.size``, which after archiving would otherwise start
        a fresh tree at the first remaining entry (docs/audit.md, "Archiving")."""
        if self.keys is None:
            raise ConfigError("the audit store was opened read-only; open it with writer=True to sign")
        leaves = self.verified_archives("audit log").leaves
        return AuditLog(
            self.engine,
            self.keys.audit_private_key(),
            self.keys.pseudonym_key(),
            digest_key=self.keys.digest_key(),
            archived=lambda: leaves,
        )

    def oldest_stored(self) -> int | None:
        """The sequence number of the oldest entry still in the database (None: there is none)."""
        with self.engine.connect() as conn:
            oldest = conn.execute(select(func.min(audit_entries.c.seq))).scalar()
        return None if oldest is None else int(oldest)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> AuditStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def open_audit_store(settings: Settings, public_key_path: Path | None = None, *, writer: bool = False) -> AuditStore:
    """Open the configured hub's audit store.

    ``public_key_path``: the audit public key the operator trusts (default ``<data_dir>/keys/audit-public.pem``);
    :class:`AuditKeyMissing` when there is none (checked before the database is touched). ``writer``: also
    load the signing and pseudonym keys (created if missing, as the hub does at start-up), for :meth:`AuditStore.log`.
    """
    keys = None
    if writer:
        keys = KeyRing(settings.key_dir)
        keys.ensure()
    key_path = public_key_path or settings.key_dir / "audit-public.pem"
    if not key_path.exists():
        raise AuditKeyMissing(f"no audit public key at {key_path}")
    pem = key_path.read_bytes()
    upgrade(settings.database_url)
    return AuditStore(settings, hub_engine(settings.database_url), pem, keys)


def open_audit_log(settings: Settings) -> AuditLog:
    """The audit log of a configured hub, for tools and tests (its engine lives as long as the log)."""
    return open_audit_store(settings, writer=True).log()


# -- exporting and archiving --------------------------------------------------------------------------------
def export_range(store: AuditStore, path: Path, first: int = 0, last: int | None = None) -> ExportResult:
    """Write entries ``first..last`` (default: to the newest) plus the signed heads to ``path``."""
    state = store.verified_archives()
    if first < state.next_seq:
        names = ", ".join(a.file.name for a in state.archives)
        raise RequestError(
            f"entries before {state.next_seq} are archived ({names}); an archive file is itself an export",
            code="BAD_ARGUMENT",
        )
    t = audit_entries
    with store.engine.connect() as conn:
        newest = conn.execute(select(func.max(t.c.seq))).scalar()
        if last is None:
            last = newest
        if newest is None or last is None or last < first or last > newest:
            raise RequestError(
                f"no entries {first}–{last if last is not None else '?'} in the log (newest: {newest})",
                code="BAD_ARGUMENT",
            )
        base = list(state.leaves)
        base.extend(
            bytes(r[0])
            for r in conn.execute(
                select(t.c.leaf_hash).where(t.c.seq >= state.next_seq, t.c.seq < first).order_by(t.c.seq)
            )
        )
    heads = write_export(store.engine, path, store.public_key_pem, base, first, last)
    return ExportResult(path, first, last, last - first + 1, heads, file_sha256(path))


@dataclass(frozen=True)
class ArchiveResult:
    first_seq: int
    last_seq: int
    file: Path
    sha256: str
    cutoff: datetime

    @property
    def entries(self) -> int:
        return self.last_seq - self.first_seq + 1


def default_retention_days(settings: Settings) -> int:
    """The longest ``retention_days`` among the purposes (archiving cuts a whole prefix, so the longest wins)."""
    from hub.policy.loader import load_purposes

    purposes = load_purposes(settings.policy_dir / "purposes.toml")
    return max(p.retention_days for p in purposes.values())


def archive_before(
    store: AuditStore,
    before: datetime | None = None,
    keep_days: int | None = None,
    clock: Clock = system_clock,
) -> ArchiveResult | None:
    """Archive the entries older than ``before`` (or than ``keep_days`` days; default: the longest retention).

    Only a whole prefix is moved, and only up to the last signed tree head that covers nothing newer than the
    cut-off. Returns None when there is nothing to archive.
    """
    settings = store.settings
    if before is not None and keep_days is not None:
        raise ArchiveError("give a cut-off date or a number of days, not both", code="BAD_ARGUMENT")
    if before is None:
        days = keep_days if keep_days is not None else default_retention_days(settings)
        if days < 0:
            raise ArchiveError("the number of days must not be negative", code="BAD_ARGUMENT")
        before = clock() - timedelta(days=days)
    cutoff = before if before.tzinfo else before.replace(tzinfo=UTC)

    engine = store.engine
    state = store.verified_archives()
    first = state.next_seq
    t = audit_entries
    with engine.connect() as conn:
        oldest = conn.execute(select(func.min(t.c.seq))).scalar()
        if oldest is None:
            return None
        if oldest != first:
            raise ArchiveError(
                f"the log in the database starts at entry {oldest}, but the archives end before entry {first}; "
                "run `hub audit verify`"
            )
        young = conn.execute(select(func.min(t.c.seq)).where(t.c.at >= cutoff)).scalar()
        end = young if young is not None else conn.execute(select(func.max(t.c.seq))).scalar_one() + 1
        head = conn.execute(select(func.max(tree_heads.c.tree_size)).where(tree_heads.c.tree_size <= end)).scalar()
    if head is None or head <= first:
        return None
    last = head - 1
    folder = settings.data_dir / ARCHIVE_DIR
    path = folder / f"audit-{first:012d}-{last:012d}.jsonl"
    if path.exists():
        raise ArchiveError(f"{path} exists already but is not recorded in the archives table")
    staging = folder / (path.name + ".new")
    write_export(engine, staging, store.public_key_pem, state.leaves, first, last, clock)
    report, _, _ = check_export(staging, store.public_key)
    if not report.ok or report.signed_size != last + 1:
        rejected = folder / (path.name + ".rejected")
        os.replace(staging, rejected)
        why = report.problem if not report.ok else f"no signed tree head covers entry {last}"
        raise ArchiveError(f"the archive file did not verify, nothing was deleted ({rejected}): {why}")
    os.replace(staging, path)
    digest = file_sha256(path)
    try:
        with engine.begin() as conn:
            gone = conn.execute(delete(t).where(t.c.seq >= first, t.c.seq <= last)).rowcount
            if gone != last - first + 1:  # e.g. another process archived the same range meanwhile
                raise ArchiveError(f"expected to delete {last - first + 1} entries, found {gone}; nothing was deleted")
            conn.execute(delete(audit_subjects).where(audit_subjects.c.seq >= first, audit_subjects.c.seq <= last))
            conn.execute(
                insert(archives).values(
                    first_seq=first,
                    last_seq=last,
                    file=str(path.resolve()),
                    sha256=digest,
                    archived_at=clock(),
                    verified=True,
                )
            )
    except BaseException:
        os.replace(path, folder / (path.name + ".rejected"))
        raise
    return ArchiveResult(first, last, path, digest, cutoff)
