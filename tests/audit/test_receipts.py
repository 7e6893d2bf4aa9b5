"""Every /graphql response carries a receipt of its audit entry; a consumer proves it offline (issue 11 §5)."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select

from hub.audit.checkpoint import ED25519, Checkpoint, Verifier
from hub.audit.entry import entry_leaf
from hub.audit.head import load_public_key
from hub.audit.merkle import verify_inclusion
from hub.db import audit_entries
from tests.conftest import Hub

PERSON = "query($id: String!) { person(idNumber: $id) { name } }"


def stored(hub: Hub, seq: int) -> tuple[str, str]:
    with hub.app.state.hub.engine.connect() as conn:
        row = conn.execute(
            select(audit_entries.c.entry, audit_entries.c.leaf_hash).where(audit_entries.c.seq == seq)
        ).one()
    return row[0], bytes(row[1]).hex()


def check_receipt(hub: Hub, r: httpx.Response, tail: list[dict[str, Any]], decision: str) -> dict[str, Any]:
    receipt: dict[str, Any] = r.json()["extensions"]["receipt"]
    entry = tail[-1]
    assert entry["decision"] == decision and entry["request_id"] == r.headers["x-request-id"]
    text, leaf = stored(hub, entry["seq"])
    assert receipt == {"seq": entry["seq"], "leafHash": leaf, "origin": "hub.local/audit"}
    assert entry_leaf(text).hex() == leaf
    return receipt


async def test_every_response_carries_its_receipt(hub: Hub, audit_tail: Any) -> None:
    r = await hub.query(PERSON, variables={"id": hub.data.golden_id})
    assert r.status_code == 200 and r.json()["data"]["person"]["name"]
    check_receipt(hub, r, audit_tail(), "allow")
    r = await hub.query("{ auditTreeHead { treeSize } }")  # not an officer: denied before execution
    assert r.json()["errors"][0]["extensions"]["code"] == "POLICY_DENIED"
    check_receipt(hub, r, audit_tail(), "deny")
    r = await hub.client.post("/graphql", json={"query": "{ catalog { coordinate } }"})  # no token
    assert r.status_code == 401
    check_receipt(hub, r, audit_tail(), "deny")
    headers = {"authorization": f"Bearer {await hub.token('linping-ca')}", "x-hub-purpose": "CASE"}
    headers |= {"x-hub-officer": "o", "x-hub-case": "C-1", "content-type": "application/json"}
    r = await hub.client.post("/graphql", content=b"{not json", headers=headers)
    assert r.status_code == 400 and r.json()["errors"][0]["extensions"]["code"] == "BAD_JSON"
    check_receipt(hub, r, audit_tail(), "deny")
    r = await hub.query('{ person(idNumber: "1") { name } }')  # a field-level error
    assert r.json()["errors"][0]["extensions"]["code"] == "BAD_ID_NUMBER"
    check_receipt(hub, r, audit_tail(), "allow")  # a partial answer: data is not null
    assert len(audit_tail()) == 5


async def test_a_consumer_proves_its_receipt_offline(hub: Hub, audit_tail: Any) -> None:
    r = await hub.query(PERSON, variables={"id": hub.data.golden_id})
    receipt = check_receipt(hub, r, audit_tail(), "allow")
    token = await hub.token("linping-ca")
    r = await hub.client.get(
        "/audit/receipt", params={"seq": receipt["seq"]}, headers={"authorization": f"Bearer {token}"}
    )
    assert r.status_code == 200, r.text
    proof = r.json()
    assert proof["leafHash"] == receipt["leafHash"] and proof["seq"] == receipt["seq"]
    # offline: the checkpoint is signed by the audit key the consumer trusts, and the leaf is in its tree
    cp = Checkpoint.from_text(proof["checkpoint"])
    key = load_public_key(hub.settings.key_dir / "audit-public.pem")
    cp.verify(Verifier.of(receipt["origin"], ED25519, key))
    assert cp.tree_size == proof["treeSize"] > receipt["seq"] and cp.root_hash.hex() == proof["rootHash"]
    path = [bytes.fromhex(p) for p in proof["path"]]
    verify_inclusion(bytes.fromhex(receipt["leafHash"]), receipt["seq"], cp.tree_size, path, cp.root_hash)
    # the public checkpoint is the latest signed one
    r = await hub.client.get("/audit/checkpoint")
    assert r.status_code == 200 and Checkpoint.from_text(r.text).tree_size >= cp.tree_size

    # another client's entry looks like a missing one; no token is refused
    other = await hub.token("hangzhou-ca")
    r = await hub.client.get(
        "/audit/receipt", params={"seq": receipt["seq"]}, headers={"authorization": f"Bearer {other}"}
    )
    assert (r.status_code, r.json()["error"]["code"]) == (404, "NOT_FOUND")
    r = await hub.client.get("/audit/receipt", params={"seq": 10**9}, headers={"authorization": f"Bearer {token}"})
    assert (r.status_code, r.json()["error"]["code"]) == (404, "NOT_FOUND")
    r = await hub.client.get("/audit/receipt", params={"seq": "-1"}, headers={"authorization": f"Bearer {token}"})
    assert (r.status_code, r.json()["error"]["code"]) == (400, "BAD_ARGUMENT")
    r = await hub.client.get("/audit/receipt", params={"seq": receipt["seq"]})
    assert (r.status_code, r.json()["error"]["code"]) == (401, "TOKEN_MISSING")
