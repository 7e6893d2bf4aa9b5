"""A hub of its own (own audit database, the session's department data), served by uvicorn on 127.0.0.1 and
driven synchronously with httpx: real HTTP, raw header bytes, and plain threads for concurrency."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from hub.app import create_app
from hub.db import audit_entries
from hub.demo.generate import GenerateResult
from hub.settings import Settings
from tests.conftest import CLIENTS, make_settings, serve, working_clock


@dataclass
class Served:
    url: str
    settings: Settings
    app: Any
    data: GenerateResult
    tokens: dict[str, str]

    def post(
        self,
        query: str | None = None,
        *,
        client: str = "linping-ca",
        purpose: str = "CASE",
        case: str | bytes | None = "CASE-1",
        officer: str | bytes = "officer-wang",
        variables: dict[str, Any] | None = None,
        body: bytes | None = None,
        extra: list[tuple[bytes, bytes]] | None = None,
        http: httpx.Client | None = None,
    ) -> httpx.Response:
        headers: list[tuple[bytes, bytes]] = [
            (b"x-hub-purpose", purpose.encode()),
            (b"x-hub-officer", officer if isinstance(officer, bytes) else officer.encode()),
            (b"authorization", f"Bearer {self.tokens[client]}".encode()),
            (b"content-type", b"application/json"),
        ]
        if case:
            headers.append((b"x-hub-case", case if isinstance(case, bytes) else case.encode()))
        headers += extra or []
        if body is None:
            payload: dict[str, Any] = {"query": query}
            if variables is not None:
                payload["variables"] = variables
            body = json.dumps(payload).encode()
        c = http or httpx.Client(timeout=30)
        try:
            return c.post(f"{self.url}/graphql", content=body, headers=headers)
        finally:
            if http is None:
                c.close()

    def entries(self, after: int = -1) -> list[dict[str, Any]]:
        with self.app.state.hub.engine.connect() as conn:
            rows = conn.execute(
                select(audit_entries.c.entry).where(audit_entries.c.seq > after).order_by(audit_entries.c.seq)
            )
            return [json.loads(r[0]) for r in rows]

    def last_seq(self) -> int:
        entries = self.entries()
        return entries[-1]["seq"] if entries else -1


def served_hub(root: Path, dept_data: tuple[Path, GenerateResult]) -> Iterator[Served]:
    (root / "departments").symlink_to(dept_data[0] / "departments")
    settings = make_settings(root)
    app = create_app(settings, sign_interval=3600, clock=working_clock())
    secrets = {}
    for cid, (dept, area, purposes, roles) in CLIENTS.items():
        _, secrets[cid] = app.state.hub.clients.add(cid, dept, area, purposes, roles)
    with serve(app) as url:
        tokens = {}
        with httpx.Client(timeout=30) as c:
            for cid, secret in secrets.items():
                r = c.post(f"{url}/oauth/token", data={"grant_type": "client_credentials"}, auth=(cid, secret))
                assert r.status_code == 200, r.text
                tokens[cid] = r.json()["access_token"]
        yield Served(url, settings, app, dept_data[1], tokens)
    app.state.hub.close()
