"""Liveness and readiness (docs/operations.md).

``/livez`` says the process answers at all: it touches nothing else, so an orchestrator restarts the hub only
when the process itself is stuck. ``/readyz`` says whether the hub can serve a request now: its database
answers, the audit log can take a write (the hub fails closed without it), and policies are loaded. Department
breakers are reported but never make the hub unready: a request touching a failing department still gets the
rest of its answer, with ``UPSTREAM_UNAVAILABLE`` where that department's fields are.

Nothing about a failure's detail is in the answer (a database error can hold its URL); the log has it."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, text

if TYPE_CHECKING:
    from hub.state import HubState

log = logging.getLogger("hub.health")

CHECK_TIMEOUT = 5.0  # seconds a readiness check may take before it counts as failed


def database_reachable(engine: Engine) -> None:
    with engine.connect() as conn:
        conn.execute(text("SELECT 1")).scalar()


def audit_writable(engine: Engine) -> None:
    """The audit log could take a write now: the write lock is obtainable (SQLite: ``BEGIN IMMEDIATE``, which
    waits at most ``HUB_DB_BUSY_TIMEOUT``), or the server accepts writes (PostgreSQL: not a read-only standby
    or transaction). Nothing is written; the transaction is rolled back."""
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            raw = conn.connection.driver_connection
            assert raw is not None
            cur = raw.cursor()
            try:
                if raw.in_transaction:
                    raw.rollback()
                cur.execute("BEGIN IMMEDIATE")
                cur.execute("SELECT count(*) FROM audit_entries WHERE 0")
            finally:
                raw.rollback()
                cur.close()
            return
        read_only = conn.execute(text("SELECT current_setting('transaction_read_only')")).scalar()
        if read_only != "off":
            raise RuntimeError("the hub database accepts no writes")
        conn.execute(text("SELECT count(*) FROM audit_entries WHERE false")).scalar()


async def _check(name: str, fn: Any, *args: Any) -> bool:
    try:
        await asyncio.wait_for(asyncio.to_thread(fn, *args), CHECK_TIMEOUT)
        return True
    except Exception as exc:  # noqa: BLE001 (any failure means not ready; the detail goes to the log only)
        log.warning("readiness check %s failed: %s", name, exc.__class__.__name__)
        return False


async def readiness(state: HubState) -> tuple[bool, dict[str, Any]]:
    """(ready, the answer's body)."""
    checks = {
        "hub_database": await _check("hub_database", database_reachable, state.engine),
        "audit_writable": await _check("audit_writable", audit_writable, state.engine),
        "policies_loaded": bool(state.policy.purposes) and bool(state.policy.grants),
    }
    ready = all(checks.values())
    departments = {
        code: {"breaker": source.breaker.state, "failures": source.breaker.failures}
        for code, source in sorted(state.sources.items())
    }
    body = {"status": "ready" if ready else "not ready", "checks": checks, "departments": departments}
    return ready, body
