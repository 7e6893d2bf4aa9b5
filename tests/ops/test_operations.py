"""Approved operations (persisted documents), end to end: `hub operations` on the command line, the hub over
HTTP. A client in require mode is refused an unapproved document and runs the approved one, by its text, its
documentId or Apollo's sha256Hash; a document the policies would deny cannot be approved; each action is an
audit entry."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from hub.cli import main
from hub.db import audit_entries
from tests.conftest import POLICIES, Hub
from tests.ops.conftest import OwnHub

QUERY = "query($id: String!) { person(idNumber: $id) { name } }"
DOC = "sha256:" + hashlib.sha256(QUERY.encode()).hexdigest()


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Any:
    """``cli(*args)`` runs `hub --data-dir <the own hub's dir> ...`: (exit status, stdout, stderr)."""
    monkeypatch.setenv("HUB_POLICY_DIR", str(POLICIES))

    def run(*args: str) -> tuple[int, str, str]:
        status = main(["--data-dir", str(tmp_path), *args])
        out = capsys.readouterr()
        return status, out.out, out.err

    return run


async def ask(hub: Hub, payload: dict[str, Any], client: str = "linping-ca", purpose: str = "CASE") -> httpx.Response:
    headers = {"x-hub-purpose": purpose, "x-hub-officer": "officer-wang", "x-hub-case": "CASE-1"}
    headers["authorization"] = f"Bearer {await hub.token(client)}"
    return await hub.client.post("/graphql", json=payload, headers=headers)


def code(r: httpx.Response) -> str:
    return str(r.json()["errors"][0]["extensions"]["code"])


def operation_entries(hub: Hub) -> list[dict[str, Any]]:
    with hub.app.state.hub.engine.connect() as conn:
        rows = conn.execute(select(audit_entries.c.entry).order_by(audit_entries.c.seq)).scalars()
        return [e for e in map(json.loads, rows) if e.get("route") == "operations"]


async def test_require_mode_runs_only_approved_documents(own_hub: OwnHub, cli: Any) -> None:
    async with own_hub() as hub:
        golden = {"id": hub.data.golden_id}
        text = {"query": QUERY, "variables": golden}
        assert (await ask(hub, text)).status_code == 200  # mode off: any document, as before
        assert cli("operations", "mode", "linping-ca", "require", "--by", "privacy-officer-li")[0] == 0

        refused = await ask(hub, text)
        assert (refused.status_code, code(refused)) == (403, "OPERATION_NOT_APPROVED")
        assert refused.json()["errors"][0]["extensions"]["documentId"] == DOC
        assert "data" in refused.json() and hub.data.golden_id not in refused.text

        (Path(hub.settings.data_dir) / "q.graphql").write_text(QUERY)
        status, out, _ = cli(
            "operations", "submit", "--client", "linping-ca", "--purpose", "CASE",
            "--file", str(Path(hub.settings.data_dir) / "q.graphql"), "--by", "dev-zhang",
        )  # fmt: skip
        assert (status, out.split()) == (0, [DOC, "linping-ca", "CASE", "pending"])
        assert code(await ask(hub, text)) == "OPERATION_NOT_APPROVED"  # pending is not approved

        status, out, _ = cli(
            "operations", "approve", DOC, "--client", "linping-ca", "--purpose", "CASE", "--by", "privacy-officer-li"
        )
        assert (status, out.split()) == (
            0,
            [DOC, "linping-ca", "CASE", "approved", "approved", "by", "privacy-officer-li"],
        )

        allowed = await ask(hub, text)
        assert allowed.status_code == 200 and allowed.json()["data"]["person"]["name"]
        by_id = await ask(hub, {"documentId": DOC, "variables": golden})
        assert by_id.status_code == 200 and by_id.json()["data"] == allowed.json()["data"]
        apollo = {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": DOC[7:]}}, "variables": golden}
        assert (await ask(hub, apollo)).json()["data"] == allowed.json()["data"]
        both = await ask(hub, {"documentId": DOC, "query": QUERY, "variables": golden})
        assert both.status_code == 200

        # approved for this client and purpose only
        other = await ask(hub, {"documentId": DOC, "variables": golden}, purpose="MON")
        assert (other.status_code, code(other)) == (400, "PERSISTED_QUERY_NOT_FOUND")
        other = await ask(hub, {"documentId": DOC, "variables": golden}, client="hangzhou-ca")
        assert code(other) == "PERSISTED_QUERY_NOT_FOUND"
        # a query that is not the document named, or a malformed identifier
        mismatch = await ask(hub, {"documentId": DOC, "query": QUERY + " ", "variables": golden})
        assert (mismatch.status_code, code(mismatch)) == (400, "BAD_DOCUMENT_ID")
        assert code(await ask(hub, {"documentId": "sha256:XYZ"})) == "BAD_DOCUMENT_ID"
        assert code(await ask(hub, {"extensions": {"persistedQuery": {"sha256Hash": 7}}})) == "BAD_DOCUMENT_ID"

        status, out, _ = cli(
            "operations", "retire", DOC, "--client", "linping-ca", "--purpose", "CASE", "--by", "privacy-officer-li"
        )
        assert status == 0 and out.split()[3:] == ["retired", "retired", "by", "privacy-officer-li"]
        assert code(await ask(hub, text)) == "OPERATION_NOT_APPROVED"
        assert code(await ask(hub, {"documentId": DOC, "variables": golden})) == "PERSISTED_QUERY_NOT_FOUND"

        entries = operation_entries(hub)
        assert [(e["operation"]["action"], e["officer"], e["decision"]) for e in entries] == [
            ("mode", "privacy-officer-li", "allow"),
            ("submit", "dev-zhang", "allow"),
            ("approve", "privacy-officer-li", "allow"),
            ("retire", "privacy-officer-li", "allow"),
        ]
        assert entries[1]["operation"] == {"action": "submit", "document_id": DOC, "status": "pending"}
        assert {e["client_id"] for e in entries} == {"linping-ca"}
        assert all(e["purpose"] == "CASE" for e in entries[1:])
        status, out, err = cli("audit", "verify")  # the log, with these entries in it, still verifies
        assert status == 0, out + err


async def test_a_document_the_policies_deny_cannot_be_approved(own_hub: OwnHub, cli: Any, tmp_path: Path) -> None:
    async with own_hub():
        (tmp_path / "q.graphql").write_text(QUERY)
        submit = (
            "operations",
            "submit",
            "--client",
            "linping-med",
            "--purpose",
            "REF",
            "--file",
            str(tmp_path / "q.graphql"),
        )
        assert cli(*submit, "--by", "dev-zhang")[0] == 0
        status, _, err = cli(
            "operations", "approve", DOC, "--client", "linping-med", "--purpose", "REF", "--by", "privacy-officer-li"
        )
        assert status == 2
        assert err.startswith(f"error [OPERATION_REFUSED]: {DOC} would be denied to medical_security for purpose REF")
        assert "Person.name: no grant of Person.name to medical_security for purpose REF" in err
        status, out, _ = cli("operations", "list", "--client", "linping-med")
        assert out.split() == [DOC, "linping-med", "REF", "pending"]
        # an invalid document is refused at submission; an unknown one cannot be approved
        (tmp_path / "bad.graphql").write_text("{ nope }")
        bad = (
            "operations",
            "submit",
            "--client",
            "linping-ca",
            "--purpose",
            "CASE",
            "--file",
            str(tmp_path / "bad.graphql"),
        )
        status, _, err = cli(*bad, "--by", "dev-zhang")
        assert status == 2 and err.startswith("error [OPERATION_REFUSED]: Cannot query field 'nope' on type 'Query'.")
        status, _, err = cli(
            "operations", "approve", "sha256:" + "0" * 64, "--client", "linping-ca", "--purpose", "CASE", "--by", "x"
        )
        assert status == 2 and err.startswith("error [OPERATION_STATE]: no operation sha256:000")


async def test_log_mode_runs_and_logs_unapproved_documents(
    own_hub: OwnHub, cli: Any, caplog: pytest.LogCaptureFixture
) -> None:
    async with own_hub() as hub:
        assert cli("operations", "mode", "xihu-ca", "log", "--by", "privacy-officer-li")[0] == 0
        with caplog.at_level(logging.WARNING, logger="hub.operations"):
            r = await ask(hub, {"query": QUERY, "variables": {"id": hub.data.golden_id}}, client="xihu-ca")
        assert r.status_code == 200 and "errors" not in r.json()
        assert [rec.getMessage() for rec in caplog.records if rec.name == "hub.operations"] == [
            f"client xihu-ca ran a document not approved for purpose CASE: {DOC}"
        ]
        metrics = (await hub.client.get("/metrics")).text
        line = 'hub_unapproved_documents_total{department="civil_affairs",mode="log",purpose="CASE"} 1.0'
        assert line in metrics
        with pytest.raises(SystemExit):  # argparse refuses an unknown mode
            cli("operations", "mode", "xihu-ca", "sometimes", "--by", "x")
