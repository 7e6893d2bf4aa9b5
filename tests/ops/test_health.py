"""/livez and /readyz over HTTP: ready only when the hub database answers, the audit log can take a write and
policies are loaded; departments reported, never fatal."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from hub.departments import SOURCE_DEPARTMENTS
from tests.conftest import Hub
from tests.ops.conftest import OwnHub


async def test_livez_answers(hub: Hub) -> None:
    r = await hub.client.get("/livez")
    assert (r.status_code, r.json()) == (200, {"status": "alive"})
    assert r.headers["cache-control"] == "no-store"


async def test_readyz_ready_with_departments_reported(hub: Hub) -> None:
    r = await hub.client.get("/readyz")
    body = r.json()
    assert r.status_code == 200
    assert body["status"] == "ready"
    assert body["checks"] == {"hub_database": True, "audit_writable": True, "policies_loaded": True}
    assert sorted(body["departments"]) == sorted(SOURCE_DEPARTMENTS)
    assert all(d == {"breaker": "closed", "failures": 0} for d in body["departments"].values())


async def test_readyz_reports_an_open_breaker_but_stays_ready(own_hub: OwnHub) -> None:
    async with own_hub() as hub:
        breaker = hub.app.state.hub.sources["tax"].breaker
        for _ in range(breaker.threshold):
            breaker.failure()
        r = await hub.client.get("/readyz")
        assert r.status_code == 200
        assert r.json()["departments"]["tax"] == {"breaker": "open", "failures": breaker.threshold}
        assert r.json()["departments"]["medical_security"] == {"breaker": "closed", "failures": 0}


async def test_readyz_not_ready_while_the_audit_log_cannot_take_a_write(own_hub: OwnHub, tmp_path: Path) -> None:
    async with own_hub(db_busy_timeout=0.2) as hub:
        other = sqlite3.connect(tmp_path / "hub.sqlite", isolation_level=None)  # another process's writer
        other.execute("BEGIN IMMEDIATE")
        try:
            r = await hub.client.get("/readyz")
            assert r.status_code == 503
            assert r.json()["status"] == "not ready"
            assert r.json()["checks"] == {"hub_database": True, "audit_writable": False, "policies_loaded": True}
        finally:
            other.rollback()
            other.close()
        r = await hub.client.get("/readyz")
        assert (r.status_code, r.json()["status"]) == (200, "ready")


async def test_readyz_not_ready_when_the_hub_database_is_gone(own_hub: OwnHub, tmp_path: Path) -> None:
    async with own_hub() as hub:
        db = tmp_path / "hub.sqlite"
        moved = tmp_path / "hub.sqlite.away"
        db.rename(moved)
        db.mkdir()  # a directory where the file was: nothing can open it
        hub.app.state.hub.engine.dispose()  # no pooled connection to the old file
        try:
            r = await hub.client.get("/readyz")
            assert r.status_code == 503
            assert r.json()["checks"] == {"hub_database": False, "audit_writable": False, "policies_loaded": True}
            assert "sqlite" not in r.text  # no detail of the failure in the answer
            assert (await hub.client.get("/livez")).status_code == 200  # alive, just not ready
        finally:
            db.rmdir()
            moved.rename(db)
            hub.app.state.hub.engine.dispose()
        assert (await hub.client.get("/readyz")).status_code == 200
