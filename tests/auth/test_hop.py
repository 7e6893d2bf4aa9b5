"""Hop tokens signed and checked with ``cryptography`` directly (hub/auth/hop.py): the same JWTs joserfc makes and
accepts, and every check of the joserfc-based verifier kept, each with its message."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet

from hub.auth.hop import HopIdentity, HopSigner, HopVerifier, request_digest
from hub.auth.keys import KeyRing
from hub.errors import AuthenticationError

ISS = "https://hub.local"
BODY: dict[str, Any] = {"query": "query($r: [_Any!]!) { _entities(representations: $r) { __typename } }"}
HOP = HopIdentity("a" * 32, "linping-ca", "civil_affairs", "officer-1", "330113", "CASE", "CASE-1")


@pytest.fixture
def ring(tmp_path: Path) -> KeyRing:
    r = KeyRing(tmp_path)
    r.ensure()
    return r


def verifier(ring: KeyRing, audience: str = "education") -> HopVerifier:
    return HopVerifier(ISS, audience, KeySet.import_key_set(ring.jwks()))


def check(v: HopVerifier, token: str, body: dict[str, Any] = BODY) -> dict[str, Any]:
    return asyncio.run(v.verify(token, body))


def refused(v: HopVerifier, token: str, body: dict[str, Any] = BODY) -> str:
    with pytest.raises(AuthenticationError) as err:
        check(v, token, body)
    return err.value.message


def joserfc_token(ring: KeyRing, header: dict[str, Any] | None = None, **changes: Any) -> str:
    key = ring.active()
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISS,
        "aud": "education",
        "sub": "hub",
        "client_id": "hub",
        "iat": now,
        "nbf": now,
        "exp": now + 15,
        "jti": "j" * 22,
        "req_sha256": request_digest(BODY),
    }
    claims.update(changes)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(
        header or {"alg": "ES256", "typ": "at+jwt", "kid": key.kid}, claims, key.key, algorithms=["ES256"]
    )


def test_signed_tokens_are_joserfc_jwts_and_joserfc_tokens_are_accepted(ring: KeyRing) -> None:
    token = HopSigner(ring, ISS).token("education", HOP, BODY)
    decoded = jwt.decode(token, KeySet.import_key_set(ring.jwks()), algorithms=["ES256"])
    assert decoded.header == {"typ": "at+jwt", "alg": "ES256", "kid": ring.active().kid}
    claims = check(verifier(ring), token)
    assert claims == decoded.claims
    assert (claims["act"]["officer"], claims["case"], claims["req_sha256"]) == (
        "officer-1",
        "CASE-1",
        request_digest(BODY),
    )
    assert check(verifier(ring), joserfc_token(ring))["jti"] == "j" * 22


def test_every_check_is_kept(ring: KeyRing) -> None:
    v = verifier(ring)
    signer = HopSigner(ring, ISS)
    token = signer.token("education", HOP, BODY)
    head, payload, sig = token.split(".")
    flipped = sig[:-2] + ("A" if sig[-2] != "A" else "B") + sig[-1]
    assert refused(v, f"{head}.{payload}.{flipped}") == "the token is not valid here (BadSignatureError)"
    other = signer.token("education", HOP, {"query": "{ x }"})
    spliced = f"{head}.{other.split('.')[1]}.{sig}"  # a claims part signed for another token
    assert refused(v, spliced) == "the token is not valid here (BadSignatureError)"
    assert refused(v, "not.a-jwt") == "the bearer token is not a well-formed JWT"
    assert refused(v, "!!!.e30.e30") == "the bearer token is not a well-formed JWT"
    assert refused(v, f"{head}.{payload}.{sig[:40]}") == "the token is not valid here (DecodeError)"
    assert refused(v, signer.token("tax", HOP, BODY)) == "the token is not valid here (InvalidClaimError)"
    assert refused(v, joserfc_token(ring, iss="https://evil")) == "the token is not valid here (InvalidClaimError)"
    assert refused(v, joserfc_token(ring, exp=int(time.time()) - 60, iat=int(time.time()) - 70, nbf=None)) == (
        "the token is not valid here (ExpiredTokenError)"
    )
    assert refused(v, joserfc_token(ring, exp=None)) == "the token is not valid here (MissingClaimError)"
    assert (
        refused(v, joserfc_token(ring, nbf=int(time.time()) + 60)) == "the token is not valid here (InvalidTokenError)"
    )
    assert refused(v, joserfc_token(ring, exp=int(time.time()) + 600)) == "the token lives too long for a hop token"
    assert refused(v, joserfc_token(ring, client_id="linping-ca")) == "only the hub's own hop tokens are accepted"
    wrong_typ = joserfc_token(ring, header={"alg": "ES256", "typ": "JWT", "kid": ring.active().kid})
    assert refused(v, wrong_typ) == "the token must be an ES256 at+jwt access token"
    unknown = ECKey.generate_key("P-256", parameters={"kid": "someone-else"})
    forged = jwt.encode({"alg": "ES256", "typ": "at+jwt", "kid": "someone-else"}, {"iss": ISS}, unknown)
    assert refused(v, forged) == "the token was signed by a key the hub does not publish"
    # bound to its body, used once
    assert refused(v, token, {"query": "{ other }"}) == "the token was minted for another request"
    check(v, token)
    assert refused(v, token) == "the token was already used (replay)"
