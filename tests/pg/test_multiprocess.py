"""Several hub processes on one PostgreSQL audit database: one gap-free log that verifies, and a process killed
with SIGKILL mid-load loses no entry for any response that was delivered."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, select

from hub.audit.entry import GENESIS, entry_leaf
from hub.db import audit_entries, upgrade
from hub.demo.generate import GenerateResult
from hub.store.clients import ClientStore
from tests.conftest import POLICIES
from tests.pgserver import new_server
from tests.processes import serve_hubs, stop_hubs

QUERY = "query($id: String!) { person(idNumber: $id) { name civilAffairs { tier } } }"


@pytest.fixture(scope="module")
def cluster(dept_data: tuple[Path, GenerateResult], tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:  # type: ignore[type-arg]
    pg = new_server()
    url = pg.create_db("hub")
    root = tmp_path_factory.mktemp("cluster")
    (root / "departments").symlink_to(dept_data[0] / "departments")
    upgrade(url)
    store = ClientStore(create_engine(url))
    _, secret = store.add("ca", "civil_affairs", "330113", ["CASE"])
    env = {**os.environ, "HUB_DATA_DIR": str(root), "HUB_DATABASE_URL": url, "HUB_POLICY_DIR": str(POLICIES)}
    served = serve_hubs(root, env)
    procs, ports = [p for p, _ in served], [port for _, port in served]
    yield {"pg": pg, "url": url, "ports": ports, "procs": procs, "secret": secret, "root": root}
    stop_hubs(served)
    pg.cleanup()


def check_log(url: str) -> list[dict]:  # type: ignore[type-arg]
    """Gap-free sequence, each leaf recomputes from its entry, each entry names the previous leaf."""
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(
            select(audit_entries.c.seq, audit_entries.c.entry, audit_entries.c.leaf_hash).order_by(audit_entries.c.seq)
        ).all()
    engine.dispose()
    prev = GENESIS
    entries = []
    for i, (seq, text, leaf) in enumerate(rows):
        assert seq == i, f"gap at {i}"
        assert entry_leaf(text) == bytes(leaf), f"entry {seq} does not match its leaf"
        e = json.loads(text)
        assert e["seq"] == seq and e["prev"] == prev, f"entry {seq} breaks the chain"
        prev = bytes(leaf).hex()
        entries.append(e)
    return entries


async def _load(
    ports: list[int],
    token: str,
    golden: str,
    n: int,
    delivered: list[str],
    stop_at: int | None,
    victim: subprocess.Popen | None,
) -> int:  # type: ignore[type-arg]
    headers = {
        "authorization": f"Bearer {token}",
        "x-hub-purpose": "CASE",
        "x-hub-case": "C-1",
        "x-hub-officer": "load",
    }
    failures = 0
    counter = 0

    async def worker(client: httpx.AsyncClient, k: int) -> None:
        nonlocal failures, counter
        for i in range(n):
            port = ports[(k + i) % len(ports)]
            counter += 1
            if stop_at is not None and counter == stop_at and victim is not None:
                victim.send_signal(signal.SIGKILL)
            try:
                r = await client.post(
                    f"http://127.0.0.1:{port}/graphql",
                    headers=headers,
                    json={"query": QUERY, "variables": {"id": golden}},
                )
            except httpx.HTTPError:
                failures += 1
                continue
            if r.status_code == 200 and r.json()["data"]["person"]["civilAffairs"]["tier"] == "low_edge":
                delivered.append(r.headers["x-request-id"])

    async with httpx.AsyncClient(timeout=10) as client:
        await asyncio.gather(*(worker(client, k) for k in range(8)))
    return failures


async def test_two_processes_one_gap_free_log_and_sigkill(
    cluster: dict, dept_data: tuple[Path, GenerateResult]
) -> None:  # type: ignore[type-arg]
    ports = cluster["ports"]
    async with httpx.AsyncClient() as c:
        r = await c.post(
            f"http://127.0.0.1:{ports[0]}/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=("ca", cluster["secret"]),
        )
        token = r.json()["access_token"]
    delivered: list[str] = []
    # 8 clients x 25 requests per run (was 50: the same two processes, the same kill, half the waiting)
    failures = await _load(ports, token, dept_data[1].golden_id, 25, delivered, None, None)
    assert failures == 0 and len(delivered) == 200
    entries = check_log(cluster["url"])
    assert len(entries) == 200
    assert {e["request_id"] for e in entries} == set(delivered)

    # now kill one process with SIGKILL in the middle of the next run
    victim = cluster["procs"][1]
    more: list[str] = []
    failures = await _load(ports, token, dept_data[1].golden_id, 25, more, 75, victim)
    assert victim.wait(10) == -signal.SIGKILL
    assert failures > 0  # requests to the dead process failed on the client side
    entries = check_log(cluster["url"])
    logged = {e["request_id"] for e in entries}
    missing = [rid for rid in more if rid not in logged]
    assert missing == [], f"{len(missing)} delivered responses have no audit entry"
    assert len(more) >= 100  # at least the surviving process's half
    print(
        f"\nkill test: {len(delivered) + len(more)} delivered, {failures} failed at the client, "
        f"{len(entries)} entries, 0 lost"
    )
