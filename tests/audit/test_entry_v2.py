"""Audit entry v2 (issue 17; issue 11 part 6): no digest in an entry or an export lets someone without the hub's
keys confirm a guess about a resident or an answer; audited headers are checked before anything is kept; refused
attempts on a resident are on that resident's report."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from hub.audit.entry import canonical, pseudonym
from hub.auth.keys import KeyRing
from hub.cli import main
from hub.demo.generate import GenerateResult
from hub.ids import make_id
from tests.audit.served import Served, served_hub

# The README's example shape (the ID number inline), and a predicate asked with a fixed threshold.
README_SHAPE = 'query {{ person(idNumber: "{id}") {{ name civilAffairs {{ tier }} }} }}'
PREDICATE_SHAPE = 'query {{ person(idNumber: "{id}") {{ medical {{ outOfPocket12mAtLeast(threshold: 20000) }} }} }}'
VARIABLE_SHAPE = "query($id: String!) {{ person(idNumber: $id) {{ name }} }}"
HASHES = ("sha256", "sha1", "md5", "sha512", "blake2b", "sha3_256")


@pytest.fixture(scope="module")
def own(dept_data: tuple[Path, GenerateResult], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    yield from served_hub(tmp_path_factory.mktemp("entry-v2"), dept_data)


def cli(capsys: pytest.CaptureFixture[str], own: Served, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["--data-dir", str(own.settings.data_dir), "audit", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def _strings(obj: Any, out: set[str]) -> set[str]:
    if isinstance(obj, str):
        out.add(obj.lower())
    elif isinstance(obj, dict):
        for k, v in obj.items():
            _strings(k, out)
            _strings(v, out)
    elif isinstance(obj, list):
        for v in obj:
            _strings(v, out)
    elif obj is not None:
        out.add(str(obj).lower())
    return out


def confirmations(entries: list[dict[str, Any]], candidates: dict[str, bytes]) -> list[str]:
    """What an auditor holding the entries, and no key, confirms: a candidate (a guessed query, request body or
    answer) whose unkeyed hash is a value in an entry, or whose text appears in one."""
    values: set[str] = set()
    texts = []
    for e in entries:
        _strings(e, values)
        texts.append(json.dumps(e, ensure_ascii=False))
    found = []
    for name, guess in candidates.items():
        if any(hashlib.new(h, guess).hexdigest() in values for h in HASHES) or any(
            guess.decode("utf-8") in t for t in texts
        ):
            found.append(name)
    return found


def candidate_guesses(own: Served) -> dict[str, bytes]:
    """Candidate ID numbers (the true ones among decoys) in every query shape, as query text and as the JSON body
    a client sends; candidate answers (the true ones among decoys)."""
    ids = [own.data.golden_id] + [make_id("330113", date(1950, 1, 1 + d), 11) for d in range(20)]
    guesses: dict[str, bytes] = {}
    for i in ids:
        for label, shape in (("readme", README_SHAPE), ("predicate", PREDICATE_SHAPE)):
            q = shape.format(id=i)
            guesses[f"query {label} {i}"] = q.encode()
            guesses[f"body {label} {i}"] = json.dumps({"query": q}).encode()
        guesses[f"variables {i}"] = json.dumps({"query": VARIABLE_SHAPE.format(), "variables": {"id": i}}).encode()
        guesses[f"id {i}"] = i.encode()
    for name in ("钱国良", "王小明", "李建国", "张伟"):
        for tier in (None, "dibao", "special_hardship", "low_edge", "rigid_expenditure", "temporary"):
            answer = {"person": {"name": name, "civilAffairs": {"tier": tier} if tier else None}}
            guesses[f"answer {name} {tier}"] = canonical(answer)
        guesses[f"answer name {name}"] = canonical({"person": {"name": name}})
    for b in (True, False, None):
        guesses[f"answer predicate {b}"] = canonical({"person": {"medical": {"outOfPocket12mAtLeast": b}}})
    return guesses


def test_an_export_confirms_no_guess_about_a_resident_or_an_answer(
    own: Served, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    golden = own.data.golden_id
    first = own.last_seq() + 1
    readme = own.post(README_SHAPE.format(id=golden))
    predicate = [own.post(PREDICATE_SHAPE.format(id=golden)) for _ in range(2)]
    by_variable = own.post(VARIABLE_SHAPE.format(), variables={"id": golden})
    denied = own.post(PREDICATE_SHAPE.format(id=golden), client="linping-med", purpose="REF")
    named = own.post(README_SHAPE.format(id=golden).replace("query", f"query q{golden}", 1))
    assert readme.json()["data"]["person"]["name"] == "钱国良"
    assert predicate[0].json()["data"] == predicate[1].json()["data"]
    assert denied.status_code == 403 and named.status_code == 200
    responses = [readme, *predicate, by_variable, denied, named]

    out = tmp_path / "export.jsonl"
    code, text, _ = cli(capsys, own, "export", "--output", str(out), "--first", str(first))
    assert code == 0, text
    lines = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    entries = [json.loads(x["entry"]) for x in lines if "entry" in x]
    assert [e["request_id"] for e in entries] == [r.headers["x-request-id"] for r in responses]
    assert {e["v"] for e in entries} == {2}

    guesses = candidate_guesses(own)
    assert confirmations(entries, guesses) == []
    header = lines[0]
    assert confirmations([header], guesses) == [] and confirmations(lines[len(entries) + 1 :], guesses) == []

    # The same test confirms both the resident and the answer from a v1 entry, as the code before v2 wrote it.
    data = readme.json()["data"]
    v1 = dict(
        entries[0],
        v=1,
        operation_sha256=hashlib.sha256(README_SHAPE.format(id=golden).encode()).hexdigest(),
        result_sha256=hashlib.sha256(canonical(data)).hexdigest(),
    )
    tier = data["person"]["civilAffairs"]["tier"]
    assert sorted(confirmations([v1], guesses)) == sorted([f"query readme {golden}", f"answer 钱国良 {tier}"])

    # Equal answers do not give equal digests (the digest is bound to the request id).
    p1, p2 = entries[1:3]
    assert p1["result_digest"] != p2["result_digest"]

    # What the consumer keeps (extensions.digests) is what the entry records, and the hub can show that the
    # request and answer it holds are the ones recorded.
    audit = own.app.state.hub.audit
    for r, e in zip(responses, entries, strict=True):
        assert r.json()["extensions"]["digests"] == {
            "key": e["digest_key"],
            "request": e["request_digest"],
            "result": e["result_digest"],
        }
        rid = r.headers["x-request-id"]
        assert audit.digest("request", rid, r.request.content) == e["request_digest"]
        assert audit.digest("result", rid, canonical(r.json()["data"])) == e["result_digest"]
        assert audit.digest("result", rid, canonical({"person": None})) != e["result_digest"]

    # Offline verification of the export needs only the public key.
    code, text, _ = cli(
        capsys, own, "verify", "--file", str(out), "--public-key", str(own.settings.key_dir / "audit-public.pem")
    )
    assert code == 0 and text.startswith("OK: export export.jsonl")


def test_v1_and_v2_entries_verify_together(own: Served, capsys: pytest.CaptureFixture[str]) -> None:
    """Old entries are not rewritten: a log holding v1 entries (as written before) and v2 ones verifies."""
    audit = own.app.state.hub.audit
    golden = own.data.golden_id
    v1 = {
        "v": 1,
        "request_id": "0" * 32,
        "client_id": "linping-ca",
        "department": "civil_affairs",
        "area": "330113",
        "token_id": "t",
        "officer": "officer-wang",
        "purpose": "CASE",
        "case_ref": "CASE-1",
        "operation_name": "",
        "operation_sha256": hashlib.sha256(b"{ person }").hexdigest(),
        "fields": [{"coordinate": "Person.name", "form": "raw"}],
        "requested_denied": [],
        "predicate_args": {},
        "subject_count": 1,
        "out_of_area": 0,
        "decision": "allow",
        "reasons": [],
        "status": 200,
        "upstream_failures": [],
        "result_sha256": hashlib.sha256(b"null").hexdigest(),
        "latency_ms": 3.25,
    }
    (seq,) = audit.write([(v1, [audit.pseudonym(golden)])])
    written = own.entries(seq - 1)[0]
    assert written == dict(v1, seq=seq, prev=written["prev"], at=written["at"], subjects=[audit.pseudonym(golden)])
    assert own.post(README_SHAPE.format(id=golden)).status_code == 200
    assert cli(capsys, own, "sign")[0] == 0
    code, text, _ = cli(capsys, own, "verify")
    assert code == 0 and text.startswith("OK: audit log"), text
    code, text, _ = cli(capsys, own, "subject", golden)
    assert f"seq {seq} allow" in text and code == 0


def test_digest_keys_sit_beside_the_pseudonym_key_and_rotate(tmp_path: Path) -> None:
    ring = KeyRing(tmp_path / "keys")
    ring.ensure()
    assert (tmp_path / "keys" / "pseudonym.key").exists()
    (first,) = ring.digest_keys()
    assert ring.digest_key() == ring.digest_keys()[first]
    second = ring.rotate_digest_key()
    assert list(ring.digest_keys()) == [first, second] and second != first
    assert ring.digest_key() == ring.digest_keys()[second]  # the newest is active; the old one is kept
    assert ring.digest_key() != ring.pseudonym_key()


# ------------------------------------------------------------------------------- issue 11 part 6: headers
@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("officer", b"wang\x1b[2J"),
        ("officer", b"wang\x08\x08\x08\x08li"),
        ("officer", b"wang\x7f"),
        ("officer", "wang\u0085".encode()),
        ("officer", "wang\u202egnaw".encode()),
        ("officer", "wang\u2066x\u2069".encode()),
        ("officer", b"\xff\xfewang"),
        ("case", b"CASE\x1b-1"),
        ("case", "CASE-\u202e1".encode()),
        ("officer", b"A" * 81),
        ("officer", "王" * 81),
        ("officer", b"B" * 6000),
        ("case", b"C" * 81),
        ("case", f"CASE-{make_id('330113', date(1980, 5, 5), 12)}".encode()),
    ],
)
def test_bad_audited_headers_are_refused_and_not_kept(own: Served, header: str, value: bytes | str) -> None:
    raw = value.encode() if isinstance(value, str) else value
    before = own.last_seq()
    kwargs: dict[str, Any] = {header: raw}
    r = own.post(README_SHAPE.format(id=own.data.golden_id), **kwargs)
    assert r.status_code == 400, r.text
    assert r.json()["errors"][0]["extensions"]["code"] == "BAD_HEADER"
    assert "钱国良" not in r.text
    (entry,) = own.entries(before)
    assert (entry["decision"], entry["reasons"], entry["officer"], entry["case_ref"]) == (
        "deny",
        ["BAD_HEADER"],
        "",
        "",
    )
    assert raw.decode("utf-8", "replace") not in json.dumps(entry, ensure_ascii=False)


def test_utf8_officer_round_trips_through_the_entry_and_the_cli(
    own: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    before = own.last_seq()
    r = own.post(README_SHAPE.format(id=own.data.golden_id), officer="王小明".encode(), case="个案-7".encode())
    assert r.status_code == 200
    (entry,) = own.entries(before)
    assert (entry["officer"], entry["case_ref"]) == ("王小明", "个案-7")
    code, text, _ = cli(capsys, own, "subject", own.data.golden_id)
    assert code == 0
    assert (
        f"seq {entry['seq']} allow department=civil_affairs client=linping-ca officer=王小明 purpose=CASE case=个案-7"
        in text
    )


def test_the_cli_escapes_what_an_older_entry_holds(own: Served, capsys: pytest.CaptureFixture[str]) -> None:
    audit = own.app.state.hub.audit
    golden = own.data.golden_id
    body = {
        "v": 1,
        "request_id": "1" * 32,
        "client_id": "linping-ca",
        "department": "civil_affairs",
        "officer": "wang\x1b[2J\u202eevil",
        "purpose": "CASE",
        "case_ref": "C\x08",
        "decision": "allow",
        "fields": [],
    }
    (seq,) = audit.write([(body, [audit.pseudonym(golden)])])
    code, text, _ = cli(capsys, own, "subject", golden)
    line = next(x for x in text.splitlines() if f"seq {seq} " in x)
    assert "officer=wang\\x1b[2J\\u202eevil" in line and "case=C\\x08" in line
    assert "\x1b" not in text and "\u202e" not in text and "\x08" not in text


# ---------------------------------------------------------------- issue 11 part 6: refused attempts are linked
def test_denied_and_out_of_area_attempts_are_on_the_residents_report(
    own: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    golden = own.data.golden_id
    # an allowed look at the same resident, made here so the test does not rely on an earlier one
    assert own.post(README_SHAPE.format(id=golden)).status_code == 200
    before = own.last_seq()
    denied = own.post(PREDICATE_SHAPE.format(id=golden), client="linping-med", purpose="REF")
    denied_by_variable = own.post(
        "query($ids: [String!]! = []) { people(idNumbers: $ids) { tax { annualWageIncome } } }",
        variables={"ids": [golden]},
    )
    out_of_area = own.post(VARIABLE_SHAPE.format(), client="xihu-ca", variables={"id": golden})
    wrong_purpose = own.post(README_SHAPE.format(id=golden), client="linping-med", purpose="CASE")
    assert wrong_purpose.json()["errors"][0]["extensions"]["code"] == "PURPOSE_NOT_REGISTERED"
    assert denied.status_code == 403 and denied_by_variable.status_code == 403
    assert out_of_area.status_code == 200 and out_of_area.json()["data"] == {"person": None}
    new = own.entries(before)
    mine = pseudonym((own.settings.key_dir / "pseudonym.key").read_bytes(), golden)
    assert [(e["decision"], e["refused_subjects"], e["subjects"]) for e in new] == [
        ("deny", [mine], []),
        ("deny", [mine], []),
        ("allow", [mine], []),
        ("deny", [mine], []),
    ]
    seqs = [e["seq"] for e in new]

    code, text, _ = cli(capsys, own, "subject", golden)
    for seq, client in zip(seqs, ("linping-med", "linping-ca", "xihu-ca", "linping-med"), strict=True):
        line = next(x for x in text.splitlines() if f"seq {seq} " in x)
        assert f"client={client}" in line and line.endswith("REFUSED (named this resident; nothing disclosed)")

    report = own.post(
        "query($id: String!) { residentAccessReport(idNumber: $id) { seq clientId fields refused } }",
        client="officer",
        purpose="AUDIT",
        case=None,
        variables={"id": golden},
    )
    rows = {row["seq"]: row for row in report.json()["data"]["residentAccessReport"]}
    for seq, client in zip(seqs, ("linping-med", "linping-ca", "xihu-ca", "linping-med"), strict=True):
        assert rows[seq] == {"seq": seq, "clientId": client, "fields": [], "refused": True}
    allowed = [row for row in rows.values() if not row["refused"]]
    assert any(row["fields"] == ["CivilAffairsRecord.tier", "Person.name"] for row in allowed)
    code, text, _ = cli(capsys, own, "verify")
    assert code == 0, text


def test_hub_keys_rotate_audit_digest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ring = KeyRing(tmp_path / "keys")
    ring.ensure()
    (old,) = ring.digest_keys()
    assert main(["--data-dir", str(tmp_path), "keys", "rotate-audit-digest"]) == 0
    (new,) = [k for k in ring.digest_keys() if k != old]
    assert capsys.readouterr().out.startswith(f"new audit digest key {new};")
