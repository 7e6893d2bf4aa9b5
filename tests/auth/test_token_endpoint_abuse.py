"""The token endpoint under attack: guessing is limited and recorded; unknown and known clients cost the same.
And the request body: too deeply nested JSON is BAD_JSON; a body that never finishes arriving is cut off."""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from hub.app import create_app
from hub.auth.attempts import FailedAttempts
from hub.db import audit_entries
from hub.demo.generate import GenerateResult
from hub.store.clients import ClientStore
from tests.conftest import Hub, make_settings, serve, working_clock

FORM = {"grant_type": "client_credentials"}


@pytest.fixture
async def guarded(dept_data: tuple[Path, GenerateResult], tmp_path: Path) -> AsyncIterator[Hub]:
    """A hub of its own (own audit database and limits), so lock-outs here touch no other test."""
    (tmp_path / "departments").symlink_to(dept_data[0] / "departments")
    settings = make_settings(tmp_path, token_failures_per_client=3, token_failures_per_address=5)
    app = create_app(settings, sign_interval=3600, clock=working_clock())
    secrets = {}
    for cid in ("ca", "med", "tax"):
        _, secrets[cid] = app.state.hub.clients.add(cid, "civil_affairs", "330113", ["CASE"])
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hub.test") as client:
            yield Hub(app, client, settings, secrets, dept_data[1], {})


def token_entries(hub: Hub) -> list[dict[str, Any]]:
    with hub.app.state.hub.engine.connect() as conn:
        rows = conn.execute(select(audit_entries.c.entry).order_by(audit_entries.c.seq)).scalars()
        return [e for e in map(json.loads, rows) if e.get("route") == "/oauth/token"]


async def test_wrong_secrets_lock_the_client_id_and_are_audited(guarded: Hub) -> None:
    hub = guarded
    for _ in range(3):
        r = await hub.client.post("/oauth/token", data=FORM, auth=("ca", "guess"))
        assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    # the fourth try is refused without checking the secret, even the right one
    r = await hub.client.post("/oauth/token", data=FORM, auth=("ca", hub.secrets["ca"]))
    assert r.status_code == 429
    assert r.json() == {
        "error": "temporarily_unavailable",
        "error_description": "too many failed attempts; try again later",
    }
    assert 1 <= int(r.headers["retry-after"]) <= 300
    # another client id from the same address still works (the address budget is 5)
    r = await hub.client.post("/oauth/token", data=FORM, auth=("med", hub.secrets["med"]))
    assert r.status_code == 200
    entries = token_entries(hub)
    assert [(e["client_id"], e["department"], e["reasons"], e["status"], e["decision"]) for e in entries] == [
        ("ca", "civil_affairs", ["CLIENT_AUTH_FAILED"], 401, "deny"),
        ("ca", "civil_affairs", ["CLIENT_AUTH_FAILED"], 401, "deny"),
        ("ca", "civil_affairs", ["CLIENT_AUTH_FAILED"], 401, "deny"),
        ("ca", "civil_affairs", ["TOKEN_ATTEMPTS_LIMITED"], 429, "deny"),
    ]
    assert {e["address"] for e in entries} == {"127.0.0.1"}
    assert all("guess" not in json.dumps(e) and hub.secrets["ca"] not in json.dumps(e) for e in entries)


async def test_unknown_client_ids_count_against_the_address(guarded: Hub) -> None:
    hub = guarded
    for i in range(5):  # five different made-up ids: each is new, the address is the same
        r = await hub.client.post("/oauth/token", data=FORM, auth=(f"nobody-{i}", "x"))
        assert r.status_code == 401
    r = await hub.client.post("/oauth/token", data=FORM, auth=("tax", hub.secrets["tax"]))
    assert r.status_code == 429  # this address is now refused, whoever it claims to be
    entries = token_entries(hub)
    assert [e["reasons"] for e in entries[:5]] == [["CLIENT_AUTH_FAILED", "CLIENT_UNKNOWN"]] * 5
    # a made-up client id is not copied into the log (it could be anything an attacker types)
    assert {e["client_id"] for e in entries[:5]} == {""}
    assert entries[5]["client_id"] == "tax" and entries[5]["reasons"] == ["TOKEN_ATTEMPTS_LIMITED"]


def test_failures_leave_the_window() -> None:
    now = [1000.0]
    limiter = FailedAttempts(limit=2, window=60, clock=lambda: now[0])
    limiter.failed("a")
    assert limiter.retry_after("a") == 0
    limiter.failed("a")
    assert limiter.retry_after("a") == 60
    now[0] += 59.5
    assert limiter.retry_after("a") == pytest.approx(0.5)
    assert limiter.retry_after("b") == 0
    now[0] += 0.5  # the first failure is now a full window old
    assert limiter.retry_after("a") == 0
    assert FailedAttempts(limit=0, window=60).retry_after("a") == 0  # 0 turns the limit off


def test_unknown_and_known_clients_cost_one_key_derivation_each(hub: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both answers take the same time because both run exactly one scrypt (the costly step)."""
    store: ClientStore = hub.app.state.hub.clients
    calls: list[bytes] = []
    real = hashlib.scrypt

    def counting(password: bytes, **kw: Any) -> bytes:
        calls.append(password)
        return real(password, **kw)

    monkeypatch.setattr("hub.store.clients.hashlib.scrypt", counting)
    assert store.authenticate("linping-ca", "wrong") is None
    known = len(calls)
    assert store.authenticate("no-such-client", "wrong") is None
    assert (known, len(calls) - known) == (1, 1)


async def test_deeply_nested_json_is_bad_json(hub: Hub, audit_tail: Any) -> None:
    token = await hub.token("linping-ca")
    for body in (b"[" * 100_000, b'{"query": "{ __typename }", "variables": {"a": ' + b"[" * 100_000 + b"]}"):
        r = await hub.client.post(
            "/graphql",
            content=body,
            headers={"authorization": f"Bearer {token}", "content-type": "application/json"}
            | {"x-hub-purpose": "CASE", "x-hub-case": "C-1", "x-hub-officer": "o"},
        )
        assert r.status_code == 400
        assert r.json()["errors"][0]["extensions"]["code"] == "BAD_JSON"
        assert r.json()["errors"][0]["message"] == "the request body is nested too deeply"
    assert [e["reasons"] for e in audit_tail()] == [["BAD_JSON"], ["BAD_JSON"]]


async def test_a_body_that_stops_arriving_is_cut_off(dept_data: tuple[Path, GenerateResult], tmp_path: Path) -> None:
    """Over a real server: 20 connections each send half a body and stall; each gets 408 after the timeout."""
    (tmp_path / "departments").symlink_to(dept_data[0] / "departments")
    app = create_app(make_settings(tmp_path, body_timeout=0.5), sign_interval=3600, clock=working_clock())
    with serve(app) as url:
        port = int(url.rsplit(":", 1)[1])

        def stall() -> bytes:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                s.sendall(
                    b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    b"Content-Length: 100\r\n\r\n" + b'{"query": '
                )
                data = b""
                while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                return data

        answers = await asyncio.gather(*(asyncio.to_thread(stall) for _ in range(20)))
    for raw in answers:
        head, _, body = raw.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408"), raw[:200]
        assert json.loads(body)["errors"][0]["extensions"]["code"] == "BODY_TIMEOUT"
