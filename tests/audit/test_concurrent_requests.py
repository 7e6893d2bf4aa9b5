"""A run of concurrent requests through the real app (waves of 100 at once, one in ten denied) leaves exactly one
audit entry per request, and they verify.

It was 10,000 requests (80 s of a loaded machine, a third of the suite); 2,000 (20 waves of group commits) test
the same thing. Verification at 10,000 entries and five heads is ``test_verify.py::test_ten_thousand_entries``."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from sqlalchemy import func, select

from hub.app import create_app
from hub.audit.store import open_audit_store, verify_store
from hub.db import audit_entries
from hub.demo.generate import GenerateResult
from tests.conftest import make_settings, working_clock

N = 2_000  # requests, in waves of 100


async def test_every_concurrent_request_leaves_one_entry(
    dept_data: tuple[Path, GenerateResult], tmp_path: Path
) -> None:
    (tmp_path / "departments").symlink_to(dept_data[0] / "departments")
    settings = make_settings(tmp_path)
    app = create_app(settings, sign_interval=3600, clock=working_clock())
    _, secret = app.state.hub.clients.add("ca", "civil_affairs", "330113", ["MON"])
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hub.test") as c:
            token = (
                await c.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=("ca", secret))
            ).json()["access_token"]
            headers = {"authorization": f"Bearer {token}", "x-hub-purpose": "MON", "x-hub-officer": "load"}
            denied = '{ person(idNumber: "11010519491231002X") { tax { annualWageIncome } } }'
            statuses: list[int] = []

            async def one(i: int) -> None:
                query = denied if i % 10 == 0 else "{ __typename }"  # allowed, audited, and cheap to answer
                r = await c.post("/graphql", json={"query": query}, headers=headers)
                statuses.append(r.status_code)

            for start in range(0, N, 100):
                await asyncio.gather(*(one(i) for i in range(start, start + 100)))
        app.state.hub.audit.sign_head()
    assert statuses.count(200) == N * 9 // 10 and statuses.count(403) == N // 10
    with app.state.hub.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(audit_entries)).scalar_one() == N
        denials = conn.execute(
            select(func.count()).select_from(audit_entries).where(audit_entries.c.decision == "deny")
        ).scalar_one()
    assert denials == N // 10
    with open_audit_store(settings) as store:
        report = verify_store(store)
    assert report.ok, report.problem
    assert report.entries_checked == N
