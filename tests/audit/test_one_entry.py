"""One request, exactly one audit entry, whatever it contains (issue 11 part 1).

A denied predicate whose threshold is a variable with a default made the entry unencodable (graphql-core's
``Undefined``), which failed the whole group commit: every request committed with it got 503. Variable
defaults did not count towards the cost limit. Driven over real HTTP, concurrently.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from hub.db import audit_entries
from hub.demo.generate import GenerateResult
from hub.ids import make_id
from hub.limits import estimate_cost
from tests.audit.served import Served, served_hub
from tests.conftest import CLIENTS

ORDINARY = "query($id: String!) { person(idNumber: $id) { name civilAffairs { tier } } }"
PREDICATE = 'query($t: Int = 1) { person(idNumber: "%s") { medical { outOfPocket12mAtLeast(threshold: $t) } } }'


@pytest.fixture(scope="module")
def own(dept_data: tuple[Path, GenerateResult], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    yield from served_hub(tmp_path_factory.mktemp("one-entry"), dept_data)


def entries_for(own: Served, request_id: str) -> int:
    with own.app.state.hub.engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count()).select_from(audit_entries).where(audit_entries.c.request_id == request_id)
            ).scalar_one()
        )


def ordinary(own: Served, http: httpx.Client) -> httpx.Response:
    return own.post(ORDINARY, variables={"id": own.data.golden_id}, http=http)


def test_denied_predicate_with_a_default_fails_no_other_request(own: Served) -> None:
    """The issue's run: 2 senders of the denied predicate among 3 ordinary ones, 50 requests in all."""
    bad = PREDICATE % own.data.golden_id
    before = own.last_seq()
    with httpx.Client(timeout=30) as http, ThreadPoolExecutor(5) as pool:
        jobs = [
            pool.submit(own.post, bad, client="linping-med", purpose="REF", http=http)
            if i % 5 < 2
            else pool.submit(ordinary, own, http)
            for i in range(50)
        ]
        responses = [j.result() for j in jobs]
    kinds = ["bad" if i % 5 < 2 else "ordinary" for i in range(50)]
    refused = [r for r, k in zip(responses, kinds, strict=True) if k == "ordinary" and r.status_code != 200]
    assert refused == []
    for r, k in zip(responses, kinds, strict=True):
        if k == "ordinary":
            assert r.json()["data"]["person"]["name"] == "钱国良"
        else:
            assert r.status_code == 403 and r.json()["errors"][0]["extensions"]["code"] == "POLICY_DENIED"
    new = own.entries(before)
    assert len(new) == 50
    assert sorted(e["request_id"] for e in new) == sorted(r.headers["x-request-id"] for r in responses)
    denied = [e for e in new if e["decision"] == "deny"]
    assert len(denied) == 20
    assert denied[0]["predicate_args"] == {"MedicalRecord.outOfPocket12mAtLeast": {"threshold": 1}}
    assert denied[0]["requested_denied"] == ["MedicalRecord.outOfPocket12mAtLeast"]


def test_unencodable_entry_is_written_with_a_reason_and_fails_no_one(own: Served) -> None:
    """Whatever a future bug puts into an entry, it is written (with a reason code) and alone."""
    import asyncio

    from graphql import Undefined

    log = own.app.state.hub.audit
    body = {
        "v": 2,
        "request_id": "r-bad",
        "client_id": "x",
        "department": "d",
        "officer": "o" * 500,
        "purpose": "CASE",
        "case_ref": "",
        "decision": "deny",
        "reasons": ["POLICY_DENIED"],
        "predicate_args": {"A.b": {"t": Undefined}},
        "when": date(2026, 1, 1),
    }
    good = dict(body, request_id="r-good", officer="o", predicate_args={}, when="2026-01-01")

    async def both() -> list[int]:
        return list(await asyncio.gather(log.append(body, []), log.append(good, [])))

    before = own.last_seq()
    asyncio.run(both())
    bad_entry, good_entry = own.entries(before)
    assert bad_entry["request_id"] == "r-bad" and bad_entry["officer"] == "" and bad_entry["predicate_args"] is None
    assert bad_entry["reasons"] == [
        "POLICY_DENIED",
        "AUDIT_VALUE_WITHHELD:officer",
        "AUDIT_VALUE_WITHHELD:predicate_args",
        "AUDIT_VALUE_WITHHELD:when",
    ]
    assert good_entry["officer"] == "o" and good_entry["reasons"] == ["POLICY_DENIED"]


def test_variable_defaults_count_towards_the_cost_limit(own: Served) -> None:
    ids = [make_id("330113", date(1960, 1, 1 + s // 500), s % 500 + 1) for s in range(1000)]
    fields = "name sex household { size members { name sex birthDate household { size members { name } } } }"
    by_default = f"query($ids: [String!]! = {json.dumps(ids)}) {{ people(idNumbers: $ids) {{ {fields} }} }}"
    sent = f"query($ids: [String!]!) {{ people(idNumbers: $ids) {{ {fields} }} }}"
    from graphql import parse

    doc = parse(sent)
    assert estimate_cost(doc, doc.definitions[0], {"ids": ids}) > 50_000  # type: ignore[arg-type]
    before = own.last_seq()
    r1 = own.post(sent, variables={"ids": ids})
    r2 = own.post(by_default)
    for r in (r1, r2):
        assert r.status_code == 400, r.text[:300]
        assert r.json()["errors"][0]["extensions"]["code"] == "MAX_COST_LIMIT"
    assert [e["reasons"] for e in own.entries(before)] == [["MAX_COST_LIMIT"], ["MAX_COST_LIMIT"]]


def test_a_default_of_the_wrong_type_is_refused_before_planning(own: Served) -> None:
    r = own.post('query($t: Int = "x") { person(idNumber: "1") { name } }')
    assert r.status_code == 400
    assert r.json()["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    r = own.post("query($t: Int!) { person(idNumber: $t) { name } }", variables={"t": "x"})
    assert r.status_code == 400
    assert r.json()["errors"][0]["extensions"]["code"] in {"GRAPHQL_VALIDATION_FAILED", "BAD_VARIABLES"}


# ------------------------------------------------------------------------------------------ property test
_header_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\x00\x0b\x0c"), max_size=120
)
_ids = st.sampled_from(["330113194903150011", "11010519491231002X", "330113", "", "x" * 18])
_fields = st.lists(
    st.sampled_from(
        [
            "name",
            "sex",
            "idNumberMasked",
            "civilAffairs { tier }",
            "medical { outOfPocket12mAtLeast(threshold: $t) }",
            "tax { annualWageIncome }",
            "household { size }",
        ]
    ),
    min_size=1,
    max_size=4,
    unique=True,
)


@st.composite
def documents(draw: st.DrawFn) -> tuple[str, dict[str, Any] | None]:
    kind = draw(st.sampled_from(["person", "people", "garbage"]))
    if kind == "garbage":
        return draw(st.text(max_size=200)), draw(st.none() | st.dictionaries(st.text(max_size=5), st.integers()))
    fields = " ".join(draw(_fields))
    variables: dict[str, Any] = {}
    defs = []
    t_default = draw(st.sampled_from(["", " = 1", " = 20000", ' = "x"', " = null"]))
    if "$t" in fields:
        defs.append(f"$t: Int{t_default}")
        if draw(st.booleans()):
            variables["t"] = draw(st.none() | st.integers(-(2**40), 2**40) | st.text(max_size=5))
    ident = draw(_ids)
    if kind == "person":
        if draw(st.booleans()):
            defs.append(f"$id: String{draw(st.sampled_from(['!', '', f' = {json.dumps(ident)}']))}")
            if draw(st.booleans()):
                variables["id"] = draw(_ids | st.integers())
            arg = "$id"
        else:
            arg = json.dumps(ident)
        body = f"person(idNumber: {arg}) {{ {fields} }}"
    else:
        many = draw(st.lists(_ids, max_size=5))
        defs.append(f"$ids: [String!]!{draw(st.sampled_from(['', f' = {json.dumps(many)}']))}")
        if draw(st.booleans()):
            variables["ids"] = many
        body = f"people(idNumbers: $ids) {{ {fields} }}"
    head = f"query({', '.join(defs)})" if defs else "query"
    return f"{head} {{ {body} }}", (variables if variables or draw(st.booleans()) else None)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    doc=documents(),
    client=st.sampled_from(["linping-ca", "linping-med", "hz-utilities", "officer", "xihu-ca"]),
    purpose=st.sampled_from(["(registered)", "(registered)", "CASE", "REF", "AUDIT"]) | _header_text,
    officer=st.sampled_from(["officer-wang", "王小明"]) | _header_text,
    case=st.none() | st.sampled_from(["CASE-1"]) | _header_text,
)
@example(  # the case, always among the examples
    doc=(PREDICATE % "330113194903150011", None), client="linping-med", purpose="REF", officer="o", case="C-1"
)
def test_every_request_leaves_exactly_one_entry(
    own: Served, doc: tuple[str, dict[str, Any] | None], client: str, purpose: str, officer: str, case: str | None
) -> None:
    query, variables = doc
    if purpose == "(registered)":  # mostly a purpose the client holds, so that requests reach the policy plan
        purpose = CLIENTS[client][2][-1]
    with httpx.Client(timeout=30) as http, ThreadPoolExecutor(3) as pool:
        odd = pool.submit(
            own.post,
            query,
            client=client,
            purpose=purpose,
            officer=officer.encode("utf-8"),
            case=case.encode("utf-8") if case else None,
            variables=variables,
            http=http,
        )
        plain = [pool.submit(ordinary, own, http) for _ in range(2)]
        try:
            r = odd.result()
        except httpx.LocalProtocolError:  # a header the HTTP client itself will not send: nothing reached the hub
            r = None
        for p in plain:
            ok = p.result()
            assert ok.status_code == 200 and ok.json()["data"]["person"]["name"] == "钱国良"
            assert entries_for(own, ok.headers["x-request-id"]) == 1
    if r is not None:
        assert r.status_code != 503 and r.status_code != 500, r.text
        assert entries_for(own, r.headers["x-request-id"]) == 1
