"""Live fixtures: real subgraph and hub processes on 127.0.0.1, in-process hubs pointed at them (used by
tests/sources/ and tests/federation/; a plugin of tests/conftest.py).

All processes are launched together by one session fixture (so their start-up overlaps) and waited for on
first use. Their stdout goes to files the tests can read (a pipe could fill and block them).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from hub.app import create_app
from hub.auth.keys import KeyRing
from hub.db import hub_engine, upgrade
from hub.demo.generate import GenerateResult, generate
from hub.localpg import free_port
from hub.settings import Settings
from hub.store.clients import ClientStore
from tests.conftest import POLICIES, REPO, TEST_SCRYPT_N, working_clock

FED_CLIENT = "fed-ca"  # civil affairs for all of Hangzhou (3301): every generated resident is in scope
B_AREA = "3302"  # region B's residents are rewritten to this prefix


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    base: str
    log: Path
    ready_path: str = "/healthz"
    up: bool = False

    def wait_ready(self, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while not self.up:
            if self.popen.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.popen.returncode}:\n{self.log.read_text()}")
            try:
                self.up = httpx.get(self.base + self.ready_path, timeout=1).status_code == 200
            except httpx.HTTPError:
                assert time.monotonic() < deadline, f"{self.name} did not start:\n{self.log.read_text()}"
                time.sleep(0.1)
        return self.base

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGKILL)
            self.popen.wait(10)

    def lines(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log.read_text().splitlines():
            with contextlib.suppress(ValueError):
                out.append(json.loads(line))
        return out


def spawn(name: str, args: list[str], log: Path, env: dict[str, str] | None = None, port: int | None = None) -> Proc:
    port = port or free_port()
    fh = log.open("wb")
    popen = subprocess.Popen(
        [sys.executable, *args, "--port", str(port)],
        stdout=fh,
        stderr=subprocess.STDOUT,
        cwd=REPO,
        env={**os.environ, **(env or {})},
    )
    fh.close()
    return Proc(name, popen, f"http://127.0.0.1:{port}", log)


def subgraph_args(db: Path, jwks: Path, *extra: str, department: str = "education") -> list[str]:
    return ["-m", "hub.demo.subgraph", "--db", str(db), "--jwks", str(jwks), "--department", department, *extra]


@dataclass
class Region:
    """Hub B: a real ``hub serve`` process with its own data (area 3302) and policies."""

    root: Path
    data: GenerateResult
    ids: list[str]  # B's residents (none of them is in A's data)
    secret: str  # A's client secret at B (role hub)
    other_secret: str  # an ordinary client at B (no hub role)
    proc: Proc | None = None


@dataclass
class Fed:
    root: Path  # shared data dir: departments (symlinked), keys, jwks.json; one hub database per hub
    policies: Path
    jwks: Path
    procs: dict[str, Proc] = field(default_factory=dict)
    region: Region | None = None

    def settings(self, name: str, **overrides: Any) -> Settings:
        return Settings(
            data_dir=self.root,
            database_url=f"sqlite:///{self.root / f'hub-{name}.sqlite'}",
            policy_dir=self.policies,
            **({"client_secret_scrypt_n": TEST_SCRYPT_N} | overrides),
        )

    def url(self, proc: str) -> str:
        return self.procs[proc].wait_ready() + "/graphql"


def _policies(dst: Path, *, raw_education: bool, drop_dropped_out: bool) -> Path:
    shutil.copytree(POLICIES, dst)
    edu = dst / "education.toml"
    text = edu.read_text()
    if drop_dropped_out:  # region B does not share dropout flags for casework
        text = text.replace('"EducationRecord.droppedOut" = "predicate"\n', "")
        (dst / "monitoring" / "M7.toml").unlink()  # so region B has no dropout rule (it would refuse to start)
    if raw_education:  # tests only: raw enrolment fields, to compare subgraph and SQLite values exactly
        text += (
            '\n[[grants]]\nid = "edu-fed-test"\nconsumers = ["civil_affairs"]\npurposes = ["CASE"]\n'
            'scope = "jurisdiction"\nvalid_from = 2024-01-01\nvalid_to = 2099-12-31\n'
            'legal_basis = "federation tests only"\n[grants.fields]\n'
            '"EducationRecord.stage" = "raw"\n"EducationRecord.school" = "raw"\n"EducationRecord.aidReceived" = "raw"\n'
        )
    edu.write_text(text)
    return dst


def _region_b(root: Path, a_departments: Path) -> Region:
    data = generate(root / "departments", residents=300, seed=4242)
    ps = sqlite3.connect(root / "departments" / "public_security.sqlite")
    with ps:
        ps.execute("UPDATE residents SET area_code = ? || substr(area_code, 5)", (B_AREA,))
        ps.execute("UPDATE households SET area_code = ? || substr(area_code, 5)", (B_AREA,))
    ids = [r[0] for r in ps.execute("SELECT id_number FROM residents ORDER BY id_number")]
    ps.close()
    a = sqlite3.connect(a_departments / "public_security.sqlite")
    known = {r[0] for r in a.execute("SELECT id_number FROM residents")}
    a.close()
    ids = [i for i in ids if i not in known]
    url = f"sqlite:///{root / 'hub.sqlite'}"
    upgrade(url)
    store = ClientStore(hub_engine(url), scrypt_n=TEST_SCRYPT_N)
    _, secret = store.add("region-a", "civil_affairs", B_AREA, ["CASE", "MON"], roles=["hub"])
    _, other = store.add("b-ca", "civil_affairs", B_AREA, ["CASE"])
    return Region(root, data, ids, secret, other)


@pytest.fixture(scope="session")
def fed(dept_data: tuple[Path, GenerateResult], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fed]:
    root = tmp_path_factory.mktemp("fed")
    (root / "departments").symlink_to(dept_data[0] / "departments")
    KeyRing(root / "keys").ensure()
    jwks = root / "jwks.json"  # the hub's public keys, as its /.well-known/jwks.json would serve them
    jwks.write_text(json.dumps(KeyRing(root / "keys").jwks()))
    f = Fed(root, _policies(root / "policies", raw_education=True, drop_dropped_out=False), jwks)
    edu = root / "departments" / "education.sqlite"
    logs = tmp_path_factory.mktemp("logs")
    f.procs["edu"] = f.procs["education"] = spawn("edu", subgraph_args(edu, jwks, "--debug"), logs / "edu.log")
    for code in ("civil_affairs", "public_security"):  # the demo subgraph serves any department's tables
        db = root / "departments" / f"{code}.sqlite"
        f.procs[code] = spawn(code, subgraph_args(db, jwks, department=code), logs / f"{code}.log")
    f.procs["edu-kill"] = spawn("edu-kill", subgraph_args(edu, jwks), logs / "edu-kill.log")
    f.procs["edu-nostage"] = spawn("edu-nostage", subgraph_args(edu, jwks, "--drop-field", "stage"), logs / "ns.log")
    b_root = tmp_path_factory.mktemp("region-b")
    region = _region_b(b_root, dept_data[0] / "departments")
    b_policies = _policies(b_root / "policies", raw_education=False, drop_dropped_out=True)
    env = {"HUB_DATA_DIR": str(b_root), "HUB_POLICY_DIR": str(b_policies), "HUB_DATABASE_URL": ""}
    env["HUB_CLIENT_SECRET_SCRYPT_N"] = str(TEST_SCRYPT_N)
    region.proc = f.procs["hub-b"] = spawn("hub-b", ["-m", "hub", "serve"], logs / "hub-b.log", env)
    f.region = region
    try:
        yield f
    finally:
        for p in f.procs.values():
            if p.popen.poll() is None:
                p.popen.terminate()
        for p in f.procs.values():
            try:
                p.popen.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


@dataclass
class FedHub:
    app: Starlette
    client: httpx.AsyncClient
    secrets: dict[str, str]
    tokens: dict[str, str] = field(default_factory=dict)

    async def query(
        self,
        query: str,
        *,
        client: str = FED_CLIENT,
        purpose: str = "CASE",
        case: str | None = "CASE-FED-1",
        officer: str = "officer-li",
        variables: dict[str, Any] | None = None,
    ) -> httpx.Response:
        if client not in self.tokens:
            r = await self.client.post(
                "/oauth/token", data={"grant_type": "client_credentials"}, auth=(client, self.secrets[client])
            )
            assert r.status_code == 200, r.text
            self.tokens[client] = r.json()["access_token"]
        headers = {"x-hub-purpose": purpose, "x-hub-officer": officer, "authorization": f"Bearer {self.tokens[client]}"}
        if case:
            headers["x-hub-case"] = case
        payload: dict[str, Any] = {"query": query}
        if variables is not None:
            payload["variables"] = variables
        return await self.client.post("/graphql", json=payload, headers=headers)

    def audit(self, request_id: str) -> dict[str, Any]:
        return audit_entry(self.app.state.hub.engine, request_id)

    def source(self, code: str) -> Any:
        return self.app.state.hub.sources[code]


def audit_entry(engine: Any, request_id: str) -> dict[str, Any]:
    from sqlalchemy import select

    from hub.db import audit_entries

    with engine.connect() as conn:
        row = conn.execute(select(audit_entries.c.entry).where(audit_entries.c.request_id == request_id)).first()
    assert row is not None, f"no audit entry for {request_id}"
    entry: dict[str, Any] = json.loads(row[0])
    return entry


@contextlib.asynccontextmanager
async def running(settings: Settings, span_exporter: Any = None) -> AsyncIterator[FedHub]:
    app = create_app(settings, sign_interval=3600, clock=working_clock(), span_exporter=span_exporter)
    store: ClientStore = app.state.hub.clients
    secrets = {}
    for cid, (dept, area, purposes) in {
        FED_CLIENT: ("civil_affairs", "3301", ["CASE", "MON"]),
        "linping-ca": ("civil_affairs", "330113", ["CASE", "MON"]),
        "zj-ca": ("civil_affairs", "33", ["CASE", "MON"]),  # the whole province: wider than A's client at B
        "b-district-ca": ("civil_affairs", "330213", ["CASE"]),  # one of B's districts: narrower than A's at B
    }.items():
        _, secrets[cid] = store.add(cid, dept, area, purposes)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as client:
                yield FedHub(app, client, secrets)
    finally:
        app.state.hub.close()


@pytest.fixture(scope="session")
async def sub_hub(fed: Fed) -> AsyncIterator[FedHub]:
    """Hub A with education served by the demo subgraph (everything else on SQLite)."""
    async with running(fed.settings("sub", department_urls={"education": fed.url("edu")})) as h:
        yield h


@pytest.fixture(scope="session")
async def sql_hub(fed: Fed) -> AsyncIterator[FedHub]:
    """The same data with every department on SQLite: the reference answers."""
    async with running(fed.settings("sql")) as h:
        yield h
