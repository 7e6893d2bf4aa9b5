"""Witnesses (C2SP tlog-witness) and the truncation attack of issue 11 §5.

The witness protocol is driven over HTTP against the real witness app; the end-to-end test runs a hub of its
own (SQLite) that pushes its checkpoints to a witness served by uvicorn on 127.0.0.1, then deletes its newest
entries and their signed heads, as an attacker with write access to the database would.
"""

from __future__ import annotations

import argparse
import base64
import logging
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hub.app import create_app
from hub.audit.checkpoint import COSIGNATURE_V1, ED25519, Checkpoint, Verifier
from hub.audit.merkle import MerkleTree, leaf_hash
from hub.audit.witness import Witness, WitnessStore, create_witness_app, make_witness
from hub.cli import main
from hub.demo.generate import GenerateResult
from hub.store.clients import ClientStore
from tests.conftest import make_settings, serve, working_clock

ORIGIN = "hub.test/audit"
NOW = datetime(2026, 3, 1, 2, 0, 0, tzinfo=UTC)


def fixed_clock() -> datetime:
    return NOW


def tree_of(n: int, salt: str = "") -> MerkleTree:
    return MerkleTree(leaf_hash(f"{salt}entry {i}".encode()) for i in range(n))


@pytest.fixture
def witness(tmp_path: Path) -> tuple[Witness, Ed25519PrivateKey, httpx.AsyncClient]:
    log_key = Ed25519PrivateKey.generate()
    w = Witness(
        "witness.test/w1",
        Ed25519PrivateKey.generate(),
        {ORIGIN: Verifier.of(ORIGIN, ED25519, log_key.public_key())},
        WitnessStore(tmp_path / "witness.sqlite"),
        clock=fixed_clock,
    )
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=create_witness_app(w)), base_url="http://w.test")
    return w, log_key, client


def request_body(old: int, proof: list[bytes], cp: Checkpoint) -> bytes:
    lines = "".join(base64.b64encode(p).decode() + "\n" for p in proof)
    return f"old {old}\n{lines}\n{cp.to_text()}".encode()


async def add(client: httpx.AsyncClient, old: int, proof: list[bytes], cp: Checkpoint) -> httpx.Response:
    return await client.post("/add-checkpoint", content=request_body(old, proof, cp))


def signed(key: Ed25519PrivateKey, tree: MerkleTree, size: int, origin: str = ORIGIN) -> Checkpoint:
    return Checkpoint(origin, size, tree.root(size)).sign(origin, key)


async def test_witness_cosigns_consistent_checkpoints_and_refuses_the_rest(
    witness: tuple[Witness, Ed25519PrivateKey, httpx.AsyncClient],
) -> None:
    w, key, client = witness
    tree = tree_of(20)
    r = await add(client, 0, [], signed(key, tree, 10))
    assert r.status_code == 200, r.text
    cp10 = signed(key, tree, 10).with_signatures([])
    cosigned = Checkpoint.from_text(cp10.to_text() + r.text)
    assert cosigned.verify_cosignature(w.verifier) == int(NOW.timestamp())  # the witness's injected clock
    assert w.store.latest(ORIGIN) == (10, tree.root(10))

    # consistent growth 10 -> 15: cosigned
    r = await add(client, 10, tree.consistency_proof(10, 15), signed(key, tree, 15))
    assert r.status_code == 200 and w.store.latest(ORIGIN) == (15, tree.root(15))
    # a stale old size: 409 with the size the witness holds
    r = await add(client, 10, tree.consistency_proof(10, 20), signed(key, tree, 20))
    assert (r.status_code, r.headers["content-type"], r.text) == (409, "text/x.tlog.size", "15\n")
    # a smaller checkpoint (the log shortened to 12): the old size is larger than it, 400; from 0, 409
    r = await add(client, 15, [], signed(key, tree, 12))
    assert r.status_code == 400
    r = await add(client, 0, [], signed(key, tree, 12))
    assert (r.status_code, r.text) == (409, "15\n")
    # a forked log: the same first 12 entries, then different ones; the proof from 15 does not verify
    leaves = [leaf_hash(f"entry {i}".encode()) for i in range(12)]
    forked = MerkleTree([*leaves, *(leaf_hash(f"forged {i}".encode()) for i in range(8))])
    r = await add(client, 15, forked.consistency_proof(15, 20), signed(key, forked, 20))
    assert r.status_code == 422
    # the same size with another root: 409
    r = await add(client, 15, [], signed(key, forked, 15))
    assert (r.status_code, r.text) == (409, "15\n")
    # an unknown origin: 404; a signature by another key: 403
    r = await add(client, 0, [], signed(key, tree, 5, origin="other.test/log"))
    assert r.status_code == 404
    r = await add(client, 15, tree.consistency_proof(15, 20), signed(Ed25519PrivateKey.generate(), tree, 20))
    assert r.status_code == 403
    # none of the refusals moved the witness
    assert w.store.latest(ORIGIN) == (15, tree.root(15))
    r = await add(client, 15, tree.consistency_proof(15, 20), signed(key, tree, 20))
    assert r.status_code == 200 and w.store.latest(ORIGIN) == (20, tree.root(20))


async def test_witness_refuses_malformed_requests(
    witness: tuple[Witness, Ed25519PrivateKey, httpx.AsyncClient],
) -> None:
    _, key, client = witness
    cp = signed(key, tree_of(4), 4)
    for body in [b"old 1\n\n", b"old x\n\n" + cp.to_text().encode(), b"old 01\n\n" + cp.to_text().encode()]:
        assert (await client.post("/add-checkpoint", content=body)).status_code == 400
    r = await client.post("/add-checkpoint", content=b"old 0\n" + b"A" * 20_000)
    assert r.status_code == 413
    r = await add(client, 0, [tree_of(4).root(2)], cp)  # a proof from size 0
    assert r.status_code == 422


def test_witness_cli_reads_log_keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log_vkey = Verifier.of(ORIGIN, ED25519, Ed25519PrivateKey.generate().public_key()).to_text()
    args = argparse.Namespace(
        key_dir=str(tmp_path / "w"), name="witness.test/w1", store=None, log=[f"{ORIGIN}={log_vkey}"]
    )
    w = make_witness(args)
    assert w.logs[ORIGIN].to_text() == log_vkey
    assert main(["witness", "key", "--key-dir", str(tmp_path / "w"), "--name", "witness.test/w1"]) == 0
    assert capsys.readouterr().out == w.verifier.to_text() + "\n"
    assert w.verifier.alg == COSIGNATURE_V1
    assert (tmp_path / "w" / "witness-private.pem").stat().st_mode & 0o777 == 0o600
    assert main(["witness", "serve", "--key-dir", str(tmp_path / "w"), "--log", f"{ORIGIN}=nonsense+1+x"]) == 2
    assert "BAD_ARGUMENT" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------- end to end
async def _requests(client: httpx.AsyncClient, token: str, n: int) -> list[dict[str, object]]:
    receipts = []
    for i in range(n):
        r = await client.post(
            "/graphql",
            json={"query": "{ catalog { coordinate } }"},
            headers={"authorization": f"Bearer {token}", "x-hub-purpose": "MON", "x-hub-officer": f"o-{i}"},
        )
        receipts.append(r.json()["extensions"]["receipt"])
    return receipts


async def test_a_shortened_log_is_caught_by_its_witnessed_checkpoint(
    tmp_path: Path,
    dept_data: tuple[Path, GenerateResult],
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # a witness on 127.0.0.1 that knows the hub's audit key
    root = tmp_path / "hub"
    (root).mkdir()
    (root / "departments").symlink_to(dept_data[0] / "departments")
    settings = make_settings(root, audit_origin=ORIGIN)
    from hub.auth.keys import KeyRing

    ring = KeyRing(settings.key_dir)
    ring.ensure()
    log_v = Verifier.of(ORIGIN, ED25519, ring.audit_private_key().public_key())
    w = Witness(
        "witness.test/w1",
        Ed25519PrivateKey.generate(),
        {ORIGIN: log_v},
        WitnessStore(tmp_path / "w.sqlite"),
        clock=fixed_clock,
    )
    with serve(create_witness_app(w)) as witness_url:
        settings = settings.replace(witnesses=f"{w.verifier.to_text()}={witness_url}")
        app = create_app(settings, sign_interval=3600, clock=working_clock())
        state = app.state.hub
        _, secret = ClientStore(state.engine).add("mon-ca", "civil_affairs", "330113", ["MON"], [])
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hub.test") as client,
        ):
            r = await client.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=("mon-ca", secret))
            token = r.json()["access_token"]
            await _requests(client, token, 7)
            head1 = state.audit.sign_head()  # pushed to the witness and cosigned
            await _requests(client, token, 4)
            head2 = state.audit.sign_head()
            assert (head1.tree_size, head2.tree_size) == (7, 11)
            assert w.store.latest(ORIGIN) == (11, head2.root_hash)
            r = await client.get("/audit/checkpoint")
            assert r.status_code == 200
            witnessed = Checkpoint.from_text(r.text)
            witnessed.verify(log_v)
            assert witnessed.tree_size == 11 and witnessed.verify_cosignature(w.verifier) == int(NOW.timestamp())
            cp_file = tmp_path / "checkpoint.txt"
            cp_file.write_text(r.text, encoding="utf-8")
            assert main(["--data-dir", str(root), "audit", "checkpoint", "--witnessed"]) == 0
            assert capsys.readouterr().out == (
                f"size 7 cosigned by witness.test/w1 (received {_received(state, 7)})\n"
                f"size 11 cosigned by witness.test/w1 (received {_received(state, 11)})\n"
                "2 cosignatures from witnesses\n"
            )

            # the attack: delete the newest 4 entries, their signed head and the hub's copy of the cosignature
            with sqlite3.connect(root / "hub.sqlite") as db:
                db.execute("DELETE FROM audit_entries WHERE seq >= 7")
                db.execute("DELETE FROM audit_subjects WHERE seq >= 7")
                db.execute("DELETE FROM tree_heads WHERE tree_size > 7")
                db.execute("DELETE FROM witnessed_checkpoints WHERE tree_size > 7")
            state.audit.forget_tree()  # the running hub forgets too (a restart)

            verify = ["--data-dir", str(root), "audit", "verify"]
            assert main(verify) == 0  # today's check alone does not see it
            assert capsys.readouterr().out.startswith("OK: audit log: 7 entries (seq 0–6), 1 signed tree head")
            witness_key = ["--checkpoint", str(cp_file), "--witness-key", w.verifier.to_text()]
            assert main([*verify, *witness_key]) == 1
            assert capsys.readouterr().out == (
                "FAILED: audit log: entries 7–10 are missing: the log was shortened after a checkpoint of size 11 "
                "was witnessed\n"
            )

            # the log cannot get a cosignature again: smaller (409, then its size is above ours) ...
            caplog.set_level(logging.ERROR, "hub.witness")
            await _requests(client, token, 2)
            state.audit.sign_head()
            assert "witness witness.test/w1 has cosigned size 11, larger than the log's 9" in caplog.text
            # ... or refilled past the witnessed size (the consistency proof from 11 fails: 422)
            await _requests(client, token, 4)
            head = state.audit.sign_head()
            assert head.tree_size == 13
            assert "witness witness.test/w1 refused the checkpoint of size 13: 422" in caplog.text
            assert w.store.latest(ORIGIN) == (11, head2.root_hash)
            assert main([*verify, *witness_key]) == 1
            assert capsys.readouterr().out == (
                "FAILED: audit log: the first 11 entries do not match the witnessed checkpoint of size 11: the log "
                "was rewritten (or shortened and refilled) after it was witnessed\n"
            )
            # a witness key that did not cosign it is a usage error
            other = Verifier.of("witness.test/w2", COSIGNATURE_V1, Ed25519PrivateKey.generate().public_key())
            assert main([*verify, "--checkpoint", str(cp_file), "--witness-key", other.to_text()]) == 2
            assert "error [BAD_CHECKPOINT]: the checkpoint carries no valid cosignature by witness witness.test/w2" in (
                capsys.readouterr().err
            )


def _received(state: object, size: int) -> str:
    from hub.audit.witness import witnessed_sizes

    at = next(a for s, _, a in witnessed_sizes(state.audit.engine) if s == size)  # type: ignore[attr-defined]
    return str(at.isoformat(timespec="seconds"))
