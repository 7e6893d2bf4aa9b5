"""``SubgraphSource`` against real demo subgraph processes: exact values, batching, hop token, failures, schema."""

from __future__ import annotations

import logging
import sqlite3
import time
from datetime import date
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from sqlalchemy import select

from hub.app import create_app
from hub.auth.hop import HopIdentity, HopSigner, hop_scope
from hub.departments import assistance, enrolment, residents
from hub.errors import ConfigError, UpstreamUnavailable
from hub.localpg import free_port
from hub.sources.sql import SqlSource
from hub.sources.subgraph import SubgraphSource, schema_problems
from tests.conftest import without_receipt
from tests.live import FED_CLIENT, Fed, FedHub, running

EDU_FIELDS = "stage school aidReceived isFullTimeStudent droppedOut"


def _ids(fed: Fed, n: int) -> list[str]:
    src = SqlSource("public_security", f"sqlite:///{fed.root / 'departments' / 'public_security.sqlite'}")
    try:
        with src.engine.connect() as conn:
            return [r[0] for r in conn.execute(select(residents.c.id_number).order_by(residents.c.id_number).limit(n))]
    finally:
        src.close()


def _hop() -> HopIdentity:
    return HopIdentity("req-test", FED_CLIENT, "civil_affairs", "officer-li", "3301", "CASE", "CASE-FED-1")


async def _stats(fed: Fed) -> dict[str, Any]:
    async with httpx.AsyncClient() as c:
        r = await c.get(fed.procs["edu"].wait_ready() + "/_last_hop")
    assert r.status_code == 200
    stats: dict[str, Any] = r.json()
    return stats


async def test_education_values_equal_the_sql_source(fed: Fed, sub_hub: FedHub, sql_hub: FedHub) -> None:
    assert isinstance(sub_hub.source("education"), SubgraphSource)
    assert not isinstance(sql_hub.source("education"), SubgraphSource)
    ids = _ids(fed, 400)
    q = f"query($ids: [String!]!) {{ people(idNumbers: $ids) {{ idNumber education {{ {EDU_FIELDS} }} }} }}"
    via_subgraph = await sub_hub.query(q, variables={"ids": ids})
    via_sql = await sql_hub.query(q, variables={"ids": ids})
    assert via_subgraph.status_code == 200 and "errors" not in via_subgraph.json(), via_subgraph.text
    assert without_receipt(via_subgraph.json()) == without_receipt(via_sql.json())
    people = via_subgraph.json()["data"]["people"]
    assert sum(p["education"]["stage"] is not None for p in people) > 20  # the sample does include pupils
    assert any(p["education"]["isFullTimeStudent"] for p in people)


async def test_rows_and_predicates_match_sql_with_dates_and_decimals(fed: Fed, sub_hub: FedHub) -> None:
    """Row for row, type for type, through three subgraphs: civil affairs (dates, nullable dates, decimals),
    education, and household registration (two entities: residents by ID number and by household)."""
    ids = _ids(fed, 2000)
    with sqlite3.connect(fed.root / "departments" / "public_security.sqlite") as conn:
        households = [r[0] for r in conn.execute("SELECT household_id FROM households ORDER BY household_id")]
    households += ["H000000000000"]  # unknown
    signer = HopSigner(sub_hub.app.state.hub.keys, sub_hub.app.state.hub.settings.issuer)
    in_linping = residents.c.area_code.startswith("330113", autoescape=True)
    cases = [
        ("civil_affairs", assistance, "id_number", ids, assistance.c.monthly_amount >= 1000),
        ("civil_affairs", assistance, "id_number", ids, assistance.c.end_date.is_(None)),
        ("education", enrolment, "id_number", ids, enrolment.c.enrolled.is_(True)),
        ("public_security", residents, "household_id", households, in_linping),
        ("public_security", residents, "id_number", ids, residents.c.dob < date(1960, 1, 1)),
    ]
    for code, table, key, keys, condition in cases:
        sql = SqlSource(code, f"sqlite:///{fed.root / 'departments' / f'{code}.sqlite'}")
        sub = SubgraphSource(code, fed.url(code), signer=signer)
        try:
            assert sub.check_schema()
            with hop_scope(_hop()):  # one request each: each call posts
                got = await sub.rows_by(table, key, keys)
            with hop_scope(_hop()):
                hits = await sub.predicate(table, key, keys, condition)
            with hop_scope(_hop()) as hop:
                scoped = await sub.rows_by(table, key, keys, condition)
                # later in the same request, what was fetched is reused: no further POST, same answers
                assert await sub.predicate(table, key, keys, condition) == hits
                assert await sub.rows_by(table, key, keys[:10]) == got[:10]
                assert hop is not None and sub._seen[hop]
            want = await sql.rows_by(table, key, keys)
            assert sum(map(len, want)) > 20
            assert [[tuple(r) for r in rs] for rs in got] == [[tuple(r) for r in rs] for rs in want]
            assert [[type(v) for v in r] for rs in got for r in rs] == [[type(v) for v in r] for rs in want for r in rs]
            assert all(getattr(r, key) == k for k, rs in zip(keys, got, strict=True) for r in rs)
            assert hits == await sql.predicate(table, key, keys, condition)
            assert 0 < sum(hits) < len(keys)
            sql_scoped = await sql.rows_by(table, key, keys, condition)
            assert [[tuple(r) for r in rs] for rs in scoped] == [[tuple(r) for r in rs] for rs in sql_scoped]
            # the schema check, one POST per call; the predicate is answered by the department (yes/no), so the
            # rows fetched for the row scope cannot be reused for it: one more POST
            assert sub.statements == 1 + 4
        finally:
            sql.close()
            sub.close()


async def test_one_request_per_level_for_a_thousand_residents(fed: Fed, sub_hub: FedHub) -> None:
    ids = _ids(fed, 1000)
    source = sub_hub.source("education")
    before, stats0 = source.statements, await _stats(fed)
    q = "query($ids: [String!]!) { people(idNumbers: $ids) { education { stage isFullTimeStudent droppedOut } } }"
    r = await sub_hub.query(q, variables={"ids": ids})
    assert r.status_code == 200 and "errors" not in r.json(), r.text[:500]
    stats1 = await _stats(fed)
    assert source.statements - before == 1  # one level: rows and two predicates in one POST
    assert stats1["entity_requests"] - stats0["entity_requests"] == 1
    assert stats1["representations"] - stats0["representations"] == 1000

    before = source.statements
    q2 = (
        "query($ids: [String!]!) { people(idNumbers: $ids) { education { droppedOut } "
        "household { members { education { isFullTimeStudent } } } } }"
    )
    r = await sub_hub.query(q2, variables={"ids": ids[:300]})
    assert r.status_code == 200 and "errors" not in r.json(), r.text[:500]
    assert source.statements - before == 2  # two levels (the people, then their households' members)
    print(f"\nsubgraph HTTP requests: 1,000 residents x 3 education fields -> 1; two levels -> {2}")


async def test_hop_token_names_who_is_asking(fed: Fed, sub_hub: FedHub) -> None:
    some = _ids(fed, 3)
    r = await sub_hub.query(
        f'{{ person(idNumber: "{some[0]}") {{ education {{ isFullTimeStudent }} }} }}',
        officer="officer-zhao",
        case="CASE-2026-0042",
    )
    assert r.status_code == 200 and "errors" not in r.json(), r.text
    hop = (await _stats(fed))["last_hop"]
    assert hop["act"] == {
        "client_id": FED_CLIENT,
        "department": "civil_affairs",
        "officer": "officer-zhao",
        "area": "3301",
    }
    assert (hop["purpose"], hop["case"], hop["request_id"]) == ("CASE", "CASE-2026-0042", r.headers["x-request-id"])
    assert (hop["iss"], hop["aud"], hop["client_id"]) == ("https://hub.local", "education", "hub")
    assert hop["exp"] - hop["iat"] == 15 and len(hop["req_sha256"]) == 64

    # The department's own checks: no token, a token for another department, a token naming no actor.
    signer = HopSigner(sub_hub.app.state.hub.keys, "https://hub.local")
    query = {"query": '{ _entities(representations: [{__typename: "Person", idNumber: "x"}]) { __typename } }'}
    async with httpx.AsyncClient() as c:
        url = fed.url("edu")
        assert (await c.post(url, json=query)).json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        other = signer.token("tax", _hop(), query)
        r = await c.post(url, json=query, headers={"authorization": f"Bearer {other}"})
        assert r.status_code == 401
        anonymous = signer.token("education", None, query)
        r = await c.post(url, json=query, headers={"authorization": f"Bearer {anonymous}"})
        assert r.status_code == 403 and r.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
        hidden = {"query": "{ ...F } fragment F on Query { e: _entities(representations: []) { __typename } }"}
        anonymous = signer.token("education", None, hidden)
        r = await c.post(url, json=hidden, headers={"authorization": f"Bearer {anonymous}"})
        assert r.status_code == 403
        # An officer's own access token (audience: the hub) is no hop token.
        client_token = sub_hub.tokens[FED_CLIENT]
        r = await c.post(url, json=query, headers={"authorization": f"Bearer {client_token}"})
        assert r.status_code == 401


async def test_a_traced_hub_has_a_client_span_per_subgraph_post_and_passes_its_trace_on(fed: Fed) -> None:
    exporter = InMemorySpanExporter()
    settings = fed.settings("traced", department_urls={"education": fed.url("edu")})
    async with running(settings, span_exporter=exporter) as hub:
        pid = _ids(fed, 1)[0]
        query = f'{{ person(idNumber: "{pid}") {{ education {{ isFullTimeStudent }} }} }}'
        assert "errors" not in (await hub.query(query, officer="officer-zhao", case="CASE-2026-0042")).json()
        exporter.clear()
        r = await hub.query(query, officer="officer-zhao", case="CASE-2026-0042")
        assert r.status_code == 200 and "errors" not in r.json(), r.text
        spans = list(exporter.get_finished_spans())
        [server] = [s for s in spans if s.kind == SpanKind.SERVER]
        [post] = [s for s in spans if s.kind == SpanKind.CLIENT and s.name == "POST"]
        port = int(fed.url("edu").split(":")[2].split("/")[0])
        assert dict(post.attributes or {}) == {
            "http.request.method": "POST",
            "server.address": "127.0.0.1",
            "server.port": port,
            "url.path": "/graphql",
            "hub.department": "education",
            "http.response.status_code": 200,
        }
        assert post.context.trace_id == server.context.trace_id and post.status.is_ok
        # the subgraph received the trace context of that span
        traceparent = (await _stats(fed))["last_traceparent"]
        assert traceparent.startswith(f"00-{post.context.trace_id:032x}-{post.context.span_id:016x}-")
        text = "\n".join(f"{k}={v}" for s in spans for k, v in (s.attributes or {}).items())
        assert pid not in text and "officer-zhao" not in text and "CASE-2026-0042" not in text


async def test_hop_token_is_bound_to_its_request_and_used_once(fed: Fed, sub_hub: FedHub) -> None:
    """A hop token minted for one POST cannot be replayed, nor used for another resident or other columns."""
    a, b = _ids(fed, 2)
    signer = HopSigner(sub_hub.app.state.hub.keys, "https://hub.local")

    def body(id_number: str, columns: str = "idNumber stage") -> dict[str, Any]:
        q = "query($r: [_Any!]!) { _entities(representations: $r) { ... on Person { enrolment { %s } } } }"
        return {"query": q % columns, "variables": {"r": [{"__typename": "Person", "idNumber": id_number}]}}

    async with httpx.AsyncClient() as c:
        url = fed.url("edu")
        token = signer.token("education", _hop(), body(a))
        headers = {"authorization": f"Bearer {token}"}
        first = await c.post(url, json=body(a), headers=headers)
        assert first.status_code == 200 and "errors" not in first.json(), first.text
        for replay, why in (
            (body(a), "the token was already used (replay)"),
            (body(b), "the token was minted for another request"),
            (body(a, "idNumber school aidReceived"), "the token was minted for another request"),
        ):
            r = await c.post(url, json=replay, headers=headers)
            assert r.status_code == 401 and r.json()["errors"][0]["message"] == why, r.text
        # a fresh token for the other resident is fine
        r = await c.post(
            url, json=body(b), headers={"authorization": f"Bearer {signer.token('education', _hop(), body(b))}"}
        )
        assert r.status_code == 200 and "errors" not in r.json()


async def test_killed_subgraph_fails_only_its_fields(fed: Fed) -> None:
    proc = fed.procs["edu-kill"]
    async with running(fed.settings("kill", department_urls={"education": fed.url("edu-kill")})) as hub:
        pid = _ids(fed, 1)[0]
        q = f'{{ person(idNumber: "{pid}") {{ name civilAffairs {{ tier }} education {{ isFullTimeStudent }} }} }}'
        ok = await hub.query(q)
        assert ok.status_code == 200 and "errors" not in ok.json(), ok.text
        proc.kill()
        r = await hub.query(q)
        body = r.json()
        assert body["data"]["person"]["name"] == ok.json()["data"]["person"]["name"]
        assert body["data"]["person"]["civilAffairs"] == ok.json()["data"]["person"]["civilAffairs"]
        assert [e["extensions"]["code"] for e in body["errors"]] == ["UPSTREAM_UNAVAILABLE"]
        assert body["errors"][0]["path"] == ["person", "education", "isFullTimeStudent"]
        entry = hub.audit(r.headers["x-request-id"])
        assert entry["upstream_failures"] == ["education"]
        assert hub.audit(ok.headers["x-request-id"])["upstream_failures"] == []
    # The department kept its own log of who asked for what.
    logged = [x for x in proc.lines() if x.get("event") == "entities"]
    assert logged and logged[-1]["request_id"] == ok.headers["x-request-id"]
    assert (logged[-1]["department"], logged[-1]["officer"], logged[-1]["purpose"]) == (
        "civil_affairs",
        "officer-li",
        "CASE",
    )
    assert logged[-1]["fields"] == ["Person.enrolmentMatches"] and logged[-1]["residents"] == 1  # a yes/no


def test_schema_mismatch_refuses_to_start(fed: Fed) -> None:
    with pytest.raises(ConfigError) as err:
        create_app(fed.settings("nostage", department_urls={"education": fed.url("edu-nostage")}))
    assert "department education" in err.value.message
    assert "EnrolmentRow.stage was removed" in err.value.message


def test_schema_comparison_names_the_field() -> None:
    served = """
    extend type Person @key(fields: "idNumber") { idNumber: String! @external enrolment: [EnrolmentRow!]!
                                                  enrolmentMatches(where: String!): Boolean! }
    type EnrolmentRow { idNumber: String! enrolled: Boolean stage: Int! school: String! aidReceived: Boolean!
                        dropoutFlag: Boolean! extra: String }
    """
    problems = schema_problems("education", served)
    assert problems == [
        "EnrolmentRow.enrolled changed type from Boolean! to Boolean",
        "EnrolmentRow.stage changed type from String! to Int!",
    ]
    assert schema_problems("education", served.replace('@key(fields: "idNumber")', "")) == [
        'Person has no @key(fields: "idNumber")',
        "EnrolmentRow.enrolled changed type from Boolean! to Boolean",
        "EnrolmentRow.stage changed type from String! to Int!",
    ]
    # without the yes/no field, only a department whose predicates the hub evaluates (HUB_PREDICATES_IN_HUB)
    old = served.replace("enrolmentMatches(where: String!): Boolean!", "")
    assert "Person.enrolmentMatches was removed" in schema_problems("education", old)
    assert "Person.enrolmentMatches was removed" not in schema_problems("education", old, predicates=False)


ROWS = """
type EnrolmentRow { idNumber: String! enrolled: Boolean! stage: String! school: String! aidReceived: Boolean!
                    dropoutFlag: Boolean! }
"""
FIELDS = "{ idNumber: String! enrolment: [EnrolmentRow!]! enrolmentMatches(where: String!): Boolean! }"
FED2 = 'extend schema @link(url: "https://specs.apollo.dev/federation/v2.3", import: [%s])\n'
NO_KEY = ['Person has no @key(fields: "idNumber")']


@pytest.mark.parametrize(
    ("head", "person", "problems"),
    [
        # Federation 2: @key imported under its own name, renamed, or spelt through the namespace
        (FED2 % '"@key"', '@key(fields: "idNumber")', []),
        (FED2 % '{name: "@key", as: "@primaryKey"}', '@primaryKey(fields: "idNumber")', []),
        (FED2 % '"@shareable"', '@federation__key(fields: "idNumber")', []),
        (
            'extend schema @link(url: "https://specs.apollo.dev/federation/v2.0", as: "fed")\n',
            '@fed__key(fields: "idNumber")',
            [],
        ),
        # ... but a renamed @key is no longer @key, and one not imported is not federation's
        (FED2 % '{name: "@key", as: "@primaryKey"}', '@key(fields: "idNumber")', NO_KEY),
        (FED2 % '"@shareable"', '@key(fields: "idNumber")', NO_KEY),
        # refused: a key the hub cannot resolve through, a compound key
        (
            "",
            '@key(fields: "idNumber", resolvable: false)',
            ['Person @key(fields: "idNumber") is not resolvable (resolvable: false)'],
        ),
        ("", '@key(fields: "idNumber school")', NO_KEY),
    ],
)
def test_key_directive_through_link(head: str, person: str, problems: list[str]) -> None:
    assert schema_problems("education", f"{head}type Person {person} {FIELDS}{ROWS}") == problems


def test_person_without_its_key_field_is_refused() -> None:
    sdl = f'type Person @key(fields: "idNumber") {FIELDS.replace("idNumber: String! ", "")}{ROWS}'
    assert schema_problems("education", sdl) == ["Person.idNumber is missing (the key field, a String)"]


async def test_unreachable_subgraph_starts_with_a_warning(fed: Fed, caplog: pytest.LogCaptureFixture) -> None:
    url = f"http://127.0.0.1:{free_port()}/graphql"
    with caplog.at_level(logging.WARNING, logger="hub.sources"):
        async with running(fed.settings("down", department_urls={"education": url}, source_timeout=2.0)) as hub:
            assert "unreachable at start-up" in caplog.text
            pid = _ids(fed, 1)[0]
            started = time.monotonic()
            r = await hub.query(f'{{ person(idNumber: "{pid}") {{ name education {{ isFullTimeStudent }} }} }}')
            assert time.monotonic() - started < 2
            assert r.json()["data"]["person"]["name"]
            assert r.json()["errors"][0]["extensions"]["code"] == "UPSTREAM_UNAVAILABLE"
            source = hub.source("education")
            with pytest.raises(UpstreamUnavailable, match="aggregates"):
                await source.aggregate(select(enrolment.c.stage))
