"""Department identities: the OAuth2 token endpoint, standard clients, and the token rejection suite."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import jwt as pyjwt
import pytest
from authlib.integrations.httpx_client import AsyncOAuth2Client
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc import jwt
from joserfc.jwk import ECKey

from hub.auth.keys import KeyRing
from tests.conftest import Hub

QUERY = "{ catalog { coordinate } }"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(hub: Hub, **over: Any) -> dict[str, Any]:
    now = int(time.time())
    c: dict[str, Any] = {
        "iss": hub.settings.issuer,
        "aud": hub.settings.audience,
        "sub": "linping-ca",
        "client_id": "linping-ca",
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "jti": f"t-{time.monotonic_ns()}",
        "department": "civil_affairs",
        "area": "330113",
        "purposes": ["CASE"],
        "scope": "CASE",
    }
    c.update(over)
    return {k: v for k, v in c.items() if v is not None}


def _sign(hub: Hub, claims: dict[str, Any], header: dict[str, Any] | None = None) -> str:
    ring: KeyRing = hub.app.state.hub.keys
    key = ring.active()
    h = {"alg": "ES256", "typ": "at+jwt", "kid": key.kid}
    if header is not None:
        h = {k: v for k, v in {**h, **header}.items() if v is not None}
    return jwt.encode(h, claims, key.key, algorithms=["ES256"])


async def _rejected(hub: Hub, token: str, code: str, audit_tail: Any, status: int = 401) -> None:
    r = await hub.query(QUERY, token=token)
    assert r.status_code == status, r.text
    err = r.json()["errors"][0]
    assert err["extensions"]["code"] == code, err
    assert r.json()["data"] is None
    entries = audit_tail()
    assert entries[-1]["decision"] == "deny" and entries[-1]["reasons"] == [code]
    assert entries[-1]["request_id"] == err["extensions"]["requestId"]


async def test_standard_oauth2_client_obtains_token_and_queries(hub: Hub) -> None:
    async with AsyncOAuth2Client(
        client_id="linping-ca",
        client_secret=hub.secrets["linping-ca"],
        transport=hub.client._transport,
        base_url="http://hub.test",
        token_endpoint_auth_method="client_secret_post",
    ) as oauth:
        token = await oauth.fetch_token("http://hub.test/oauth/token", grant_type="client_credentials")
        assert token["token_type"] == "Bearer" and token["expires_in"] == 300
        r = await oauth.post(
            "/graphql", json={"query": QUERY}, headers={"x-hub-purpose": "MON", "x-hub-officer": "officer-li"}
        )
    assert r.status_code == 200, r.text
    assert len(r.json()["data"]["catalog"]) >= 60


async def test_second_library_verifies_tokens_against_jwks(hub: Hub) -> None:
    token = await hub.token("linping-ca")
    jwks = (await hub.client.get("/.well-known/jwks.json")).json()
    header = pyjwt.get_unverified_header(token)
    assert header["typ"] == "at+jwt" and header["alg"] == "ES256"
    key = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
    assert "d" not in key  # public only
    claims = pyjwt.decode(token, pyjwt.PyJWK(key).key, algorithms=["ES256"], audience="hub", issuer=hub.settings.issuer)
    assert claims["client_id"] == "linping-ca" and claims["department"] == "civil_affairs"
    assert claims["area"] == "330113" and claims["purposes"] == ["CASE", "MON", "STAT", "VER"]
    assert claims["exp"] - claims["iat"] == 300 and len(claims["jti"]) >= 16


async def test_token_endpoint_errors(hub: Hub) -> None:
    r = await hub.client.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=("linping-ca", "nope"))
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    r = await hub.client.post("/oauth/token", data={"grant_type": "password"}, auth=("linping-ca", "x"))
    assert r.status_code == 400 and r.json()["error"] == "unsupported_grant_type"
    r = await hub.client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "scope": "AUDIT"},
        auth=("linping-ca", hub.secrets["linping-ca"]),
    )
    assert r.status_code == 400 and r.json()["error"] == "invalid_scope"
    r = await hub.client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "scope": "MON"},
        auth=("linping-ca", hub.secrets["linping-ca"]),
    )
    assert r.status_code == 200 and r.json()["scope"] == "MON"


async def test_no_token(hub: Hub, audit_tail: Any) -> None:
    r = await hub.client.post("/graphql", json={"query": QUERY}, headers={"x-hub-purpose": "MON"})
    assert r.status_code == 401 and r.json()["errors"][0]["extensions"]["code"] == "TOKEN_MISSING"
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert audit_tail()[-1]["reasons"] == ["TOKEN_MISSING"]


async def test_malformed(hub: Hub, audit_tail: Any) -> None:
    await _rejected(hub, "not.a.jwt", "TOKEN_MALFORMED", audit_tail)


async def test_alg_none(hub: Hub, audit_tail: Any) -> None:
    ring: KeyRing = hub.app.state.hub.keys
    header = _b64(json.dumps({"alg": "none", "typ": "at+jwt", "kid": ring.active().kid}).encode())
    token = f"{header}.{_b64(json.dumps(_claims(hub)).encode())}."
    await _rejected(hub, token, "TOKEN_ALG_NOT_ALLOWED", audit_tail)


async def test_hs256_signed_with_public_key(hub: Hub, audit_tail: Any) -> None:
    import hashlib
    import hmac

    ring: KeyRing = hub.app.state.hub.keys
    public_pem = ring.active().key.as_pem(private=False)
    header = _b64(json.dumps({"alg": "HS256", "typ": "at+jwt", "kid": ring.active().kid}).encode())
    payload = _b64(json.dumps(_claims(hub)).encode())
    sig = _b64(hmac.new(public_pem, f"{header}.{payload}".encode(), hashlib.sha256).digest())
    await _rejected(hub, f"{header}.{payload}.{sig}", "TOKEN_ALG_NOT_ALLOWED", audit_tail)


async def test_wrong_signature(hub: Hub, audit_tail: Any) -> None:
    ring: KeyRing = hub.app.state.hub.keys
    stranger = ECKey.import_key(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    token = jwt.encode(
        {"alg": "ES256", "typ": "at+jwt", "kid": ring.active().kid}, _claims(hub), stranger, algorithms=["ES256"]
    )
    await _rejected(hub, token, "TOKEN_BAD_SIGNATURE", audit_tail)


async def test_unknown_kid(hub: Hub, audit_tail: Any) -> None:
    await _rejected(hub, _sign(hub, _claims(hub), {"kid": "no-such-key"}), "TOKEN_UNKNOWN_KEY", audit_tail)


@pytest.mark.parametrize(
    ("over", "code"),
    [
        ({"iss": "https://evil.example"}, "TOKEN_WRONG_ISSUER"),
        ({"aud": "another-service"}, "TOKEN_WRONG_AUDIENCE"),
        ({"exp": int(time.time()) - 120, "iat": int(time.time()) - 500}, "TOKEN_EXPIRED"),
        ({"nbf": int(time.time()) + 600}, "TOKEN_NOT_YET_VALID"),
        ({"jti": None}, "TOKEN_MISSING_CLAIM"),
    ],
    ids=["wrong-iss", "wrong-aud", "expired", "nbf-future", "no-jti"],
)
async def test_claim_rejections(hub: Hub, audit_tail: Any, over: dict[str, Any], code: str) -> None:
    await _rejected(hub, _sign(hub, _claims(hub, **over)), code, audit_tail)


@pytest.mark.parametrize("typ", [None, "JWT"], ids=["missing-typ", "typ-JWT"])
async def test_wrong_typ(hub: Hub, audit_tail: Any, typ: str | None) -> None:
    await _rejected(hub, _sign(hub, _claims(hub), {"typ": typ}), "TOKEN_WRONG_TYPE", audit_tail)


async def test_disabled_client(hub: Hub, audit_tail: Any) -> None:
    store = hub.app.state.hub.clients
    _, secret = store.add("temp-client", "civil_affairs", "330113", ["CASE"])
    hub.secrets["temp-client"] = secret
    token = await hub.token("temp-client")
    r = await hub.query(QUERY, token=token)
    assert r.status_code == 200
    store.disable("temp-client")
    await _rejected(hub, token, "CLIENT_DISABLED", audit_tail)
    r = await hub.client.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=("temp-client", secret))
    assert r.status_code == 401 and r.json()["error_description"] == "client is disabled"


async def test_purpose_not_registered(hub: Hub, audit_tail: Any) -> None:
    r = await hub.query(QUERY, client="linping-med", purpose="VER")
    assert r.status_code == 403
    assert r.json()["errors"][0]["extensions"]["code"] == "PURPOSE_NOT_REGISTERED"
    assert audit_tail()[-1]["reasons"] == ["PURPOSE_NOT_REGISTERED"]


async def test_missing_case_reference(hub: Hub, audit_tail: Any) -> None:
    r = await hub.query(QUERY, purpose="VER", case=None)
    assert r.status_code == 403
    err = r.json()["errors"][0]
    assert err["extensions"]["code"] == "CASE_REQUIRED"
    assert err["message"] == "purpose VER requires a case reference (X-Hub-Case)"
    entry = audit_tail()[-1]
    assert entry["reasons"] == ["CASE_REQUIRED"] and entry["client_id"] == "linping-ca"


async def test_missing_officer_and_unknown_purpose(hub: Hub) -> None:
    r = await hub.query(QUERY, officer="")
    assert r.json()["errors"][0]["extensions"]["code"] == "OFFICER_REQUIRED"
    r = await hub.query(QUERY, purpose="FUN")
    assert r.status_code == 400
    assert r.json()["errors"][0]["message"].startswith(
        "unknown purpose 'FUN' (known: AUDIT, CASE, MON, REF, STAT, VER)"
    )


async def test_key_rotation_keeps_old_tokens_until_expiry(hub: Hub) -> None:
    ring: KeyRing = hub.app.state.hub.keys
    old_token = await hub.token("linping-ca", scope="CASE")
    old_kid = ring.active().kid
    new = ring.rotate()
    try:
        assert new.kid != old_kid
        kids = {k["kid"] for k in (await hub.client.get("/.well-known/jwks.json")).json()["keys"]}
        assert {old_kid, new.kid} <= kids
        r = await hub.query(QUERY, token=old_token)
        assert r.status_code == 200
        # nothing is pruned while tokens signed by the old key may still be valid
        assert ring.prune(hub.settings.token_ttl) == []
        assert ring.prune(hub.settings.token_ttl, now=time.time() + hub.settings.token_ttl + 120) == [old_kid]
        r = await hub.query(QUERY, token=old_token)
        assert r.status_code == 401 and r.json()["errors"][0]["extensions"]["code"] == "TOKEN_UNKNOWN_KEY"
    finally:
        hub.tokens.clear()
