"""A hub of its own for the differential test: the suite's departments, one of them stopped (its database file
missing), household authorizations for some households, and a switch between the two execution paths."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from hub.app import create_app
from hub.demo.generate import GenerateResult
from hub.settings import Settings
from hub.store.clients import ClientStore
from tests.conftest import CLIENTS, make_settings, working_clock

STOPPED = "education"  # its database is missing: every load from it fails (UPSTREAM_UNAVAILABLE)


@dataclass
class Residents:
    inside: list[str]  # ID numbers in 330113 (linping-ca's area)
    outside: list[str]  # elsewhere
    households_inside: list[str]
    households_outside: list[str]
    authorized: list[str]  # households with a 核对授权书 on record for civil_affairs


@dataclass
class TwoPaths:
    client: httpx.AsyncClient
    app: Any
    secrets: dict[str, str]
    residents: Residents
    tokens: dict[str, str]

    @contextlib.contextmanager
    def compiled(self, on: bool) -> Iterator[None]:
        state = self.app.state.hub
        before = state.settings
        state.settings = before.replace(compiled=on)
        try:
            yield
        finally:
            state.settings = before

    async def token(self, client_id: str) -> str:
        if client_id not in self.tokens:
            r = await self.client.post(
                "/oauth/token", data={"grant_type": "client_credentials"}, auth=(client_id, self.secrets[client_id])
            )
            assert r.status_code == 200, r.text
            self.tokens[client_id] = r.json()["access_token"]
        return self.tokens[client_id]


def _residents(departments: Path) -> Residents:
    db = departments / "public_security.sqlite"
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        inside = [r[0] for r in conn.execute("SELECT id_number FROM residents WHERE area_code LIKE '330113%' LIMIT 40")]
        outside = [
            r[0] for r in conn.execute("SELECT id_number FROM residents WHERE area_code NOT LIKE '330113%' LIMIT 10")
        ]
        hin = [
            r[0] for r in conn.execute("SELECT household_id FROM households WHERE area_code LIKE '330113%' LIMIT 12")
        ]
        hout = [
            r[0] for r in conn.execute("SELECT household_id FROM households WHERE area_code NOT LIKE '330113%' LIMIT 4")
        ]
        # the households of the first residents inside, every other one authorized
        theirs = [
            r[0]
            for r in conn.execute(
                f"SELECT DISTINCT household_id FROM residents WHERE id_number IN ({','.join('?' * 20)})", inside[:20]
            )
        ]
    return Residents(inside, outside, hin, hout, sorted(set(theirs[::2] + hin[::2])))


@pytest.fixture(scope="session")
async def two_paths(
    hub_settings: Settings, dept_data: tuple[Path, GenerateResult], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[TwoPaths]:
    """On the suite's departments, SQLite or PostgreSQL (``hub_settings``' parameter), the hub's own database on
    SQLite in a folder of its own."""
    root = tmp_path_factory.mktemp("compiled")
    (root / "departments").symlink_to(dept_data[0] / "departments")
    stopped = f"sqlite:///{root / 'stopped' / 'education.sqlite'}"
    settings = make_settings(
        root,
        department_urls={**hub_settings.department_urls, STOPPED: stopped},
        breaker_threshold=1_000_000,  # the stopped department fails the same way on both paths, every time
        max_cost=200_000,
        lookup_miss_budget=1_000_000_000,  # the budget is shared by both paths: never the difference
    )
    app = create_app(settings, sign_interval=3600, clock=working_clock())
    state = app.state.hub
    store: ClientStore = state.clients
    secrets = {}
    for cid, (dept, area, purposes, roles) in CLIENTS.items():
        _, secrets[cid] = store.add(cid, dept, area, purposes, roles)
    residents = _residents(dept_data[0] / "departments")
    today = date.today()
    for h in residents.authorized:
        state.authorizations.record(
            h, "civil_affairs", "test", today - timedelta(days=1), today + timedelta(days=60), "0" * 64, "test"
        )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as client:
            yield TwoPaths(client, app, secrets, residents, {})
    state.close()
