"""Approved operations (persisted documents) and each client's mode, in the hub's database (docs/operations.md).

A document is identified as in the GraphQL-over-HTTP persisted-documents appendix: ``sha256:<hex>`` of its
exact text. It is submitted for one consumer (client) and one declared purpose, and goes pending → approved →
retired; retired is final for that text, consumer and purpose (submitting it again makes it pending again).
Checking a document against the policies before approval is the caller's (hub/operations.py)."""

from __future__ import annotations

import builtins
import hashlib
import re
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import anyio
from sqlalchemy import Connection, Engine, Row, insert, select, update

from hub.clock import Clock, system_clock
from hub.db import from_row, operation_modes, operations
from hub.errors import RequestError
from hub.sources.sql import hub_inline, try_inline
from hub.store.prefetch import prefetched

MODES = ("off", "log", "require")
DOCUMENT_ID = re.compile(r"^sha256:[0-9a-f]{64}$")
MAX_TEXT = 100_000  # characters of a submitted document


def document_id(text: str) -> str:
    """The document's identifier: ``sha256:`` and the SHA-256 of its exact UTF-8 text, in lowercase hex."""
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Operation:
    document_id: str
    client_id: str
    purpose: str
    text: str
    status: str  # pending | approved | retired
    submitted_by: str
    submitted_at: datetime
    approved_by: str
    approved_at: datetime | None
    retired_by: str
    retired_at: datetime | None


def _to(row: Row[Any]) -> Operation:
    return from_row(Operation, row)


def _named(who: str, what: str) -> str:
    who = who.strip()
    if not who or len(who) > 80:
        raise RequestError(f"{what} must be named (1 to 80 characters)", code="BAD_ARGUMENT")
    return who


class OperationStore:
    def __init__(self, engine: Engine, clock: Clock = system_clock) -> None:
        self.engine = engine
        self.clock = clock
        self.inline = hub_inline(engine)  # the request path's read of a client's mode (``amode``)

    def submit(self, client_id: str, purpose: str, text: str, by: str) -> Operation:
        """Record ``text`` as pending for the client and purpose (a retired one becomes pending again; a pending or
        approved one is returned unchanged)."""
        by = _named(by, "the submitter")
        if not text.strip() or len(text) > MAX_TEXT:
            raise RequestError(f"the document must be 1 to {MAX_TEXT} characters", code="BAD_ARGUMENT")
        doc = document_id(text)
        existing = self.get(doc, client_id, purpose)
        with self.engine.begin() as conn:
            if existing is None:
                conn.execute(
                    insert(operations).values(
                        document_id=doc,
                        client_id=client_id,
                        purpose=purpose,
                        text=text,
                        status="pending",
                        submitted_by=by,
                        submitted_at=self.clock(),
                        approved_by="",
                        retired_by="",
                    )
                )
            elif existing.status == "retired":
                conn.execute(
                    self._where(update(operations), doc, client_id, purpose).values(
                        status="pending",
                        submitted_by=by,
                        submitted_at=self.clock(),
                        approved_by="",
                        approved_at=None,
                        retired_by="",
                        retired_at=None,
                    )
                )
        found = self.get(doc, client_id, purpose)
        assert found is not None
        return found

    def get(self, doc: str, client_id: str, purpose: str) -> Operation | None:
        with self.engine.connect() as conn:
            row = conn.execute(self._where(select(operations), doc, client_id, purpose)).first()
        return None if row is None else _to(row)

    def list(self, client_id: str | None = None, status: str | None = None) -> builtins.list[Operation]:
        stmt = select(operations).order_by(operations.c.id)
        if client_id:
            stmt = stmt.where(operations.c.client_id == client_id)
        if status:
            stmt = stmt.where(operations.c.status == status)
        with self.engine.connect() as conn:
            return [_to(r) for r in conn.execute(stmt)]

    def approve(self, doc: str, client_id: str, purpose: str, by: str) -> Operation:
        return self._move(doc, client_id, purpose, ("pending",), "approved", approved_by=_named(by, "the approver"))

    def retire(self, doc: str, client_id: str, purpose: str, by: str) -> Operation:
        by = _named(by, "who retires it")
        return self._move(doc, client_id, purpose, ("pending", "approved"), "retired", retired_by=by)

    def approved_text(self, client_id: str, purpose: str, doc: str) -> str | None:
        """The text of an approved document for this client and purpose, or None."""
        stmt = self._where(select(operations.c.text), doc, client_id, purpose).where(operations.c.status == "approved")
        with self.engine.connect() as conn:
            text = conn.execute(stmt).scalar()
        return None if text is None else str(text)

    async def amode(self, client_id: str) -> str:
        """``mode`` for the request path: read on every request (a change counts at once), inline on SQLite."""
        pre = prefetched(client_id)  # read with the client's row (PostgreSQL, hub/store/prefetch.py)
        if pre is not None:
            return pre.mode
        rows = try_inline(self.inline, operation_modes, "client_id", client_id, ("mode",))
        if rows is not None:
            return str(rows[0].mode or "off") if rows else "off"
        return await anyio.to_thread.run_sync(self.mode, client_id)

    def mode(self, client_id: str, conn: Connection | None = None) -> str:
        with self.engine.connect() if conn is None else nullcontext(conn) as c:
            mode = c.execute(select(operation_modes.c.mode).where(operation_modes.c.client_id == client_id)).scalar()
        return str(mode or "off")

    def set_mode(self, client_id: str, mode: str) -> None:
        if mode not in MODES:
            raise RequestError(f"mode must be one of {', '.join(MODES)}", code="BAD_ARGUMENT")
        with self.engine.begin() as conn:
            done = conn.execute(
                update(operation_modes)
                .where(operation_modes.c.client_id == client_id)
                .values(mode=mode, updated_at=self.clock())
            ).rowcount
            if not done:
                conn.execute(insert(operation_modes).values(client_id=client_id, mode=mode, updated_at=self.clock()))

    def _move(
        self, doc: str, client_id: str, purpose: str, from_: tuple[str, ...], to: str, **values: str
    ) -> Operation:
        stamp = {"approved": "approved_at", "retired": "retired_at"}[to]
        with self.engine.begin() as conn:
            moved = conn.execute(
                self._where(update(operations), doc, client_id, purpose)
                .where(operations.c.status.in_(from_))
                .values(status=to, **values, **{stamp: self.clock()})
            ).rowcount
        found = self.get(doc, client_id, purpose)
        if found is None:
            raise RequestError(
                f"no operation {doc} submitted for client {client_id} and purpose {purpose}", code="OPERATION_STATE"
            )
        if not moved:
            raise RequestError(f"operation {doc} is {found.status}; it cannot become {to}", code="OPERATION_STATE")
        return found

    @staticmethod
    def _where(stmt, doc: str, client_id: str, purpose: str):  # type: ignore[no-untyped-def]
        return stmt.where(
            operations.c.document_id == doc, operations.c.client_id == client_id, operations.c.purpose == purpose
        )
