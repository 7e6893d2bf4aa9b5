"""Archiving: move an old, signed prefix of the audit log out of the database into a verified export file.

``archive_before`` takes the longest prefix of entries older than the cut-off that ends exactly at a signed
tree head, writes it to ``<data_dir>/archive/audit-<first>-<last>.jsonl`` (format ``hub-audit-export/v1``),
verifies that file, records it in ``archives`` (with its SHA-256) and only then deletes the rows from
``audit_entries`` and ``audit_subjects``, in one transaction. Tree heads are never deleted.

Verification afterwards starts from the archives: each file is verified in order (content, signed heads,
that it continues the previous one, and its SHA-256 against the ``archives`` row), and the recomputed
leaves of all archived entries become the base the live entries are checked against.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import Engine, delete, func, insert, select

from hub.audit.export import check_export, file_sha256, write_export
from hub.audit.verify import VerifyReport
from hub.clock import Clock, system_clock
from hub.db import archives, audit_entries, audit_subjects, tree_heads
from hub.errors import HubError
from hub.settings import Settings

if TYPE_CHECKING:
    from hub.audit.store import AuditStore

__all__ = [
    "ArchiveError",
    "ArchiveInfo",
    "ArchiveResult",
    "ArchivedState",
    "archive_before",
    "archived_entries",
    "archived_leaves",
    "archived_state",
    "default_retention_days",
]

ARCHIVE_DIR = "archive"


class ArchiveError(HubError):
    """Archiving or the archived prefix failed (code ``HUB_ERROR``; argument problems use ``BAD_ARGUMENT``)."""


@dataclass(frozen=True)
class ArchiveInfo:
    first_seq: int
    last_seq: int
    file: Path
    sha256: str
    archived_at: datetime
    verified: bool


@dataclass
class ArchivedState:
    """The verified archived prefix: entries ``0 .. next_seq - 1`` and their recomputed leaf hashes."""

    archives: list[ArchiveInfo] = field(default_factory=list)
    leaves: list[bytes] = field(default_factory=list)
    next_seq: int = 0
    report: VerifyReport | None = None  # set (ok=False) when an archive does not verify

    def verified(self, what: str = "log") -> ArchivedState:
        """This state, or :class:`ArchiveError` when an archive does not verify (nothing may build on it)."""
        if self.report is not None and not self.report.ok:
            raise ArchiveError(f"the archived part of the {what} does not verify: {self.report.problem}")
        return self


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


def resolve(data_dir: Path | None, stored: str) -> Path:
    """The archive file of an ``archives`` row (stored absolute; looked up in the archive folder if moved)."""
    path = Path(stored)
    if path.exists() or data_dir is None:
        return path
    return data_dir / ARCHIVE_DIR / path.name


def archives_in(data_dir: Path | None, engine: Engine) -> list[ArchiveInfo]:
    """The ``archives`` rows, oldest first, with their files looked up under ``data_dir`` if moved."""
    with engine.connect() as conn:
        rows = conn.execute(select(archives).order_by(archives.c.first_seq, archives.c.id)).all()
    return [
        ArchiveInfo(
            r.first_seq,
            r.last_seq,
            resolve(data_dir, r.file),
            r.sha256,
            r.archived_at if r.archived_at.tzinfo else r.archived_at.replace(tzinfo=UTC),
            bool(r.verified),
        )
        for r in rows
    ]


def archived_entries(
    data_dir: Path | None, engine: Engine, subject: str
) -> tuple[list[dict[str, Any]], list[ArchiveInfo]]:
    """Entries naming ``subject`` (a pseudonym) in the archive files, in order, and the archives whose file is
    missing (a report built without them would be incomplete). The pseudonym is in the entry's line, so each
    file is scanned once; the signed entry, not the scan, decides."""
    found: list[dict[str, Any]] = []
    missing: list[ArchiveInfo] = []
    needle = subject.encode("ascii")
    for a in archives_in(data_dir, engine):
        if not a.file.exists():
            missing.append(a)
            continue
        with a.file.open("rb") as f:
            f.readline()  # the file's header
            for raw in f:
                if needle in raw:
                    line = json.loads(raw)
                    if "entry" in line:
                        entry = json.loads(line["entry"])
                        if subject in (entry.get("subjects") or []) or subject in (entry.get("refused_subjects") or []):
                            found.append(entry)
    return found, missing


def _failed(seq: int | None, problem: str, state: ArchivedState) -> ArchivedState:
    state.report = VerifyReport(
        ok=False,
        first_bad_seq=seq,
        problem=problem,
        archives_checked=len(state.archives),
        entries_checked=state.next_seq,
        archived_entries=state.next_seq,
        last_seq=state.next_seq - 1 if state.next_seq else None,
    )
    return state


def archived_state(data_dir: Path | None, engine: Engine, public_key: Ed25519PublicKey) -> ArchivedState:
    """Verify every archive file in order and return the archived prefix's recomputed leaves.

    ``data_dir`` only serves to find archive files whose recorded absolute path no longer exists.
    """
    state = ArchivedState()
    for a in archives_in(data_dir, engine):
        name = a.file.name
        span = f"entries {a.first_seq}–{a.last_seq}"
        if a.first_seq != state.next_seq:
            if a.first_seq > state.next_seq:
                return _failed(
                    state.next_seq,
                    f"entry {state.next_seq}: missing (archive {name} starts at {a.first_seq}: an archive was removed)",
                    state,
                )
            return _failed(a.first_seq, f"archive {name} ({span}) overlaps the archive before it", state)
        if not a.file.exists():
            return _failed(a.first_seq, f"entry {a.first_seq}: archive file {name} ({span}) is missing", state)
        report, header, leaves = check_export(a.file, public_key)
        if not report.ok:
            return _failed(report.first_bad_seq, f"archive {name}: {report.problem}", state)
        assert header is not None
        if (header.first_seq, header.last_seq) != (a.first_seq, a.last_seq):
            return _failed(
                a.first_seq,
                f"archive {name}: holds entries {header.first_seq}–{header.last_seq}, the archives table says {span}",
                state,
            )
        if header.base_leaves != state.leaves:
            return _failed(a.first_seq, f"archive {name}: it does not continue the archived entries before it", state)
        if report.signed_size != a.last_seq + 1:
            return _failed(
                a.last_seq, f"archive {name}: no signed tree head in it covers its last entry {a.last_seq}", state
            )
        digest = file_sha256(a.file)
        if digest != a.sha256:
            return _failed(
                None, f"archive {name} ({span}): its SHA-256 is {digest}, the archives table says {a.sha256}", state
            )
        state.archives.append(a)
        state.leaves = leaves
        state.next_seq = a.last_seq + 1
    return state


def archived_leaves(engine: Engine, public_key: Ed25519PublicKey) -> list[bytes]:
    """The verified leaf hashes of every archived entry, in order (empty when nothing was archived).

    What the hub gives ``AuditLog(archived=...)`` (see docs/audit.md, "Archiving"); raises :class:`ArchiveError`
    when an archive does not verify, so that no head is ever signed over a broken prefix.
    """
    return archived_state(None, engine, public_key).verified("audit log").leaves


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
