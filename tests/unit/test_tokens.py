"""Access-token verification at the level where it decides (``verify_token`` with a real key ring and real
signed JWTs, the clock passed in): every check in order, with its exact code.

Gap 2 of issue 19: ``test_every_required_claim`` (exp, iat, iss, aud, jti and the hub's client_id, department,
area, purposes) and ``test_purposes_as_a_string_is_refused``. Gap 5: ``test_leeway_*`` and
``test_iat_in_the_future_has_its_own_message``.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet

from hub.auth.keys import KeyRing
from hub.auth.tokens import ALLOWED_ALGS, HUB_CLAIMS, LEEWAY, TrustedIssuer, issue_token, verify_token
from hub.errors import AuthenticationError

ISS, AUD = "https://hub.example", "hub-api"
NOW = 1_800_000_000


@pytest.fixture(scope="module")
def ring(tmp_path_factory: pytest.TempPathFactory) -> KeyRing:
    r = KeyRing(Path(tmp_path_factory.mktemp("keys")))
    r.ensure()
    return r


def claims(**over: Any) -> dict[str, Any]:
    c: dict[str, Any] = {
        "iss": ISS,
        "aud": AUD,
        "sub": "linping-ca",
        "client_id": "linping-ca",
        "iat": NOW,
        "nbf": NOW,
        "exp": NOW + 300,
        "jti": "j-1",
        "department": "civil_affairs",
        "area": "330113",
        "purposes": ["CASE"],
        "roles": [],
    }
    c.update(over)
    return {k: v for k, v in c.items() if v is not None}


def sign(ring: KeyRing, body: dict[str, Any], **header: Any) -> str:
    key = ring.active()
    h = {"alg": "ES256", "typ": "at+jwt", "kid": key.kid, **header}
    return jwt.encode({k: v for k, v in h.items() if v is not None}, body, key.key, algorithms=["ES256"])


def verify(ring: KeyRing, token: str, now: float = NOW, **kw: Any) -> dict[str, Any]:
    return verify_token(ring, token, issuer=ISS, audience=AUD, now=now, **kw)


def fails(ring: KeyRing, token: str, now: float = NOW, **kw: Any) -> tuple[str, str]:
    with pytest.raises(AuthenticationError) as info:
        verify(ring, token, now, **kw)
    assert info.value.status == 401
    return info.value.code, info.value.message


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forged(header: dict[str, Any], body: dict[str, Any] | None = None) -> str:
    """A compact JWS with the given header and a signature that cannot verify."""
    return ".".join(
        [_b64(json.dumps(header).encode()), _b64(json.dumps(body or claims()).encode()), _b64(b"\x00" * 64)]
    )


def test_constants() -> None:
    assert ALLOWED_ALGS == ["ES256"]
    assert LEEWAY == 30
    assert HUB_CLAIMS == ("client_id", "department", "area", "purposes")


def test_issue_and_verify_round_trip(ring: KeyRing) -> None:
    token, issued = issue_token(
        ring,
        issuer=ISS,
        audience=AUD,
        ttl=300,
        client_id="linping-ca",
        department="civil_affairs",
        area="330113",
        purposes=["CASE", "VER"],
        roles=["authorization_clerk"],
        now=NOW + 0.9,
    )
    assert {k: v for k, v in issued.items() if k != "jti"} == {
        "iss": ISS,
        "aud": AUD,
        "sub": "linping-ca",
        "client_id": "linping-ca",
        "iat": NOW,
        "nbf": NOW,
        "exp": NOW + 300,
        "scope": "CASE VER",
        "department": "civil_affairs",
        "area": "330113",
        "purposes": ["CASE", "VER"],
        "roles": ["authorization_clerk"],
    }
    assert isinstance(issued["jti"], str) and len(issued["jti"]) == 22  # 16 random bytes, base64url
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header == {"alg": "ES256", "typ": "at+jwt", "kid": ring.active().kid}
    assert verify(ring, token) == issued
    # two tokens never share a jti
    _, again = issue_token(
        ring, issuer=ISS, audience=AUD, ttl=1, client_id="c", department="d", area="a", purposes=[], roles=[], now=NOW
    )
    assert again["jti"] != issued["jti"]


def test_issue_token_reads_the_clock_when_not_given(ring: KeyRing) -> None:
    import time

    before = int(time.time())
    _, issued = issue_token(
        ring, issuer=ISS, audience=AUD, ttl=60, client_id="c", department="d", area="a", purposes=["X"], roles=[]
    )
    assert before <= issued["iat"] <= int(time.time()) and issued["exp"] == issued["iat"] + 60
    token = sign(ring, claims(iat=issued["iat"], nbf=issued["iat"], exp=issued["iat"] + 60))
    assert verify_token(ring, token, issuer=ISS, audience=AUD)["client_id"] == "linping-ca"


def test_valid_token(ring: KeyRing) -> None:
    assert verify(ring, sign(ring, claims())) == claims()


@pytest.mark.parametrize("claim", ["exp", "iat", "iss", "aud", "jti", "client_id", "department", "area", "purposes"])
def test_every_required_claim(ring: KeyRing, claim: str) -> None:
    """Gap 2: a token lacking any required claim is refused with TOKEN_MISSING_CLAIM naming it."""
    code, message = fails(ring, sign(ring, claims(**{claim: None})))
    assert code == "TOKEN_MISSING_CLAIM"
    assert message == f"token lacks a required claim (Missing claim: '{claim}')"


def test_optional_claims(ring: KeyRing) -> None:
    for claim in ("nbf", "sub", "roles"):
        assert verify(ring, sign(ring, claims(**{claim: None}))) == claims(**{claim: None})


def test_purposes_as_a_string_is_refused(ring: KeyRing) -> None:
    """Gap 2: ``"purposes": "CASE"`` would make ``"C" in purposes`` true; only a list is accepted."""
    for bad in ("CASE", {"CASE": True}, 1):
        assert fails(ring, sign(ring, claims(purposes=bad))) == (
            "TOKEN_INVALID_CLAIM",
            "token claim purposes must be a list",
        )
    # an empty list is blank, refused by the claims registry itself
    assert fails(ring, sign(ring, claims(purposes=[]))) == (
        "TOKEN_INVALID_CLAIM",
        "token claim is invalid (Invalid claim: 'purposes')",
    )


def test_issuer_and_audience_must_be_exact(ring: KeyRing) -> None:
    assert fails(ring, sign(ring, claims(iss=ISS + "/"))) == ("TOKEN_WRONG_ISSUER", "token was issued by someone else")
    assert fails(ring, sign(ring, claims(aud="other"))) == (
        "TOKEN_WRONG_AUDIENCE",
        "token is meant for another audience",
    )


def test_leeway_on_expiry(ring: KeyRing) -> None:
    """Gap 5: a token is accepted until 29 s after exp (leeway 30) and refused from exp + 30."""
    token = sign(ring, claims(exp=NOW + 300))
    assert verify(ring, token, now=NOW + 300 + LEEWAY - 1)["exp"] == NOW + 300
    assert fails(ring, token, now=NOW + 300 + LEEWAY) == ("TOKEN_EXPIRED", "token has expired")
    assert fails(ring, token, now=NOW + 10_000) == ("TOKEN_EXPIRED", "token has expired")


def test_leeway_on_not_before(ring: KeyRing) -> None:
    """Gap 5: nbf may be up to 30 s ahead of the verifier's clock, not 31."""
    token = sign(ring, claims(iat=NOW - 100, nbf=NOW + LEEWAY))
    assert verify(ring, token)["nbf"] == NOW + LEEWAY
    token = sign(ring, claims(iat=NOW - 100, nbf=NOW + LEEWAY + 1))
    assert fails(ring, token) == ("TOKEN_NOT_YET_VALID", "token is not valid yet (nbf in the future)")


def test_iat_in_the_future_has_its_own_message(ring: KeyRing) -> None:
    """Gap 5: without nbf, a token issued more than the leeway ahead is refused as issued in the future."""
    ok = sign(ring, claims(nbf=None, iat=NOW + LEEWAY))
    assert verify(ring, ok)["iat"] == NOW + LEEWAY
    ahead = sign(ring, claims(nbf=None, iat=NOW + LEEWAY + 1))
    assert fails(ring, ahead) == ("TOKEN_NOT_YET_VALID", "token is not valid yet (issued in the future)")


def test_other_invalid_claims(ring: KeyRing) -> None:
    code, message = fails(ring, sign(ring, claims(exp="soon")))
    assert code == "TOKEN_INVALID_CLAIM"
    assert message == "token claim is invalid (Claim 'exp' must be a NumericDate value)"


def test_header_checks_in_order(ring: KeyRing) -> None:
    kid = ring.active().kid
    assert fails(ring, "not-a-jwt") == ("TOKEN_MALFORMED", "the bearer token is not a well-formed JWT")
    assert fails(ring, "a.b") == ("TOKEN_MALFORMED", "the bearer token is not a well-formed JWT")
    assert fails(ring, "ünïcode.a.b") == ("TOKEN_MALFORMED", "the bearer token is not a well-formed JWT")
    assert fails(ring, forged({"alg": "none", "typ": "at+jwt", "kid": kid})) == (
        "TOKEN_ALG_NOT_ALLOWED",
        "token algorithm 'none' is not accepted (only ES256)",
    )
    assert fails(ring, forged({"alg": "HS256", "typ": "at+jwt", "kid": kid}))[0] == "TOKEN_ALG_NOT_ALLOWED"
    assert fails(ring, forged({"typ": "at+jwt", "kid": kid})) == (
        "TOKEN_MALFORMED",
        "the bearer token is not a well-formed JWT",
    )
    for typ in (None, "JWT", "at+JWT"):
        token = sign(ring, claims(), typ=typ)
        assert fails(ring, token) == ("TOKEN_WRONG_TYPE", "token typ must be at+jwt (RFC 9068)")
    assert fails(ring, sign(ring, claims(), kid="someone-else")) == (
        "TOKEN_UNKNOWN_KEY",
        "token was signed with a key this hub does not know",
    )
    assert fails(ring, sign(ring, claims(), kid=None))[0] == "TOKEN_UNKNOWN_KEY"
    assert fails(ring, forged({"alg": "ES256", "typ": "at+jwt", "kid": kid})) == (
        "TOKEN_BAD_SIGNATURE",
        "token signature does not verify",
    )
    other = ECKey.generate_key("P-256", parameters={"kid": kid})
    stranger = jwt.encode({"alg": "ES256", "typ": "at+jwt", "kid": kid}, claims(), other, algorithms=["ES256"])
    assert fails(ring, stranger)[0] == "TOKEN_BAD_SIGNATURE"


def test_payload_that_is_not_json(ring: KeyRing) -> None:
    from joserfc import jws

    key = ring.active()
    token = jws.serialize_compact({"alg": "ES256", "typ": "at+jwt", "kid": key.kid}, b"not json", key.key)
    assert fails(ring, token) == ("TOKEN_MALFORMED", "the bearer token is not a well-formed JWT")


class TestExternalIssuer:
    EXT_ISS = "https://idp.example"

    @pytest.fixture(scope="class")
    @classmethod
    def idp_key(cls) -> ECKey:
        return ECKey.generate_key("P-256", parameters={"kid": "idp-1"})

    def external(self, key: ECKey, algs: tuple[str, ...] = ("ES256",), required: tuple[str, ...] = ()) -> TrustedIssuer:
        return TrustedIssuer(self.EXT_ISS, KeySet([key]), algs, required)

    def token(self, key: ECKey, **over: Any) -> str:
        body = claims(**{"iss": self.EXT_ISS, **over})
        return jwt.encode({"alg": "ES256", "typ": "at+jwt", "kid": "idp-1"}, body, key, algorithms=["ES256"])

    def test_external_tokens_use_their_own_required_claims(self, ring: KeyRing, idp_key: ECKey) -> None:
        ext = self.external(idp_key, required=("department",))
        # the hub's own claims are not required of the IdP, and purposes is not checked there
        body = verify(ring, self.token(idp_key, client_id=None, area=None, purposes="CASE"), external=ext)
        assert body["iss"] == self.EXT_ISS and "client_id" not in body
        code, message = fails(ring, self.token(idp_key, department=None), external=ext)
        assert (code, message) == ("TOKEN_MISSING_CLAIM", "token lacks a required claim (Missing claim: 'department')")
        # the IdP's tokens must carry its own issuer, and the hub's tokens the hub's
        assert fails(ring, self.token(idp_key, iss=ISS), external=ext)[0] == "TOKEN_WRONG_ISSUER"
        assert fails(ring, sign(ring, claims(iss=self.EXT_ISS)), external=ext)[0] == "TOKEN_WRONG_ISSUER"
        assert verify(ring, sign(ring, claims()), external=ext)["iss"] == ISS

    def test_algorithm_allowed_for_one_issuer_only(self, ring: KeyRing, idp_key: ECKey) -> None:
        ext = self.external(idp_key, algs=("RS256",))
        # RS256 is accepted for the IdP, but the token names the hub's key: refused for that issuer
        token = forged({"alg": "RS256", "typ": "at+jwt", "kid": ring.active().kid})
        assert fails(ring, token, external=ext) == (
            "TOKEN_ALG_NOT_ALLOWED",
            "token algorithm 'RS256' is not accepted for this issuer",
        )
        token = forged({"alg": "PS256", "typ": "at+jwt", "kid": ring.active().kid})
        assert fails(ring, token, external=ext) == (
            "TOKEN_ALG_NOT_ALLOWED",
            "token algorithm 'PS256' is not accepted (only ES256, RS256)",
        )
