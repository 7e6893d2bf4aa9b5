"""Privacy officers: search the log, flags, residents' access reports; nobody else may; values never logged."""

from __future__ import annotations

import json
from datetime import date, datetime, time
from typing import Any

from sqlalchemy import select

from hub.clock import CHINA
from hub.db import audit_entries, audit_subjects
from tests.conftest import Hub

PERSON = "query($id: String!) { person(idNumber: $id) { name civilAffairs { tier monthlyAmount } } }"
SEARCH = """query($f: AuditFilter, $after: Int) { auditEntries(filter: $f, first: 2, after: $after) {
  hasMore endCursor entries { seq department clientId officer purpose caseRef decision reasons subjectCount flags
  fields { coordinate form } } } }"""


async def officer(hub: Hub, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    r = await hub.query(
        query, client="officer", purpose="AUDIT", case=None, officer="privacy-officer-zhao", variables=variables
    )
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    assert "errors" not in body, body
    return body["data"]


async def test_search_by_resident_case_and_field(hub: Hub, audit_tail: Any) -> None:
    for case in ("CASE-OV-1", "CASE-OV-2", "CASE-OV-3"):
        r = await hub.query(PERSON, officer="caseworker-sun", case=case, variables={"id": hub.data.golden_id})
        assert r.status_code == 200
    data = await officer(hub, SEARCH, {"f": {"idNumber": hub.data.golden_id, "officer": "caseworker-sun"}})
    page = data["auditEntries"]
    assert page["hasMore"] is True and len(page["entries"]) == 2
    assert [e["caseRef"] for e in page["entries"]] == ["CASE-OV-1", "CASE-OV-2"]
    first = page["entries"][0]
    assert first["department"] == "civil_affairs" and first["clientId"] == "linping-ca"
    assert first["decision"] == "allow" and first["subjectCount"] == 1 and first["flags"] == []
    assert first["fields"] == [
        {"coordinate": "CivilAffairsRecord.monthlyAmount", "form": "raw"},
        {"coordinate": "CivilAffairsRecord.tier", "form": "raw"},
        {"coordinate": "Person.name", "form": "raw"},
    ]
    nxt = await officer(
        hub, SEARCH, {"f": {"idNumber": hub.data.golden_id, "officer": "caseworker-sun"}, "after": page["endCursor"]}
    )
    assert [e["caseRef"] for e in nxt["auditEntries"]["entries"]] == ["CASE-OV-3"]
    assert nxt["auditEntries"]["hasMore"] is False
    by_field = await officer(hub, SEARCH, {"f": {"field": "CivilAffairsRecord.monthlyAmount", "caseRef": "CASE-OV-2"}})
    assert [e["caseRef"] for e in by_field["auditEntries"]["entries"]] == ["CASE-OV-2"]
    # the officer's own search is audited, with the resident they looked up as a subject
    mine = [e for e in audit_tail() if e["client_id"] == "officer"]
    assert mine and mine[0]["fields"] == [] and len(mine[0]["subjects"]) == 1
    assert mine[0]["subjects"][0] == hub.app.state.hub.audit.pseudonym(hub.data.golden_id)


async def _own_client(hub: Hub, client_id: str) -> str:
    """A client registered for this test alone, so flags counted per client see no other test's requests."""
    if client_id not in hub.secrets:
        _, hub.secrets[client_id] = hub.app.state.hub.clients.add(
            client_id, "civil_affairs", "330106", ["VER", "MON", "CASE"], []
        )
    return client_id


async def test_flags(hub: Hub) -> None:
    """Independent of test order: its own clients and officers, so earlier denials cannot add flags."""
    denier = await _own_client(hub, "flags-denier")
    away_client = await _own_client(hub, "flags-away")
    # MON needs no case: an allowed request touching a resident without a case reference is a lead
    await hub.query(PERSON, purpose="MON", case=None, officer="flags-monitor", variables={"id": hub.data.golden_id})
    # three denials within ten minutes
    for _ in range(3):
        await hub.query(
            '{ person(idNumber: "11010519491231002X") { idNumberMasked } }', client=denier, officer="flags-nosy-1"
        )
    # an out-of-area attempt: a 西湖 client asks for the golden man, who lives in 临平
    await hub.query(PERSON, client=away_client, officer="flags-nosy-2", variables={"id": hub.data.golden_id})
    mon = await officer(hub, SEARCH, {"f": {"officer": "flags-monitor"}})
    assert [e["flags"] for e in mon["auditEntries"]["entries"]] == [["NO_CASE_REFERENCE"]]
    denials = await officer(hub, SEARCH.replace("first: 2", "first: 5"), {"f": {"officer": "flags-nosy-1"}})
    assert [e["flags"] for e in denials["auditEntries"]["entries"]] == [[], [], ["REPEATED_DENIALS"]]
    assert denials["auditEntries"]["entries"][0]["reasons"] == [
        "Person.idNumberMasked: no grant of Person.idNumberMasked to civil_affairs for purpose CASE"
    ]
    away = await officer(hub, SEARCH, {"f": {"officer": "flags-nosy-2"}})
    assert [e["flags"] for e in away["auditEntries"]["entries"]] == [["OUT_OF_AREA_ATTEMPT"]]


async def test_resident_access_report(hub: Hub) -> None:
    await hub.query(PERSON, officer="report-officer", case="CASE-R-1", variables={"id": hub.data.golden_id})
    q = """query($id: String!) { residentAccessReport(idNumber: $id) { at department clientId officer purpose
      caseRef fields } }"""
    data = await officer(hub, q, {"id": hub.data.golden_id})
    mine = [a for a in data["residentAccessReport"] if a["officer"] == "report-officer"]
    assert mine == [
        {
            "at": mine[0]["at"],
            "department": "civil_affairs",
            "clientId": "linping-ca",
            "officer": "report-officer",
            "purpose": "CASE",
            "caseRef": "CASE-R-1",
            "fields": ["CivilAffairsRecord.monthlyAmount", "CivilAffairsRecord.tier", "Person.name"],
        }
    ]


async def test_only_officers(hub: Hub) -> None:
    r = await hub.query(SEARCH, variables={"f": {}})
    assert r.status_code == 403
    assert r.json()["errors"][0]["extensions"]["denied"] == [
        {"coordinate": "Query.auditEntries", "reason": "requires the officer role"}
    ]


async def test_no_values_or_id_numbers_in_the_log(hub: Hub) -> None:
    r = await hub.query(
        "query($id: String!) { person(idNumber: $id) { idNumber name birthDate hukouAddress "
        "household { address } civilAffairs { tier monthlyAmount } disability { grade } } }",
        variables={"id": hub.data.golden_id},
    )
    data = r.json()["data"]["person"]
    values = [data["idNumber"], data["name"], data["hukouAddress"], data["household"]["address"]]
    with hub.app.state.hub.engine.connect() as conn:
        log_text = "\n".join(row[0] for row in conn.execute(select(audit_entries.c.entry)))
        subjects = [row[0] for row in conn.execute(select(audit_subjects.c.subject))]
    for v in values:
        assert v not in log_text, v
    assert hub.data.golden_id not in "".join(subjects)
    last = json.loads(log_text.splitlines()[-1])
    assert set(last) >= {
        "seq",
        "prev",
        "at",
        "request_id",
        "client_id",
        "department",
        "officer",
        "purpose",
        "case_ref",
        "digest_key",
        "request_digest",
        "fields",
        "subjects",
        "refused_subjects",
        "decision",
        "reasons",
        "result_digest",
        "latency_ms",
    }
    assert last["v"] == 2 and not set(last) & {"operation_sha256", "result_sha256"}


async def test_bulk_flags(hub: Hub) -> None:
    from hub.audit.query import flags_for
    from hub.departments import residents

    with hub.app.state.hub.sources["public_security"].engine.connect() as conn:
        ids = [
            r[0]
            for r in conn.execute(
                select(residents.c.id_number).where(residents.c.area_code.startswith("3301")).limit(250)
            )
        ]
    bulk = "query($ids: [String!]!) { people(idNumbers: $ids) { idNumber } }"
    today = date.today()
    # the same bulk lookup at 14:00 and at 02:30 China time: only the second is a night-time bulk read
    for name, hour in (("bulk-1", time(14, 0)), ("bulk-night", time(2, 30))):
        with hub.at(datetime.combine(today, hour, CHINA)):
            r = await hub.query(
                bulk, client="hangzhou-ca", officer=name, purpose="MON", case=None, variables={"ids": ids}
            )
        assert r.status_code == 200
    page = await officer(hub, SEARCH, {"f": {"officer": "bulk-1"}})
    assert page["auditEntries"]["entries"][0]["flags"] == ["NO_CASE_REFERENCE", "MANY_RESIDENTS_PER_HOUR"]
    page = await officer(hub, SEARCH, {"f": {"officer": "bulk-night"}})
    assert page["auditEntries"]["entries"][0]["flags"] == [
        "NO_CASE_REFERENCE",
        "NIGHT_TIME_BULK",
        "MANY_RESIDENTS_PER_HOUR",
    ]
    with hub.app.state.hub.engine.connect() as conn:
        night = {
            "at": "2026-11-28T18:30:00.000+00:00",
            "decision": "allow",
            "case_ref": "C-1",
            "subjects": ["x"] * 60,
            "officer": "",
            "client_id": "c",
            "seq": 10**9,
        }
        assert flags_for(conn, night) == ["NIGHT_TIME_BULK"]  # 02:30 in Hangzhou, 60 residents
        assert flags_for(conn, {**night, "at": "2026-11-28T06:30:00.000+00:00"}) == []


async def test_signed_heads_and_proofs_verify_offline(hub: Hub) -> None:
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    from hub.audit.entry import entry_leaf, head_message
    from hub.audit.merkle import verify_consistency, verify_inclusion

    first = await officer(hub, "{ auditTreeHead(signNow: true) { treeSize rootHash signedAt signature } }", {})
    await hub.query(PERSON, variables={"id": hub.data.golden_id})
    second = await officer(hub, "{ auditTreeHead(signNow: true) { treeSize rootHash signedAt signature } }", {})
    h1, h2 = first["auditTreeHead"], second["auditTreeHead"]
    assert h2["treeSize"] > h1["treeSize"]
    pem = (await hub.client.get("/.well-known/audit-key.pem")).content
    key = load_pem_public_key(pem)
    from datetime import datetime

    for h in (h1, h2):
        ms = int(datetime.fromisoformat(h["signedAt"]).timestamp() * 1000)
        key.verify(bytes.fromhex(h["signature"]), head_message(h["treeSize"], bytes.fromhex(h["rootHash"]), ms))  # type: ignore[union-attr]
    seq = h1["treeSize"] - 1
    proof = (
        await officer(
            hub,
            "query($s: Int!, $n: Int) { auditInclusionProof(seq: $s, treeSize: $n) { leafHash path rootHash } }",
            {"s": seq, "n": h2["treeSize"]},
        )
    )["auditInclusionProof"]
    with hub.app.state.hub.engine.connect() as conn:
        text = conn.execute(select(audit_entries.c.entry).where(audit_entries.c.seq == seq)).scalar_one()
    assert proof["leafHash"] == entry_leaf(text).hex() and proof["rootHash"] == h2["rootHash"]
    verify_inclusion(
        entry_leaf(text), seq, h2["treeSize"], [bytes.fromhex(p) for p in proof["path"]], bytes.fromhex(h2["rootHash"])
    )
    cons = (
        await officer(
            hub,
            "query($a: Int!, $b: Int) { auditConsistencyProof(firstSize: $a, secondSize: $b) { path } }",
            {"a": h1["treeSize"], "b": h2["treeSize"]},
        )
    )["auditConsistencyProof"]
    verify_consistency(
        h1["treeSize"],
        h2["treeSize"],
        [bytes.fromhex(p) for p in cons["path"]],
        bytes.fromhex(h1["rootHash"]),
        bytes.fromhex(h2["rootHash"]),
    )
