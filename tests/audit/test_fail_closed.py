"""Fail closed: when the audit entry cannot be made durable, the client gets an error and no data."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event, func, select
from sqlalchemy.exc import OperationalError

from hub.app import create_app
from hub.db import audit_entries
from hub.demo.generate import GenerateResult
from tests.conftest import Hub, make_settings, working_clock

QUERY = "query($id: String!) { person(idNumber: $id) { name civilAffairs { tier } } }"


@pytest.fixture
async def fragile(dept_data: tuple[Path, GenerateResult], tmp_path: Path) -> AsyncIterator[Hub]:
    """A hub with its own audit database (shared department data) and a short lock wait."""
    root = tmp_path
    (root / "departments").symlink_to(dept_data[0] / "departments")
    settings = make_settings(root, db_busy_timeout=0.3)
    app = create_app(settings, sign_interval=3600, clock=working_clock())
    _, secret = app.state.hub.clients.add("ca", "civil_affairs", "330113", ["CASE"])
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hub.test") as client:
            hub = Hub(app, client, settings, {"ca": secret}, dept_data[1], {})
            yield hub


def _count(hub: Hub) -> int:
    with hub.app.state.hub.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(audit_entries)).scalar_one())


async def test_locked_audit_store_withholds_data(fragile: Hub) -> None:
    hub = fragile
    await hub.token("ca")  # the token endpoint does not need the audit store
    ok = await hub.query(QUERY, client="ca", variables={"id": hub.data.golden_id})
    assert ok.status_code == 200 and ok.json()["data"]["person"]["name"]
    before = _count(hub)
    blocker = sqlite3.connect(hub.settings.data_dir / "hub.sqlite", timeout=0)
    blocker.execute("BEGIN EXCLUSIVE")  # a real lock held by another connection: every audit write fails
    try:
        for _ in range(3):
            r = await hub.query(QUERY, client="ca", variables={"id": hub.data.golden_id})
            assert r.status_code == 503
            assert r.json()["data"] is None
            assert r.json()["errors"][0]["extensions"]["code"] == "AUDIT_UNAVAILABLE"
            assert "钱" not in r.text and hub.data.golden_id not in r.text
    finally:
        blocker.rollback()
        blocker.close()
    assert _count(hub) == before
    again = await hub.query(QUERY, client="ca", variables={"id": hub.data.golden_id})
    assert again.status_code == 200 and _count(hub) == before + 1


@pytest.mark.parametrize(
    "fault", ["disk I/O error", "database or disk is full", "attempt to write a readonly database"]
)
async def test_write_faults_withhold_data(fragile: Hub, fault: str) -> None:
    hub = fragile
    engine = hub.app.state.hub.engine

    def fail(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO AUDIT_ENTRIES"):
            raise OperationalError(statement, {}, sqlite3.OperationalError(fault))

    event.listen(engine, "before_cursor_execute", fail)
    try:
        r = await hub.query(QUERY, client="ca", variables={"id": hub.data.golden_id})
        denied = await hub.query(
            '{ person(idNumber: "11010519491231002X") { name tax { annualWageIncome } } }', client="ca"
        )
    finally:
        event.remove(engine, "before_cursor_execute", fail)
    for resp in (r, denied):
        assert resp.status_code == 503 and resp.json() == {
            "data": None,
            "errors": [
                {
                    "message": "the audit record could not be written; no data was released",
                    "extensions": {
                        "code": "AUDIT_UNAVAILABLE",
                        "requestId": resp.json()["errors"][0]["extensions"]["requestId"],
                    },
                }
            ],
        }
