"""The hub's alert store: cursors per department outbox, handled events, alerts and their history.

Alerts are the one place the hub keeps a resident's ID number next to a finding, because a caseworker has to
visit the person; the audit log still names residents only by pseudonym. Status moves
``new → assigned → visited → closed`` (closing needs a disposition); every step is kept in ``alert_history``.
While an alert is open its ``open_key`` (rule and resident) is set and unique, so one rule never has two open
alerts for one resident.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, Engine, and_, delete, func, insert, select, text, update
from sqlalchemy.dialects import postgresql, sqlite

from hub.clock import Clock, china_date, system_clock
from hub.db import alert_history, alerts, from_row, monitor_cursors, monitor_evaluations, monitor_events
from hub.errors import HubError, RequestError

STATUSES = ("new", "assigned", "visited", "closed")
ALERT_SEQ_LOCK = 0x6875625F616C7274  # "hub_alrt": PostgreSQL advisory lock serialising alert sequence numbers
DISPOSITIONS = ("enrolled", "referred", "no_need", "false_positive")


# what an alert says about the event, the same in the new alert, the stored row and the GraphQL node
FACTS = ("id", "rule_id", "id_number", "area_code", "area_name", "source", "event_kind", "occurred_on")


def facts(a: Alert | NewAlert) -> dict[str, Any]:
    """The ``FACTS`` of an alert, by name."""
    return {name: getattr(a, name) for name in FACTS}


@dataclass(frozen=True)
class Alert:
    id: str
    rule_id: str
    id_number: str
    area_code: str
    area_name: str
    source: str
    event_kind: str
    occurred_on: date
    matched: list[dict[str, Any]]
    programmes: list[dict[str, Any]]
    estimated_monthly: int
    created_at: datetime
    due_on: date
    status: str
    assigned_to: str
    disposition: str
    history: list[dict[str, Any]]


@dataclass(frozen=True)
class Verdict:
    """A rule's recorded verdict on one event (``monitor_evaluations``): whether the resident was found, the match
    as disclosed (None: no match), and the alert it created."""

    found: bool
    match: dict[str, Any] | None
    alert_id: str
    entry_written: bool


@dataclass
class NewAlert:
    rule_id: str
    id_number: str
    area_code: str
    area_name: str
    source: str
    event_kind: str
    occurred_on: date
    matched: list[dict[str, Any]]
    programmes: list[dict[str, Any]]
    estimated_monthly: int
    due_on: date
    due_basis: str
    id: str = ""

    @property
    def open_key(self) -> str:
        return f"{self.rule_id}:{self.id_number}"


class AlertError(HubError):
    code = "ALERT_STATE"
    status = 409


class Claim:
    """One department's cursor, held while its next batch of events is handled. On PostgreSQL the cursor row is
    locked (``FOR UPDATE SKIP LOCKED``) until ``finish`` or ``release``, so a second hub process skips the
    department instead of handling the same events; on SQLite (one process) the reader's own lock suffices."""

    def __init__(self, conn: Connection, department: str, position: int) -> None:
        self.conn, self.department, self.position = conn, department, position


class AlertStore:
    def __init__(self, engine: Engine, clock: Clock = system_clock) -> None:
        self.engine, self.clock = engine, clock
        self.postgres = engine.dialect.name == "postgresql"
        self._cursors: set[str] = set()  # departments whose cursor row exists

    # ---- cursors --------------------------------------------------------------------------------------------
    def _ensure_cursor(self, department: str) -> None:
        if department in self._cursors:
            return
        values = {"department": department, "position": 0, "updated_at": self.clock()}
        dialect = postgresql if self.postgres else sqlite
        stmt = dialect.insert(monitor_cursors).values(**values).on_conflict_do_nothing()
        with self.engine.begin() as conn:
            conn.execute(stmt)
        self._cursors.add(department)

    def claim(self, department: str) -> Claim | None:
        """The department's cursor, or None when another process is handling it right now."""
        self._ensure_cursor(department)
        conn = self.engine.connect()
        try:
            stmt = select(monitor_cursors.c.position).where(monitor_cursors.c.department == department)
            if self.postgres:
                conn.begin()
                position = conn.execute(stmt.with_for_update(skip_locked=True)).scalar()
                if position is None:
                    conn.rollback()
                    conn.close()
                    return None
            else:
                position = conn.execute(stmt).scalar_one()
                conn.rollback()  # no snapshot held on SQLite while the events are evaluated
            return Claim(conn, department, int(position))
        except BaseException:
            conn.close()
            raise

    def release(self, claim: Claim) -> None:
        try:
            claim.conn.rollback()
        finally:
            claim.conn.close()

    def position(self, department: str) -> int:
        with self.engine.connect() as conn:
            found = conn.execute(
                select(monitor_cursors.c.position).where(monitor_cursors.c.department == department)
            ).scalar()
        return int(found or 0)

    def open_alerts(self, keys: Sequence[str]) -> dict[str, str]:
        """open_key -> alert id, for the keys that have an open alert."""
        if not keys:
            return {}
        with self.engine.connect() as conn:
            rows = conn.execute(select(alerts.c.open_key, alerts.c.id).where(alerts.c.open_key.in_(list(keys))))
            return {r[0]: r[1] for r in rows}

    # ---- evaluations of in-flight batches ------------------------------------------------------------------------
    def verdicts(self, department: str, seqs: Sequence[int]) -> dict[tuple[int, str], Verdict]:
        """(event seq, rule id) -> the verdict recorded when this batch was handled before (a crash came between the
        evaluation and the cursor moving)."""
        if not seqs:
            return {}
        t = monitor_evaluations
        stmt = select(t.c.seq, t.c.rule_id, t.c.verdict, t.c.alert_id, t.c.entry_written).where(
            t.c.department == department, t.c.seq >= min(seqs), t.c.seq <= max(seqs)
        )
        with self.engine.connect() as conn:
            out = {}
            for seq, rule_id, verdict, alert_id, written in conn.execute(stmt):
                v = json.loads(verdict)
                out[(int(seq), str(rule_id))] = Verdict(bool(v["found"]), v["match"], str(alert_id), bool(written))
            return out

    def record_verdicts(self, department: str, verdicts: dict[tuple[int, str], Verdict]) -> None:
        """Keep new verdicts (committed before any alert entry is written, so a retry asks nothing again)."""
        if not verdicts:
            return
        now = self.clock()
        rows = [
            dict(
                department=department,
                seq=seq,
                rule_id=rule_id,
                verdict=json.dumps({"found": v.found, "match": v.match}, ensure_ascii=False),
                alert_id=v.alert_id,
                entry_written=v.entry_written,
                evaluated_at=now,
            )
            for (seq, rule_id), v in verdicts.items()
        ]
        with self.engine.begin() as conn:
            conn.execute(insert(monitor_evaluations), rows)

    def entries_written(self, department: str, alert_ids: Sequence[str]) -> None:
        if not alert_ids:
            return
        t = monitor_evaluations
        with self.engine.begin() as conn:
            which = and_(t.c.department == department, t.c.alert_id.in_(list(alert_ids)))
            conn.execute(update(t).where(which).values(entry_written=True))

    def new_id(self) -> str:
        return f"AL{china_date(self.clock()):%Y%m%d}-{secrets.token_hex(4).upper()}"

    def finish(
        self,
        claim: Claim | None,
        position: int,
        events: Sequence[dict[str, Any]],
        created: Sequence[NewAlert],
        again: Sequence[tuple[str, str]],
    ) -> None:
        """In one transaction: the new alerts, the 'matched again' notes, what became of each event, and the cursor
        moved to ``position`` (no claim: a sweep, no cursor). Nothing is recorded unless all of it is."""
        now = self.clock()
        conn = claim.conn if claim is not None else self.engine.connect()
        try:
            if not conn.in_transaction():
                conn.begin()
            if created and self.postgres:
                # sequence numbers in commit order: held to the commit, so no reader's cursor can pass an alert
                # that another process has numbered but not yet committed
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": ALERT_SEQ_LOCK})
            next_seq = select(func.coalesce(func.max(alerts.c.seq), 0) + 1).scalar_subquery()
            for a in created:
                conn.execute(
                    insert(alerts).values(
                        seq=next_seq,  # one statement: atomic on SQLite's single writer too
                        **facts(a),
                        matched=json.dumps(a.matched, ensure_ascii=False),
                        programmes=json.dumps(a.programmes, ensure_ascii=False),
                        estimated_monthly=a.estimated_monthly,
                        created_at=now,
                        due_on=a.due_on,
                        status="new",
                        assigned_to="",
                        disposition="",
                        open_key=a.open_key,
                        updated_at=now,
                    )
                )
            history = [
                dict(alert_id=a.id, at=now, actor="monitor", action="created",
                     detail=f"rule {a.rule_id} on {a.source} ({a.event_kind}); due {a.due_on} ({a.due_basis})")
                for a in created
            ] + [
                dict(alert_id=alert_id, at=now, actor="monitor", action="matched_again", detail=detail)
                for alert_id, detail in again
            ]  # fmt: skip
            if history:
                conn.execute(insert(alert_history), history)
            if events:
                conn.execute(insert(monitor_events), [dict(handled_at=now, **e) for e in events])
            if claim is not None:
                conn.execute(
                    update(monitor_cursors)
                    .where(monitor_cursors.c.department == claim.department)
                    .values(position=position, updated_at=now)
                )
                t = monitor_evaluations
                conn.execute(delete(t).where(t.c.department == claim.department, t.c.seq <= position))
            conn.commit()
        finally:
            conn.close()

    # ---- alerts ---------------------------------------------------------------------------------------------
    def _alert(self, conn: Connection, row: Any) -> Alert:
        m = row._mapping
        history = [
            {"at": h.at.isoformat(), "actor": h.actor, "action": h.action, "detail": h.detail}
            for h in conn.execute(
                select(alert_history).where(alert_history.c.alert_id == m["id"]).order_by(alert_history.c.id)
            )
        ]
        return from_row(
            Alert, row, matched=json.loads(m["matched"]), programmes=json.loads(m["programmes"]), history=history
        )

    def get(self, alert_id: str) -> Alert | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(alerts).where(alerts.c.id == alert_id)).first()
            return None if row is None else self._alert(conn, row)

    def page(
        self,
        area_prefix: str,
        *,
        after: str | None = None,
        first: int = 50,
        status: str | None = None,
        rule_id: str | None = None,
        id_number: str | None = None,
    ) -> tuple[list[Alert], bool]:
        """Alerts in ``area_prefix`` in the order they were committed (``seq``), after the cursor ``after`` (an
        alert id, standing for its sequence number): (page, has_more)."""
        cond = [alerts.c.area_code.startswith(area_prefix, autoescape=True)]  # as the row scope does
        if status:
            cond.append(alerts.c.status == status)
        if rule_id:
            cond.append(alerts.c.rule_id == rule_id)
        if id_number:
            cond.append(alerts.c.id_number == id_number)
        with self.engine.connect() as conn:
            if after:
                ref = conn.execute(select(alerts.c.seq).where(alerts.c.id == after)).scalar()
                if ref is None:
                    raise RequestError("after: no such alert", code="BAD_ARGUMENT")
                cond.append(alerts.c.seq > ref)
            rows = conn.execute(select(alerts).where(and_(*cond)).order_by(alerts.c.seq).limit(first + 1)).all()
            return [self._alert(conn, r) for r in rows[:first]], len(rows) > first

    def latest(self, area_prefix: str) -> str | None:
        """The id of the newest alert in ``area_prefix`` (a subscription's starting cursor), or None."""
        with self.engine.connect() as conn:
            found = conn.execute(
                select(alerts.c.id)
                .where(alerts.c.area_code.startswith(area_prefix, autoescape=True))
                .order_by(alerts.c.seq.desc())
                .limit(1)
            ).scalar()
        return None if found is None else str(found)

    def transition(
        self, alert_id: str, action: str, actor: str, *, assignee: str = "", disposition: str = "", note: str = ""
    ) -> Alert:
        """assign (new/assigned → assigned), visit (assigned/visited → visited), close (any open → closed)."""
        now = self.clock()
        with self.engine.begin() as conn:
            row = conn.execute(select(alerts).where(alerts.c.id == alert_id)).first()
            if row is None:
                raise HubError(f"no alert {alert_id}", code="NOT_FOUND")
            status = row._mapping["status"]
            values: dict[str, Any] = {"updated_at": now}
            if action == "assign":
                if status not in ("new", "assigned"):
                    raise AlertError(f"alert {alert_id} is {status}; only a new or assigned alert can be assigned")
                if not assignee.strip():
                    raise RequestError("assignee: name the caseworker", code="BAD_ARGUMENT")
                values.update(status="assigned", assigned_to=assignee.strip()[:80])
                detail = f"assigned to {assignee.strip()[:80]}"
            elif action == "visit":
                if status not in ("assigned", "visited"):
                    raise AlertError(f"alert {alert_id} is {status}; assign it before recording a visit")
                values.update(status="visited")
                detail = "home visit recorded"
            elif action == "close":
                if status == "closed":
                    raise AlertError(f"alert {alert_id} is already closed")
                if disposition not in DISPOSITIONS:
                    raise RequestError(f"disposition: one of {', '.join(DISPOSITIONS)}", code="BAD_ARGUMENT")
                values.update(status="closed", disposition=disposition, open_key=None)
                detail = f"closed: {disposition}"
            else:  # pragma: no cover - the schema offers only these three
                raise RequestError(f"unknown action {action!r}", code="BAD_ARGUMENT")
            if note.strip():
                detail += f"; {note.strip()[:500]}"
            conn.execute(update(alerts).where(alerts.c.id == alert_id).values(**values))
            conn.execute(
                insert(alert_history).values(alert_id=alert_id, at=now, actor=actor[:160], action=action, detail=detail)
            )
            row = conn.execute(select(alerts).where(alerts.c.id == alert_id)).first()
            assert row is not None
            return self._alert(conn, row)

    def events(self, department: str | None = None) -> list[dict[str, Any]]:
        """What became of each handled event (no ID numbers here)."""
        stmt = select(monitor_events).order_by(monitor_events.c.department, monitor_events.c.seq)
        if department:
            stmt = stmt.where(monitor_events.c.department == department)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(stmt)]
