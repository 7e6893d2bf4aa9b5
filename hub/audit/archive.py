"""Archives: the archive files of the audit log, and the verified prefix they hold.

Archiving (``hub.audit.store.archive_before``) takes the longest prefix of entries older than the cut-off that
ends exactly at a signed tree head, writes it to ``<data_dir>/archive/audit-<first>-<last>.jsonl`` (format
``hub-audit-export/v1``), verifies that file, records it in ``archives`` (with its SHA-256) and only then
deletes the rows from ``audit_entries`` and ``audit_subjects``, in one transaction. Tree heads are never deleted.

Verification afterwards starts from the archives: each file is verified in order (content, signed heads,
that it continues the previous one, and its SHA-256 against the ``archives`` row), and the recomputed
leaves of all archived entries become the base the live entries are checked against.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import Engine, select

from hub.audit.export import check_export, file_sha256
from hub.audit.verify import VerifyReport
from hub.db import archives
from hub.errors import HubError

__all__ = [
    "ArchiveError",
    "ARCHIVE_DIR",
    "ArchiveInfo",
    "ArchivedState",
    "archived_entries",
    "archived_leaves",
    "archived_state",
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
