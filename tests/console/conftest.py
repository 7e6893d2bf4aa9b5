"""A console hub of its own (SQLite, its own data folder) served by uvicorn on 127.0.0.1, with one officer,
one non-officer person, department clients, and the golden-scenario request in its log."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from hub.app import create_app
from hub.demo.generate import GenerateResult
from hub.store.officers import OfficerStore
from tests.conftest import CLIENTS, make_settings, serve, working_clock

OFFICER, PASSWORD = "officer-zhang", "correct horse battery staple"
CASEWORKER = "caseworker-li"  # a person without the officer role
GOLDEN_QUERY = """query Golden($id: String!) { person(idNumber: $id) { name civilAffairs { tier }
  medical { outOfPocket12mAtLeast(threshold: 20000) } } }"""


@dataclass
class ConsoleHub:
    url: str
    app: object
    secrets: dict[str, str]
    golden_id: str
    golden_seq: int

    def token(self, client_id: str) -> str:
        r = httpx.post(
            f"{self.url}/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(client_id, self.secrets[client_id]),
        )
        assert r.status_code == 200, r.text
        return str(r.json()["access_token"])


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, "no CSRF token in the form"
    return m.group(1)


def sign_in(client: httpx.Client, name: str = OFFICER, password: str = PASSWORD) -> httpx.Response:
    page = client.get("/console/login")
    return client.post("/console/login", data={"name": name, "password": password, "csrf": csrf_of(page.text)})


@pytest.fixture(scope="session")
def console_hub(
    dept_data: tuple[Path, GenerateResult], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ConsoleHub]:
    root = tmp_path_factory.mktemp("console")
    (root / "departments").symlink_to(dept_data[0] / "departments")
    settings = make_settings(root)
    app = create_app(settings, sign_interval=3600, clock=working_clock())
    state = app.state.hub
    secrets = {}
    for cid, (dept, area, purposes, roles) in CLIENTS.items():
        _, secrets[cid] = state.clients.add(cid, dept, area, purposes, roles)
    officers = OfficerStore(state.engine, state.clock, settings.client_secret_scrypt_n)
    officers.add(OFFICER, PASSWORD)
    officers.add(CASEWORKER, PASSWORD, department="civil_affairs", roles=("caseworker",))
    with serve(app) as url:
        hub = ConsoleHub(url, app, secrets, dept_data[1].golden_id, -1)
        headers = {
            "authorization": f"Bearer {hub.token('linping-ca')}",
            "x-hub-purpose": "CASE",
            "x-hub-case": "CASE-2026-0117",
            "x-hub-officer": "officer-wang",
        }
        r = httpx.post(
            f"{url}/graphql", json={"query": GOLDEN_QUERY, "variables": {"id": hub.golden_id}}, headers=headers
        )
        assert r.status_code == 200 and r.json()["data"]["person"]["name"] == "钱国良", r.text
        hub.golden_seq = int(r.json()["extensions"]["receipt"]["seq"])
        # a refused attempt that names the same resident: a client outside its purposes' grants
        r = httpx.post(
            f"{url}/graphql",
            json={
                "query": "query($id: String!) { person(idNumber: $id) { name } }",
                "variables": {"id": hub.golden_id},
            },
            headers={**headers, "authorization": f"Bearer {hub.token('hz-utilities')}", "x-hub-purpose": "REF"},
        )
        assert r.status_code in (200, 403), r.text
        yield hub
