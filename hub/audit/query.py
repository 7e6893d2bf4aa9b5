"""Searching the audit log for privacy officers, and residents' access reports. Read-only."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import Engine, and_, exists, func, or_, select, true

from hub.audit.archive import ArchiveInfo, archived_entries
from hub.audit.entry import canonical
from hub.db import audit_entries, audit_subjects
from hub.errors import HubError

# Anomaly thresholds (documented in docs/audit.md)
MANY_RESIDENTS_PER_HOUR = 200
REPEATED_DENIALS = 3
REPEATED_DENIALS_WINDOW = timedelta(minutes=10)
NIGHT_BULK_RESIDENTS = 50
NIGHT_HOURS = range(0, 6)  # 00:00–05:59 China Standard Time
CST = timedelta(hours=8)
THRESHOLD_PROBING_DISTINCT = 3  # distinct thresholds of one predicate about one resident, by one client...
THRESHOLD_PROBING_WINDOW = timedelta(days=30)  # ...within this window
# refusals of ID lookups that were mostly misses, or over the client's miss budget (hub/lookups.py)
ID_PROBING_REASONS = frozenset({"LOOKUP_MOSTLY_MISSED", "LOOKUP_BUDGET_EXHAUSTED"})


@dataclass(frozen=True)
class AuditSearch:
    department: str | None = None
    client_id: str | None = None
    officer: str | None = None
    purpose: str | None = None
    case_ref: str | None = None
    subject: str | None = None  # pseudonym, never the plain ID number
    field: str | None = None
    decision: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass
class FoundEntry:
    seq: int
    entry: dict[str, Any]
    flags: list[str] = field(default_factory=list)


def _utc(dt: datetime) -> datetime:
    """In UTC: SQLite keeps the wall time of a bound datetime and drops its offset, so a China time compared
    as it is would be 8 hours off."""
    return dt.astimezone(UTC) if dt.tzinfo else dt.replace(tzinfo=UTC)


def search(engine: Engine, s: AuditSearch, first: int, after: int | None) -> tuple[list[FoundEntry], bool]:
    """Entries matching ``s`` in sequence order after ``after``; returns (page, has_more)."""
    t = audit_entries
    conds = []
    for col, value in (
        (t.c.department, s.department),
        (t.c.client_id, s.client_id),
        (t.c.officer, s.officer),
        (t.c.purpose, s.purpose),
        (t.c.case_ref, s.case_ref),
        (t.c.decision, s.decision),
    ):
        if value is not None:
            conds.append(col == value)
    if s.since is not None:
        conds.append(t.c.at >= _utc(s.since))
    if s.until is not None:
        conds.append(t.c.at < _utc(s.until))
    if s.field is not None:
        conds.append(t.c.entry.contains(canonical({"coordinate": s.field}).decode()[1:-1], autoescape=True))
    if s.subject is not None:
        conds.append(t.c.seq.in_(select(audit_subjects.c.seq).where(audit_subjects.c.subject == s.subject)))
    if after is not None:
        conds.append(t.c.seq > after)
    stmt = select(t.c.seq, t.c.entry).where(and_(true(), *conds)).order_by(t.c.seq).limit(first + 1)
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
        page = [FoundEntry(r.seq, json.loads(r.entry)) for r in rows[:first]]
        for e in page:
            e.flags = flags_for(conn, e.entry)
    return page, len(rows) > first


def flags_for(conn: Any, entry: dict[str, Any]) -> list[str]:
    """Anomaly flags for one entry (leads for a human reviewer, never verdicts)."""
    flags: list[str] = []
    at = datetime.fromisoformat(entry["at"])
    touched = len(entry.get("subjects", []))
    # an officer's own AUDIT lookups (the officers' API, the console) name the residents they looked up, no case
    if entry["decision"] == "allow" and touched and not entry.get("case_ref") and entry.get("purpose") != "AUDIT":
        flags.append("NO_CASE_REFERENCE")
    if entry.get("out_of_area", 0):
        flags.append("OUT_OF_AREA_ATTEMPT")
    if (at + CST).hour in NIGHT_HOURS and touched >= NIGHT_BULK_RESIDENTS:
        flags.append("NIGHT_TIME_BULK")
    if entry.get("officer"):
        distinct = conn.execute(
            select(func.count(func.distinct(audit_subjects.c.subject)))
            .select_from(audit_subjects.join(audit_entries, audit_subjects.c.seq == audit_entries.c.seq))
            .where(
                audit_entries.c.officer == entry["officer"],
                audit_entries.c.client_id == entry["client_id"],
                audit_entries.c.at > at - timedelta(hours=1),
                audit_entries.c.seq <= entry["seq"],
            )
        ).scalar_one()
        if distinct >= MANY_RESIDENTS_PER_HOUR:
            flags.append("MANY_RESIDENTS_PER_HOUR")
    if entry["decision"] == "deny" and entry.get("client_id"):
        denials = conn.execute(
            select(func.count())
            .select_from(audit_entries)
            .where(
                audit_entries.c.client_id == entry["client_id"],
                audit_entries.c.decision == "deny",
                audit_entries.c.at > at - REPEATED_DENIALS_WINDOW,
                audit_entries.c.seq <= entry["seq"],
            )
        ).scalar_one()
        if denials >= REPEATED_DENIALS:
            flags.append("REPEATED_DENIALS")
    if entry.get("predicate_args") and entry.get("client_id") and threshold_probing(conn, entry, at):
        flags.append("THRESHOLD_PROBING")
    if ID_PROBING_REASONS & set(entry.get("reasons") or []):
        flags.append("ID_PROBING")
    return flags


def thresholds_asked(conn: Any, entry: dict[str, Any], at: datetime, coordinate: str) -> set[str]:
    """The distinct arguments one client gave ``coordinate`` within the window up to ``entry``, in entries about
    one of ``entry``'s residents (touched, or named in a refused request) or about none."""
    t = audit_entries
    subjects = list(entry.get("subjects") or []) + list(entry.get("refused_subjects") or [])  # refused: v2
    about = ~exists().where(audit_subjects.c.seq == t.c.seq)
    if subjects:
        about = or_(about, t.c.seq.in_(select(audit_subjects.c.seq).where(audit_subjects.c.subject.in_(subjects))))
    rows = conn.execute(
        select(t.c.entry)
        .where(
            t.c.client_id == entry["client_id"],
            t.c.at > at - THRESHOLD_PROBING_WINDOW,
            t.c.seq <= entry["seq"],
            t.c.entry.contains(canonical({coordinate: {}}).decode()[1:-2], autoescape=True),
            about,
        )
        .order_by(t.c.seq.desc())
        .limit(1000)
    )
    asked = set()
    for (text,) in rows:
        args = (json.loads(text).get("predicate_args") or {}).get(coordinate)
        if args is not None:
            asked.add(canonical(args).decode())
    return asked


def threshold_probing(conn: Any, entry: dict[str, Any], at: datetime) -> bool:
    """Several distinct thresholds of one predicate about one resident: a bisection of the value (docs/audit.md)."""
    return any(
        len(thresholds_asked(conn, entry, at, coordinate)) >= THRESHOLD_PROBING_DISTINCT
        for coordinate in entry["predicate_args"]
    )


@dataclass(frozen=True)
class Access:
    """One recorded access to a resident: ``entry`` disclosed their data to someone, or (``refused``) named
    them in a request that disclosed nothing about them (entry v2)."""

    entry: dict[str, Any]
    refused: bool


def accesses(
    engine: Engine,
    subject: str,
    data_dir: Path | None,
    *,
    missing_archives: Literal["refuse", "skip"],
    limit: int | None = None,
) -> tuple[list[Access], list[ArchiveInfo]]:
    """Every entry naming ``subject`` (a pseudonym), oldest first: the archived ones (read from the archive
    files), then the live ones (at most ``limit`` of those). Returns them and the archives whose file is missing.

    Without an archive file the answer is incomplete: ``missing_archives="refuse"`` raises ``AUDIT_UNAVAILABLE``
    (the officers' API), ``"skip"`` leaves them out and returns them so that the caller can warn (the CLI).
    The signed entry decides, not the index: it names the resident as disclosed to, or as refused."""
    archived, missing = archived_entries(data_dir, engine, subject)
    if missing and missing_archives == "refuse":
        names = ", ".join(f"{a.file.name} (entries {a.first_seq}–{a.last_seq})" for a in missing)
        raise HubError(
            f"the access report would be incomplete: archive file(s) missing: {names}", code="AUDIT_UNAVAILABLE"
        )
    stmt = (
        select(audit_entries.c.entry)
        .where(audit_entries.c.seq.in_(select(audit_subjects.c.seq).where(audit_subjects.c.subject == subject)))
        .order_by(audit_entries.c.seq)
        .limit(limit)
    )
    with engine.connect() as conn:
        entries = archived + [json.loads(r[0]) for r in conn.execute(stmt)]
    found = [Access(e, is_refused(e, subject)) for e in entries]
    return [a for a in found if a.refused or subject in (a.entry.get("subjects") or [])], missing


def access_report(
    engine: Engine, subject: str, limit: int = 1000, data_dir: Path | None = None
) -> list[dict[str, Any]]:
    """Every allowed access that resolved this resident's data (as Estonia's Data Tracker shows citizens), and
    every refused attempt that named them (``refused``: denied, or out of the caller's area), oldest first:
    the archived entries (read from the archive files), then the live ones. If an archive file is missing the
    report would be incomplete, so it is refused (``AUDIT_UNAVAILABLE``)."""
    found, _ = accesses(engine, subject, data_dir, missing_archives="refuse", limit=limit)
    rows = []
    for a in found:
        e = a.entry
        if a.refused or e["decision"] == "allow":
            rows.append(
                {
                    "at": e["at"],
                    "seq": e["seq"],
                    "department": e["department"],
                    "client_id": e["client_id"],
                    "officer": e["officer"],
                    "purpose": e["purpose"],
                    "case_ref": e["case_ref"],
                    "fields": [] if a.refused else [f["coordinate"] for f in e["fields"]],
                    "request_id": e["request_id"],
                    "refused": a.refused,
                }
            )
    return rows[:limit]


def is_refused(entry: dict[str, Any], subject: str) -> bool:
    """The entry names the resident (a pseudonym) as asked about but not disclosed (entry v2)."""
    refused = entry.get("refused_subjects")
    return isinstance(refused, list) and subject in refused
