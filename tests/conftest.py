"""Shared fixtures: real department SQLite files, a real hub database, the real ASGI app over httpx."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from hub.app import create_app
from hub.clock import CHINA, TestClock
from hub.demo.generate import GenerateResult, generate
from hub.settings import Settings
from hub.store.clients import ClientStore
from tests.browser import browser as browser  # the web pages' tests' fixture (Debian chromium)

# real subgraph and hub processes (tests/sources/, tests/federation/); the workers' groups (pytest-xdist)
pytest_plugins = ["tests.live", "tests.grouping"]


def _temporary_files_in_memory() -> None:
    """The suite's temporary files (hub and department SQLite files, audit archives, PostgreSQL clusters) go to
    /dev/shm when it has room and TMPDIR is not set: a memory file system, where fsync returns at once. Every
    durable commit of the hub waits for one (audit entries, SQLite ``synchronous=FULL``, PostgreSQL ``fsync=on``),
    and on a shared disk those waits were most of the suite's time. No test needs data to survive a power cut;
    the kill tests kill processes, whose committed writes are in the kernel either way."""
    if os.environ.get("TMPDIR"):
        return
    try:
        free = os.statvfs("/dev/shm")
    except OSError:
        return
    if free.f_bavail * free.f_frsize >= 4 * 2**30 and os.access("/dev/shm", os.W_OK):
        os.environ["TMPDIR"] = "/dev/shm"  # pytest's tmp_path, tempfile, and the processes the tests start
        tempfile.tempdir = None  # read TMPDIR again


_temporary_files_in_memory()

REPO = Path(__file__).resolve().parent.parent
WORKING_HOUR = time(10, 0)  # the hour the suite's hubs believe it is, in China, whatever the real hour


def working_clock(at: time = WORKING_HOUR) -> TestClock:
    """A clock at ``at`` China time on the machine's date (so ``date.today()`` in a test is the hub's "today")."""
    return TestClock(datetime.combine(date.today(), at, CHINA))


POLICIES = REPO / "policies"
RESIDENTS = 2_000

# client id -> (department, area, purposes, roles)
CLIENTS: dict[str, tuple[str, str, list[str], list[str]]] = {
    "linping-ca": ("civil_affairs", "330113", ["VER", "MON", "CASE", "STAT"], ["authorization_clerk"]),
    "hangzhou-ca": ("civil_affairs", "3301", ["MON", "CASE", "STAT"], []),
    "xihu-ca": ("civil_affairs", "330106", ["VER", "MON", "CASE"], []),
    "linping-med": ("medical_security", "330113", ["REF"], []),
    "hz-utilities": ("utilities", "3301", ["REF"], []),
    "officer": ("audit_office", "33", ["AUDIT"], ["officer"]),
}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--reverse", action="store_true", help="run the collected tests in reverse order (checks order independence)"
    )


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`--reverse` runs the tests in reverse order; every test that needs PostgreSQL is marked, so
    `pytest -m "not postgres"` runs the SQLite half alone (the PostgreSQL parameter of the shared fixtures, the
    tests under tests/pg/, and the files named ``*_postgres.py``)."""
    if config.getoption("--reverse"):
        items.reverse()
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if "postgres" in params.values() or "/tests/pg/" in str(item.path) or item.path.stem.endswith("_postgres"):
            item.add_marker(pytest.mark.postgres)


@dataclass
class Hub:
    app: Starlette
    client: httpx.AsyncClient
    settings: Settings
    secrets: dict[str, str]
    data: GenerateResult
    tokens: dict[str, str]

    @property
    def clock(self) -> TestClock:
        clock: TestClock = self.app.state.hub.clock
        return clock

    @contextlib.contextmanager
    def at(self, when: datetime) -> Iterator[None]:
        """Run the block with the hub's clock at ``when``, then put it back to the suite's working hour."""
        self.clock.set(when)
        try:
            yield
        finally:
            self.clock.set(datetime.combine(date.today(), WORKING_HOUR, CHINA))

    async def token(self, client_id: str, scope: str | None = None) -> str:
        key = f"{client_id}:{scope}"
        if key not in self.tokens:
            form = {"grant_type": "client_credentials"}
            if scope:
                form["scope"] = scope
            r = await self.client.post("/oauth/token", data=form, auth=(client_id, self.secrets[client_id]))
            assert r.status_code == 200, r.text
            self.tokens[key] = r.json()["access_token"]
        return self.tokens[key]

    async def query(
        self,
        query: str,
        *,
        client: str = "linping-ca",
        purpose: str = "CASE",
        case: str | None = "CASE-1",
        officer: str = "officer-wang",
        variables: dict[str, Any] | None = None,
        token: str | None = None,
    ) -> httpx.Response:
        headers = {"x-hub-purpose": purpose, "x-hub-officer": officer}
        if case:
            headers["x-hub-case"] = case
        headers["authorization"] = f"Bearer {token or await self.token(client)}"
        payload: dict[str, Any] = {"query": query}
        if variables is not None:
            payload["variables"] = variables
        return await self.client.post("/graphql", json=payload, headers=headers)


@contextlib.contextmanager
def serve(app: Starlette) -> Iterator[str]:
    """Run ``app`` under a real uvicorn server on a free 127.0.0.1 port, in a background thread."""
    import threading
    import time

    import uvicorn

    from hub.localpg import free_port

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(20)


@pytest.fixture(scope="session")
def dept_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, GenerateResult]:
    root = tmp_path_factory.mktemp("hub")
    result = generate(root / "departments", residents=RESIDENTS, seed=7)
    return root, result


# Client secrets are hashed at a lower scrypt cost in tests (the hub's default is 2**14): hundreds of client
# registrations and token requests, each one key derivation.
TEST_SCRYPT_N = 2**10


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, GenerateResult]:
    """The demo's default data (``generate`` with its defaults: 10,000 residents, seed 20241), made once for the
    tests that need that size (the README's example, the default-size mix); read-only."""
    root = tmp_path_factory.mktemp("demo-default")
    return root, generate(root / "departments")


def make_settings(root: Path, **overrides: Any) -> Settings:
    return Settings(data_dir=root, policy_dir=POLICIES, **({"client_secret_scrypt_n": TEST_SCRYPT_N} | overrides))


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def hub_settings(
    request: pytest.FixtureRequest, dept_data: tuple[Path, GenerateResult], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Settings]:
    """The suite runs once with every database on SQLite and once with every database on PostgreSQL."""
    if request.param == "sqlite":
        yield make_settings(dept_data[0])
        return
    from hub.departments import DEPARTMENTS, OUTBOX_METADATA, SOURCE_DEPARTMENTS
    from tests.pgserver import copy_department, new_server

    server = new_server()
    try:
        urls = {}
        for code in SOURCE_DEPARTMENTS:
            urls[code] = server.create_db(f"dept_{code}")
            md = DEPARTMENTS[code].metadata
            assert md is not None
            copy_department(dept_data[0] / "departments" / f"{code}.sqlite", md, urls[code])
            copy_department(dept_data[0] / "departments" / f"{code}.sqlite", OUTBOX_METADATA[code], urls[code])
        root = tmp_path_factory.mktemp("pg")
        (root / "departments").symlink_to(dept_data[0] / "departments")  # for tests that read the source files
        yield make_settings(root, database_url=server.create_db("hub"), department_urls=urls)
    finally:
        server.cleanup()


@pytest.fixture(scope="session")
async def hub(hub_settings: Settings, dept_data: tuple[Path, GenerateResult]) -> AsyncIterator[Hub]:
    app = create_app(hub_settings, sign_interval=3600, clock=working_clock())
    store: ClientStore = app.state.hub.clients
    secrets = {}
    for cid, (dept, area, purposes, roles) in CLIENTS.items():
        _, secrets[cid] = store.add(cid, dept, area, purposes, roles)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as client:
            yield Hub(app, client, hub_settings, secrets, dept_data[1], {})
    app.state.hub.close()


@pytest.fixture
def audit_tail(hub: Hub) -> Iterator[Any]:
    """Entries appended during one test, as parsed JSON."""
    from sqlalchemy import select

    from hub.db import audit_entries

    engine = hub.app.state.hub.engine
    with engine.connect() as conn:
        start = conn.execute(select(audit_entries.c.seq).order_by(audit_entries.c.seq.desc()).limit(1)).scalar()
    start = -1 if start is None else start

    def read() -> list[dict[str, Any]]:
        with engine.connect() as conn:
            rows = conn.execute(
                select(audit_entries.c.entry).where(audit_entries.c.seq > start).order_by(audit_entries.c.seq)
            )
            return [json.loads(r[0]) for r in rows]

    yield read


def without_receipt(body: dict[str, Any]) -> dict[str, Any]:
    """A /graphql response body without what its audit entry adds (``extensions.receipt`` and
    ``extensions.digests``, different for every request)."""
    ext = {k: v for k, v in body.get("extensions", {}).items() if k not in ("receipt", "digests")}
    return {k: v for k, v in body.items() if k != "extensions"} | ({"extensions": ext} if ext else {})
