"""PostgreSQL end to end: the hub's own database and two departments on real PostgreSQL servers started by
the tests; a department server stopped mid-run gives partial results; an audit server stopped fails closed."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic import command
from sqlalchemy import func, select

from hub.app import create_app
from hub.db import alembic_config, audit_entries
from hub.demo.generate import GenerateResult
from hub.departments import DEPARTMENTS
from hub.localpg import PgServer
from tests.conftest import Hub, make_settings, without_receipt, working_clock
from tests.pgserver import copy_department, new_server

PG_DEPTS = ("tax", "disability", "medical_security")
QUERY = """query($id: String!) { person(idNumber: $id) { name
  civilAffairs { tier } disability { grade category } medical { outOfPocket12mBand hasChronicDisease }
  employment { pensionMonthlyBand }
  tax { incomeBand } } }"""


@pytest.fixture(scope="module")
def hub_pg() -> Iterator[PgServer]:
    server = new_server()
    yield server
    server.cleanup()


@pytest.fixture(scope="module")
def dept_pg(dept_data: tuple[Path, GenerateResult]) -> Iterator[tuple[PgServer, dict[str, str]]]:
    server = new_server()
    urls = {}
    for code in PG_DEPTS:
        url = server.create_db(f"dept_{code}")
        metadata = DEPARTMENTS[code].metadata
        assert metadata is not None
        assert copy_department(dept_data[0] / "departments" / f"{code}.sqlite", metadata, url) > 0
        urls[code] = url
    yield server, urls
    server.cleanup()


@pytest.fixture(scope="module")
async def pg_hub(
    dept_data: tuple[Path, GenerateResult],
    hub_pg: PgServer,
    dept_pg: tuple[PgServer, dict[str, str]],
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Hub]:
    root = tmp_path_factory.mktemp("pghub")
    (root / "departments").symlink_to(dept_data[0] / "departments")
    settings = make_settings(root, database_url=hub_pg.create_db("hub"), department_urls=dept_pg[1], source_timeout=2.0)
    app = create_app(settings, sign_interval=3600, clock=working_clock())
    _, secret = app.state.hub.clients.add("ca", "civil_affairs", "330113", ["CASE"])
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hub.test") as client:
            yield Hub(app, client, settings, {"ca": secret}, dept_data[1], {})


def _entries(hub: Hub) -> list[dict[str, Any]]:
    import json

    with hub.app.state.hub.engine.connect() as conn:
        return [json.loads(r[0]) for r in conn.execute(select(audit_entries.c.entry).order_by(audit_entries.c.seq))]


async def test_same_answers_as_sqlite(pg_hub: Hub, hub: Hub) -> None:
    on_pg = await pg_hub.query(QUERY, client="ca", variables={"id": pg_hub.data.golden_id})
    on_sqlite = await hub.query(QUERY, variables={"id": hub.data.golden_id})
    assert on_pg.status_code == 200 and "errors" not in on_pg.json(), on_pg.text
    assert without_receipt(on_pg.json()) == without_receipt(on_sqlite.json())
    assert on_pg.json()["data"]["person"]["disability"] == {"grade": 2, "category": 4}
    assert pg_hub.app.state.hub.engine.dialect.name == "postgresql"
    assert pg_hub.app.state.hub.sources["tax"].engine.dialect.name == "postgresql"
    entries = _entries(pg_hub)
    assert [e["seq"] for e in entries] == list(range(len(entries)))
    assert entries[-1]["decision"] == "allow" and entries[-1]["client_id"] == "ca"


async def test_migrations_have_no_drift_on_postgres(pg_hub: Hub) -> None:
    command.check(alembic_config(pg_hub.settings.database_url))


async def test_department_read_only_on_postgres(pg_hub: Hub) -> None:
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    engine = pg_hub.app.state.hub.sources["tax"].engine
    with pytest.raises(DBAPIError, match="read-only transaction"), engine.connect() as conn:
        conn.execute(text("DELETE FROM income"))


async def test_department_down_gives_partial_results(pg_hub: Hub, dept_pg: tuple[PgServer, dict[str, str]]) -> None:
    server = dept_pg[0]
    for code in PG_DEPTS:
        pg_hub.app.state.hub.sources[code].engine.dispose()
    server.kill()
    server.wait_down()
    try:
        r = await pg_hub.query(QUERY, client="ca", variables={"id": pg_hub.data.golden_id})
        assert r.status_code == 200
        body = r.json()
        person = body["data"]["person"]
        # fields from the departments still up arrive; the stopped ones are null with UPSTREAM_UNAVAILABLE
        assert person["name"] and person["civilAffairs"] == {"tier": "low_edge"}
        assert person["employment"] == {"pensionMonthlyBand": "BELOW_1K"}
        assert person["tax"] == {"incomeBand": None} or person["tax"] is None
        assert person["disability"] is None or person["disability"] == {"grade": None, "category": None}
        codes = {e["extensions"]["code"] for e in body["errors"]}
        assert codes == {"UPSTREAM_UNAVAILABLE"}
        assert {tuple(e["path"][:2]) for e in body["errors"]} >= {("person", "disability"), ("person", "medical")}
        entry = _entries(pg_hub)[-1]
        assert set(entry["upstream_failures"]) == {"disability", "medical_security", "tax"}
        assert entry["decision"] == "allow" and "UPSTREAM_UNAVAILABLE" in entry["reasons"]
        # after `breaker_threshold` failed calls the breaker opens: requests no longer wait for the dead server
        for _ in range(pg_hub.settings.breaker_threshold - 1):
            await pg_hub.query(QUERY, client="ca", variables={"id": pg_hub.data.golden_id})
        started = time.perf_counter()
        r = await pg_hub.query(QUERY, client="ca", variables={"id": pg_hub.data.golden_id})
        assert time.perf_counter() - started < 1.0
        assert all("circuit open" in e["message"] for e in r.json()["errors"])
        assert pg_hub.app.state.hub.sources["tax"].breaker.state == "open"
    finally:
        server.start()
    # after the reset period one trial call goes through and closes the breaker
    for code in PG_DEPTS:
        pg_hub.app.state.hub.sources[code].breaker.opened_at = time.monotonic() - 60
    r = await pg_hub.query(QUERY, client="ca", variables={"id": pg_hub.data.golden_id})
    assert "errors" not in r.json(), r.text
    assert pg_hub.app.state.hub.sources["tax"].breaker.state == "closed"


async def test_audit_database_down_fails_closed(pg_hub: Hub, hub_pg: PgServer) -> None:
    with pg_hub.app.state.hub.engine.connect() as conn:
        before = conn.execute(select(func.count()).select_from(audit_entries)).scalar_one()
    await pg_hub.token("ca")  # issued while the database is up (token issue reads the clients table)
    hub_pg.kill()
    hub_pg.wait_down()
    try:
        r = await pg_hub.query(QUERY, client="ca", variables={"id": pg_hub.data.golden_id})
        assert r.status_code == 503
        assert r.json()["data"] is None
        assert r.json()["errors"][0]["extensions"]["code"] == "AUDIT_UNAVAILABLE"
        assert "low_edge" not in r.text
    finally:
        hub_pg.start()
    r = await pg_hub.query(QUERY, client="ca", variables={"id": pg_hub.data.golden_id})
    assert r.status_code == 200
    with pg_hub.app.state.hub.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(audit_entries)).scalar_one() == before + 1
