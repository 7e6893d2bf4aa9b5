"""The privacy officers' search as plain functions: the console's search page and ``hub audit search`` /
``hub audit export --since`` / ``hub audit subject --since`` call these, so both read the log one way.

Dates given as ``YYYY-MM-DD`` are China dates (whole days; ``until`` includes its day); an ISO time with a zone
(``2026-12-01T10:00+08:00``) is an exact instant (``until`` excludes it); an ISO time without a zone is UTC.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sqlalchemy import Engine, func, select

from hub.audit.query import AuditSearch, FoundEntry, search
from hub.clock import CHINA
from hub.db import audit_entries
from hub.errors import RequestError

FLAGS = (
    "NO_CASE_REFERENCE",
    "MANY_RESIDENTS_PER_HOUR",
    "OUT_OF_AREA_ATTEMPT",
    "REPEATED_DENIALS",
    "NIGHT_TIME_BULK",
    "THRESHOLD_PROBING",
    "ID_PROBING",
)
DECISIONS = ("allow", "deny", "error")
FLAG_SCAN_PAGES = 20  # a flag filter reads at most this many pages of entries to fill one page


def time_bound(value: str, name: str, *, end: bool = False) -> datetime:
    """``value`` (a China date or an ISO time) as an aware instant; ``end``: a date means the end of that day."""
    value = value.strip()
    try:
        if len(value) == 10:
            d = date.fromisoformat(value)
            start = datetime.combine(d, datetime.min.time(), CHINA) + (timedelta(days=1) if end else timedelta())
            return start.astimezone(UTC)
        at = datetime.fromisoformat(value)
    except ValueError:
        raise RequestError(
            f"{name}: {value!r} is not a date (YYYY-MM-DD, China time) or an ISO time", code="BAD_ARGUMENT"
        ) from None
    return at.astimezone(UTC) if at.tzinfo else at.replace(tzinfo=UTC)


def check_flag(flag: str | None) -> str | None:
    if flag and flag not in FLAGS:
        raise RequestError(f"flag: one of {', '.join(FLAGS)}", code="BAD_ARGUMENT")
    return flag or None


def search_page(
    engine: Engine,
    s: AuditSearch,
    flag: str | None,
    after: int | None,
    size: int,
    scan_pages: int = FLAG_SCAN_PAGES,
) -> tuple[list[FoundEntry], int | None]:
    """One page (at most ``size`` entries after sequence number ``after``) and the cursor of the next page (None:
    no more). A ``flag`` filter keeps reading pages of the search until the page is full or ``scan_pages`` pages
    were read; the cursor then says where to go on."""
    check_flag(flag)
    found: list[FoundEntry] = []
    cursor = after
    for _ in range(scan_pages if flag else 1):
        page, more = search(engine, s, size, cursor)
        for e in page:
            if flag is None or flag in e.flags:
                found.append(e)
                if len(found) == size:
                    return found, e.seq if (more or e is not page[-1]) else None
        if not page or not more:
            return found, None
        cursor = page[-1].seq
    return found, cursor


def seq_range(engine: Engine, since: datetime | None, until: datetime | None) -> tuple[int, int] | None:
    """The first and last sequence numbers of the live entries written in [since, until), or None if none was."""
    since = since.astimezone(UTC) if since else None  # SQLite compares wall times: bind UTC ones
    until = until.astimezone(UTC) if until else None
    t = audit_entries
    stmt = select(func.min(t.c.seq), func.max(t.c.seq))
    if since is not None:
        stmt = stmt.where(t.c.at >= since)
    if until is not None:
        stmt = stmt.where(t.c.at < until)
    with engine.connect() as conn:
        first, last = conn.execute(stmt).one()
    return None if first is None else (int(first), int(last))


def written_between(at: str, since: datetime | None, until: datetime | None) -> bool:
    """Whether an entry's ``at`` (ISO time, UTC) lies in [since, until)."""
    when = datetime.fromisoformat(at)
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    return (since is None or when >= since) and (until is None or when < until)
