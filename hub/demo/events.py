"""``hub demo event``: write a change event into a department's outbox by hand, as the department would.

The department records the change and its event in one transaction. For ``disability_changed`` a new category and
grade can be given: the certificate is updated (or issued) with today's change date, then the event is written.
Only for the demo and tests; the hub itself never writes to a department's database.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import create_engine, func, insert, select, update

from hub.clock import Clock, china_date, system_clock
from hub.departments import OUTBOXES, certificates
from hub.errors import RequestError
from hub.ids import id_problem
from hub.monitor.events import EVENT_KINDS
from hub.settings import Settings


def emit_event(
    settings: Settings,
    kind: str,
    id_number: str,
    *,
    department: str | None = None,
    on: date | None = None,
    category: int | None = None,
    grade: int | None = None,
    clock: Clock = system_clock,
) -> tuple[str, int]:
    """Write one event (and, for a disability change, the certificate); return (department, seq)."""
    if kind not in EVENT_KINDS:
        raise RequestError(f"unknown event kind {kind!r} (known: {', '.join(EVENT_KINDS)})", code="BAD_ARGUMENT")
    department = department or EVENT_KINDS[kind][0]
    if department not in OUTBOXES:
        raise RequestError(f"unknown department {department!r}", code="BAD_ARGUMENT")
    problem = id_problem(id_number)
    if problem:
        raise RequestError(f"id number: {problem}", code="BAD_ID_NUMBER")
    now: datetime = clock()
    on = on or china_date(now)
    engine = create_engine(settings.department_url(department))
    outbox = OUTBOXES[department]
    try:
        with engine.begin() as conn:
            if kind == "disability_changed" and grade is not None:
                if not 1 <= grade <= 4 or (category is not None and not 1 <= category <= 7):
                    raise RequestError("grade 1-4, category 1-7", code="BAD_ARGUMENT")
                found = conn.execute(
                    select(certificates.c.category).where(certificates.c.id_number == id_number)
                ).first()
                if found is None:
                    conn.execute(
                        insert(certificates).values(
                            id_number=id_number,
                            cert_no=f"{id_number}{category or 4}{grade}",
                            category=category or 4,
                            grade=grade,
                            issue_date=on,
                            change_date=None,
                            two_subsidies="none",
                        )
                    )
                else:
                    conn.execute(
                        update(certificates)
                        .where(certificates.c.id_number == id_number)
                        .values(category=category or found[0], grade=grade, change_date=on)
                    )
            seq = int(conn.execute(select(func.coalesce(func.max(outbox.c.seq), 0))).scalar_one()) + 1
            conn.execute(
                insert(outbox).values(
                    seq=seq, id_number=id_number, kind=kind, occurred_on=on, recorded_at=now.isoformat()
                )
            )
    finally:
        engine.dispose()
    return department, seq
