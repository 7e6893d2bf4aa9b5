"""Rate limits over HTTP: a token bucket per client on /graphql and per caller on the token endpoint, in the hub
database, so the limit holds across two hub processes; 429 with Retry-After, audited."""

from __future__ import annotations

import json
import os
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from hub.db import audit_entries, upgrade
from hub.demo.generate import GenerateResult
from hub.ratelimit import RateLimiter
from hub.settings import Settings
from hub.store.clients import ClientStore
from tests.conftest import POLICIES, Hub, make_settings, working_clock
from tests.ops.conftest import OwnHub
from tests.processes import serve_hubs, stop_hubs

QUERY = "query($id: String!) { person(idNumber: $id) { name } }"


def entries(hub: Hub) -> list[dict[str, Any]]:
    with hub.app.state.hub.engine.connect() as conn:
        rows = conn.execute(select(audit_entries.c.entry).order_by(audit_entries.c.seq)).scalars()
        return [json.loads(e) for e in rows]


async def test_graphql_limit_per_client(own_hub: OwnHub) -> None:
    async with own_hub(rate_limit=6, rate_burst=3) as hub:  # one every 10 s, three at once
        variables = {"id": hub.data.golden_id}
        for _ in range(3):
            assert (await hub.query(QUERY, variables=variables)).status_code == 200
        r = await hub.query(QUERY, variables=variables)
        assert (r.status_code, r.headers["retry-after"]) == (429, "10"), r.text
        err = r.json()["errors"][0]
        assert err["extensions"]["code"] == "RATE_LIMITED" and err["extensions"]["retryAfter"] == 10
        assert err["message"] == "client linping-ca is over its rate limit; retry after 10 s"
        last = entries(hub)[-1]
        assert (last["decision"], last["reasons"], last["status"], last["client_id"]) == (
            "deny",
            ["RATE_LIMITED"],
            429,
            "linping-ca",
        )
        # another client has its own bucket
        assert (await hub.query(QUERY, client="hangzhou-ca", variables=variables)).status_code == 200
        # ten seconds later (by the hub's clock) one request is back, and only one
        hub.clock.set(hub.clock() + timedelta(seconds=10))
        assert (await hub.query(QUERY, variables=variables)).status_code == 200
        assert (await hub.query(QUERY, variables=variables)).status_code == 429


async def test_token_endpoint_limit_per_caller(own_hub: OwnHub) -> None:
    async with own_hub(token_rate_limit=6, rate_burst=2) as hub:
        form = {"grant_type": "client_credentials"}
        auth = ("linping-ca", hub.secrets["linping-ca"])
        for _ in range(2):
            assert (await hub.client.post("/oauth/token", data=form, auth=auth)).status_code == 200
        r = await hub.client.post("/oauth/token", data=form, auth=auth)
        assert (r.status_code, r.headers["retry-after"]) == (429, "10")
        assert r.json() == {
            "error": "temporarily_unavailable",
            "error_description": "this address is over its rate limit; retry after 10 s",
        }
        # refused before the secret is looked at: a wrong secret gets the same answer
        wrong = await hub.client.post("/oauth/token", data=form, auth=("linping-ca", "nope"))
        assert wrong.status_code == 429
        refused = [e for e in entries(hub) if e.get("route") == "/oauth/token"]
        assert [(e["reasons"], e["status"], e["client_id"]) for e in refused] == [
            (["RATE_LIMITED"], 429, "linping-ca"),
            (["RATE_LIMITED"], 429, "linping-ca"),
        ]


async def test_bucket_is_one_atomic_statement(hub: Hub) -> None:
    """The bucket on the suite's databases (SQLite and PostgreSQL): takes, refusal, wait, refill."""
    clock = working_clock()
    limiter = RateLimiter(hub.app.state.hub.engine, per_minute=0.6, burst=2, clock=clock)  # one per 100 s
    key = f"test:{os.getpid()}:{time.monotonic_ns()}"
    taken = [limiter.take(key) for _ in range(3)]
    assert taken[:2] == [0.0, 0.0] and taken[2] == pytest.approx(100, abs=1)  # 100 s until one is back
    clock.set(clock() + timedelta(seconds=50))
    assert limiter.take(key) == pytest.approx(50, abs=1)  # half a request back: still refused, 50 s to go
    clock.set(clock() + timedelta(seconds=50))
    assert limiter.take(key) == 0.0
    clock.set(clock() - timedelta(hours=1))  # a clock set back refills nothing and refuses nothing it should not
    assert limiter.take(key) > 0


def test_the_limit_holds_across_two_hub_processes(dept_data: tuple[Path, GenerateResult], tmp_path: Path) -> None:
    (tmp_path / "departments").symlink_to(dept_data[0] / "departments")
    settings: Settings = make_settings(tmp_path)
    upgrade(settings.database_url)
    from hub.db import hub_engine

    _, secret = ClientStore(hub_engine(settings.database_url)).add("ca", "civil_affairs", "330113", ["CASE"])
    env = {
        **os.environ,
        "HUB_DATA_DIR": str(tmp_path),
        "HUB_POLICY_DIR": str(POLICIES),
        "HUB_RATE_LIMIT": "1",  # one a minute: nothing comes back during the test
        "HUB_RATE_BURST": "3",
    }
    procs = serve_hubs(tmp_path, env, ready="/readyz")
    try:
        urls = [f"http://127.0.0.1:{port}" for _, port in procs]
        token = httpx.post(
            f"{urls[0]}/oauth/token", data={"grant_type": "client_credentials"}, auth=("ca", secret)
        ).json()["access_token"]
        headers = {
            "authorization": f"Bearer {token}",
            "x-hub-purpose": "CASE",
            "x-hub-case": "C-1",
            "x-hub-officer": "o",
        }
        body = {"query": QUERY, "variables": {"id": dept_data[1].golden_id}}
        statuses = [httpx.post(f"{urls[i % 2]}/graphql", json=body, headers=headers).status_code for i in range(5)]
        assert statuses == [200, 200, 200, 429, 429]  # three in all, whichever process answers
        refused = httpx.post(f"{urls[1]}/graphql", json=body, headers=headers)
        assert int(refused.headers["retry-after"]) > 50  # about a minute for one request to come back
    finally:
        stop_hubs(procs)
