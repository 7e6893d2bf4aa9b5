"""Hostile queries: every limit has a stable code, refuses before execution, and is audited."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.conftest import Hub


async def _code(hub: Hub, query: str, **kw: Any) -> tuple[int, str, str]:
    r = await hub.query(query, **kw)
    err = r.json()["errors"][0]
    assert r.json()["data"] is None
    return r.status_code, err["extensions"]["code"], err["message"]


async def post_raw(hub: Hub, body: bytes) -> httpx.Response:
    """POST raw bytes with valid credentials, to test what happens before GraphQL parsing."""
    token = await hub.token("linping-ca")
    headers = {
        "authorization": f"Bearer {token}",
        "content-type": "application/json",
        "x-hub-purpose": "CASE",
        "x-hub-case": "C",
        "x-hub-officer": "o",
    }
    return await hub.client.post("/graphql", content=body, headers=headers)


async def test_body_too_large_refused_before_parsing(hub: Hub, audit_tail: Any) -> None:
    body = b'{"query": "' + b" " * 1_100_000 + b'{ catalog { coordinate } }"}'
    r = await post_raw(hub, body)
    assert r.status_code == 413
    assert r.json()["errors"][0]["extensions"]["code"] == "BODY_TOO_LARGE"
    assert audit_tail()[-1]["reasons"] == ["BODY_TOO_LARGE"]


async def test_alias_bomb_rejected_by_the_token_cap(hub: Hub) -> None:
    bomb = "{ " + " ".join(f"a{i}: catalog {{ coordinate }}" for i in range(10_000)) + " }"
    assert len(bomb) > 200_000
    started = time.perf_counter()
    status, code, message = await _code(hub, bomb)
    elapsed = time.perf_counter() - started
    assert (status, code) == (400, "MAX_TOKENS_LIMIT")
    assert message == "the document has more than 2000 tokens"
    print(f"\n10,000-alias document ({len(bomb):,} bytes) rejected in {elapsed * 1000:.1f} ms over HTTP")


@pytest.mark.parametrize(
    ("query", "code", "message"),
    [
        (
            "{ catalog { " + " ".join(f"a{i}: coordinate" for i in range(31)) + " } }",
            "MAX_ALIASES_LIMIT",
            "the query uses 31 aliases; the limit is 30",
        ),
        (
            '{ person(idNumber: "11010519491231002X") { household { members { household { members { household {'
            " members { household { members { name } } } } } } } } } }",
            "MAX_DEPTH_LIMIT",
            "the query is 10 levels deep; the limit is 8",
        ),
        (
            "{ " + " ".join(f"c{i}: catalog {{ coordinate }}" for i in range(11)) + " }",
            "MAX_ROOT_FIELDS_LIMIT",
            "the operation has 11 root fields; the limit is 10",
        ),
        (
            "{ catalog { coordinate " + " ".join("@include(if: true)" for _ in range(51)) + " } }",
            "MAX_DIRECTIVES_LIMIT",
            "the query uses 51 directives; the limit is 50",
        ),
    ],
    ids=["aliases", "depth", "root-fields", "directives"],
)
async def test_structural_limits(hub: Hub, query: str, code: str, message: str) -> None:
    assert await _code(hub, query) == (400, code, message)


async def test_cost_limit_counts_list_arguments(hub: Hub) -> None:
    ids = ["11010519491231002X"] * 1000
    fields = " ".join(["name sex birthDate areaCode hukouAddress relationToHead status idNumber"] * 1)
    deep = f"household {{ members {{ {fields} household {{ size members {{ name }} }} }} }}"
    q = "query($ids: [String!]!) { people(idNumbers: $ids) { " + fields + " " + deep + " } }"
    status, code, message = await _code(hub, q, variables={"ids": ids})
    assert (status, code) == (400, "MAX_COST_LIMIT")
    assert message.startswith("the query's estimated cost is ") and message.endswith("the limit is 50000")


async def test_batched_operations_refused(hub: Hub) -> None:
    token = await hub.token("linping-ca")
    r = await hub.client.post(
        "/graphql",
        json=[{"query": "{ catalog { coordinate } }"}] * 2,
        headers={"authorization": f"Bearer {token}", "x-hub-purpose": "CASE", "x-hub-case": "C", "x-hub-officer": "o"},
    )
    assert r.status_code == 400 and r.json()["errors"][0]["extensions"]["code"] == "BATCHING_REFUSED"


async def test_oversized_list_argument(hub: Hub) -> None:
    q = "query($ids: [String!]!) { people(idNumbers: $ids) { name } }"
    r = await hub.query(q, variables={"ids": ["11010519491231002X"] * 1001})
    err = r.json()["errors"][0]
    assert err["extensions"]["code"] == "BATCH_TOO_LARGE"
    assert err["message"] == "idNumbers: at most 1000 per request, got 1001"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{not json", "BAD_JSON"),
        (b'"just a string"', "BAD_JSON"),
        (b'{"query": 5}', "BAD_REQUEST"),
        (b'{"query": "{ catalog { coordinate }"}', "GRAPHQL_PARSE_FAILED"),
        (b'{"query": "{ catalog { coordinate } }", "variables": [1]}', "BAD_REQUEST"),
    ],
    ids=["not-json", "not-object", "query-not-string", "syntax", "variables-not-object"],
)
async def test_malformed_requests(hub: Hub, body: bytes, code: str) -> None:
    r = await post_raw(hub, body)
    assert r.status_code == 400 and r.json()["errors"][0]["extensions"]["code"] == code


async def test_graphiql_off_in_production(hub: Hub) -> None:
    r = await hub.client.get("/graphql")
    assert r.status_code == 405 and r.json()["errors"][0]["extensions"]["code"] == "METHOD_NOT_ALLOWED"


async def test_unexpected_errors_are_masked(hub: Hub, monkeypatch: pytest.MonkeyPatch, audit_tail: Any) -> None:
    from hub.policy import forms

    def broken(name: str) -> str:
        raise RuntimeError("secret internal detail /var/lib/hub")

    monkeypatch.setattr(forms, "mask_name", broken)  # fault injection: a bug in a transform
    r = await hub.query(
        "query($id: String!) { person(idNumber: $id) { nameMasked } }",
        client="linping-med",
        purpose="REF",
        variables={"id": hub.data.golden_id},
    )
    err = r.json()["errors"][0]
    assert err["message"] == "Unexpected error." and err["extensions"]["code"] == "INTERNAL_ERROR"
    assert err["extensions"]["requestId"] == r.headers["x-request-id"]
    assert "secret" not in r.text and "Traceback" not in r.text
    assert audit_tail()[-1]["reasons"] == ["INTERNAL_ERROR"]


async def test_valid_documents_are_cached_but_limits_and_policy_still_apply(hub: Hub) -> None:
    """A query text that validated once skips parse and validation next time; nothing else is skipped."""
    docs = hub.app.state.hub.documents
    q = (
        "query($ids: [String!]!) { people(idNumbers: $ids) { name household { size "
        "members { name household { size members { name sex } } } } } }"
    )
    golden = hub.data.golden_id
    misses = docs.misses
    r1 = await hub.query(q, variables={"ids": [golden]})
    r2 = await hub.query(q, variables={"ids": [golden]})
    assert r1.json()["data"] == r2.json()["data"] and r1.json()["data"]["people"][0]["household"]["size"] >= 1
    assert docs.misses == misses + 1 and q in docs._docs
    hits = docs.hits
    # the cost limit depends on the variables: the cached document is refused with 1,000 IDs
    status, code, _ = await _code(hub, q, variables={"ids": [golden] * 1000})
    assert (status, code) == (400, "MAX_COST_LIMIT") and docs.hits == hits + 1
    # the policy plan depends on the caller: the same cached text is denied to a department without the grant
    r = await hub.query(q, client="hz-utilities", purpose="REF", variables={"ids": [golden]})
    assert r.json()["data"] is None and r.json()["errors"][0]["extensions"]["code"] == "POLICY_DENIED"
    # the row scope depends on the caller too: Xihu's civil affairs does not see a Linping resident
    r = await hub.query(q, client="xihu-ca", variables={"ids": [golden]})
    assert r.json()["data"] == {"people": [None]}
    # an invalid document is never cached: the second attempt is validated (and refused) again
    bad = "{ person(idNumber: 1) { nonsense } }"
    for _ in range(2):
        status, code, _ = await _code(hub, bad)
        assert (status, code) == (400, "GRAPHQL_VALIDATION_FAILED")
    assert bad not in docs._docs
