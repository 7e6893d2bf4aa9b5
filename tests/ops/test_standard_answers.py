"""Standard answers over HTTP: GraphQL over HTTP media types chosen by Accept (status and shape), the legacy
answers unchanged without a preference, and OAuth 2.0 Authorization Server Metadata (RFC 8414)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from hub.graphql_http import APPLICATION_JSON, GRAPHQL_RESPONSE_JSON, LEGACY, negotiate
from tests.conftest import Hub

GRJ = GRAPHQL_RESPONSE_JSON
ALLOWED = "query($id: String!) { person(idNumber: $id) { name } }"


async def post(hub: Hub, query: str, accept: str | None, *, client: str = "linping-ca", **kw: Any) -> httpx.Response:
    purpose = kw.pop("purpose", "CASE")
    headers = {"x-hub-purpose": purpose, "x-hub-officer": "officer-wang", "x-hub-case": "CASE-1"}
    if kw.pop("with_token", True):
        headers["authorization"] = f"Bearer {await hub.token(client)}"
    if "content" not in kw:
        kw["json"] = {"query": query, "variables": {"id": hub.data.golden_id}}
    request = hub.client.build_request("POST", "/graphql", headers=headers, **kw)
    if accept is None:
        del request.headers["accept"]  # httpx sends */* unless told otherwise
    else:
        request.headers["accept"] = accept
    return await hub.client.send(request)


def code(r: httpx.Response) -> str:
    return str(r.json()["errors"][0]["extensions"]["code"])


# (query, client, purpose) -> code; then the status per Accept: none, */*, application/json, graphql-response+json
CASES = {
    "parse": (("{", "linping-ca", "CASE"), "GRAPHQL_PARSE_FAILED", (400, 400, 200, 400)),
    "validation": (("{ nope }", "linping-ca", "CASE"), "GRAPHQL_VALIDATION_FAILED", (400, 400, 200, 400)),
    "policy": ((ALLOWED, "linping-med", "REF"), "POLICY_DENIED", (403, 403, 200, 403)),
    "purpose": ((ALLOWED, "linping-med", "CASE"), "PURPOSE_NOT_REGISTERED", (403, 403, 403, 403)),
}


@pytest.mark.parametrize("case", ["parse", "validation", "policy", "purpose"])
async def test_request_errors_by_accept(hub: Hub, case: str, audit_tail: Any) -> None:
    (query, client, purpose), expected_code, statuses = CASES[case]
    assert statuses is not None
    for accept, status in zip((None, "*/*", APPLICATION_JSON, GRJ), statuses, strict=True):
        r = await post(hub, query, accept, client=client, purpose=purpose)
        assert (r.status_code, code(r)) == (status, expected_code), (accept, r.text)
        if accept == GRJ:  # a request error has no data entry in graphql-response+json
            assert r.headers["content-type"] == f"{GRJ}; charset=utf-8"
            assert "data" not in r.json()
        else:
            assert r.headers["content-type"] == "application/json"
            assert r.json()["data"] is None
        assert audit_tail()[-1]["status"] == status  # the entry records the status sent
    if case == "policy":  # the denied list reaches an application/json client with its 200
        r = await post(hub, query, APPLICATION_JSON, client=client, purpose=purpose)
        assert r.status_code == 200
        assert r.json()["errors"][0]["extensions"]["denied"] == [
            {"coordinate": "Person.name", "reason": "no grant of Person.name to medical_security for purpose REF"}
        ]
        assert audit_tail()[-1]["decision"] == "deny"


async def test_refusals_before_a_well_formed_request_keep_their_status(hub: Hub) -> None:
    for accept in (None, APPLICATION_JSON, GRJ):
        r = await post(hub, ALLOWED, accept, with_token=False)
        assert (r.status_code, code(r)) == (401, "TOKEN_MISSING")
        assert r.headers["www-authenticate"] == 'Bearer error="invalid_token"'
        r = await post(hub, ALLOWED, accept, content=b"{not json")
        assert (r.status_code, code(r)) == (400, "BAD_JSON")
        assert ("data" in r.json()) is (accept != GRJ)


async def test_an_allowed_answer_is_200_in_every_media_type(hub: Hub) -> None:
    for accept, ctype in ((None, "application/json"), (APPLICATION_JSON, "application/json")):
        r = await post(hub, ALLOWED, accept)
        assert (r.status_code, r.headers["content-type"]) == (200, ctype)
        assert r.json()["data"]["person"]["name"]
    r = await post(hub, ALLOWED, GRJ)
    assert (r.status_code, r.headers["content-type"]) == (200, f"{GRJ}; charset=utf-8")
    assert r.json()["data"]["person"]["name"]


def test_negotiate() -> None:
    assert negotiate(None) == negotiate("") == negotiate("*/*") == negotiate("text/html") == LEGACY
    assert negotiate("application/json") == APPLICATION_JSON
    assert negotiate(f"{GRJ}, application/json") == GRJ
    assert negotiate(f"application/json;q=0.5, {GRJ}") == GRJ
    assert negotiate(f"{GRJ};q=0.1, application/json") == APPLICATION_JSON
    assert negotiate(f"{GRJ};q=0, */*") == LEGACY
    assert negotiate("Application/JSON; charset=utf-8") == APPLICATION_JSON


async def test_authorization_server_metadata(hub: Hub) -> None:
    r = await hub.client.get("/.well-known/oauth-authorization-server")
    assert r.status_code == 200
    meta = r.json()
    issuer = hub.settings.issuer
    assert meta == {
        "issuer": issuer,
        "token_endpoint": f"{issuer}/oauth/token",
        "jwks_uri": f"{issuer}/.well-known/jwks.json",
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "response_types_supported": [],
        "scopes_supported": ["AUDIT", "CASE", "MON", "REF", "STAT", "VER"],
    }
    # what it names works: a token from the token endpoint, verified with a key from the JWKS
    token = await hub.client.post(
        urlsplit(meta["token_endpoint"]).path,
        data={"grant_type": "client_credentials", "scope": "CASE"},
        auth=("linping-ca", hub.secrets["linping-ca"]),
    )
    assert token.status_code == 200 and token.json()["scope"] == "CASE"
    jwks = (await hub.client.get(urlsplit(meta["jwks_uri"]).path)).json()
    import jwt

    kid = jwt.get_unverified_header(token.json()["access_token"])["kid"]
    assert kid in {k["kid"] for k in jwks["keys"]}
