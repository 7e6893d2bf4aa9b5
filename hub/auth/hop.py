"""Hop tokens: how the hub tells a department's subgraph who is asking, and how the subgraph checks it.

For every POST to a department subgraph the hub mints a short-lived RFC 9068 access token (``HopSigner``, the
one issuer) signed with its own active token key: ``iss`` the hub, ``aud`` the department, ``client_id``
``hub``, at most ``HOP_TTL`` seconds of life, the original actor (``act``), purpose, case and request id, bound
to that very request body (``req_sha256``, ``request_digest``) and usable once (``jti``). ``HopVerifier`` (the
one verifier) checks all of that against a key set; the demo subgraph (``hub/demo/subgraph.py``) uses it with
the hub's published JWKS.

Who is asking is bound once per request (``bind_hop``, by the gateway before execution) in a context variable
that reaches the sources' batches, which run in tasks created from the request's context.
"""

from __future__ import annotations

import base64
import contextvars
import hashlib
import json
import secrets
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ec import (
    ECDSA,
    EllipticCurvePrivateKey,
    EllipticCurvePublicKey,
)
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from cryptography.hazmat.primitives.hashes import SHA256
from joserfc.jwk import KeySet

from hub.auth.keys import TOKEN_ALG, KeyRing, TokenKey
from hub.errors import AuthenticationError

if TYPE_CHECKING:
    from hub.auth.actor import Actor

HOP_TTL = 15  # seconds; a hop token is minted for one POST (bound to its body) and used once
HUB_CLIENT_ID = "hub"
ALGORITHMS = [TOKEN_ALG]
MAX_LIFETIME = 60  # a hop token living longer than this is refused, whatever it says
LEEWAY = 5  # seconds of clock difference tolerated on exp/iat


@dataclass(eq=False)
class HopIdentity:
    """The original request behind a department call (one per hub request; compared by identity)."""

    request_id: str
    client_id: str
    department: str
    officer: str
    area: str
    purpose: str
    case: str
    predicates_in_hub: set[str] = field(default_factory=set)  # departments whose predicates the hub evaluated

    def act(self) -> dict[str, str]:
        return {"client_id": self.client_id, "department": self.department, "officer": self.officer, "area": self.area}


_HOP: contextvars.ContextVar[HopIdentity | None] = contextvars.ContextVar("hub_hop", default=None)


def bind_hop(request_id: str, actor: Actor, officer: str, purpose: str, case: str) -> HopIdentity:
    """Record who is asking for the rest of this request (the gateway calls this before execution).

    A context variable reaches the loaders' batches, which run in tasks created from the request's context.
    """
    hop = HopIdentity(request_id, actor.client_id, actor.department, officer, actor.area, purpose, case)
    _HOP.set(hop)
    return hop


@contextmanager
def hop_scope(hop: HopIdentity | None) -> Iterator[HopIdentity | None]:
    """Bind ``hop`` for the duration of a block (tests and tools calling a source outside a request)."""
    token = _HOP.set(hop)
    try:
        yield hop
    finally:
        _HOP.reset(token)


def current_hop() -> HopIdentity | None:
    return _HOP.get()


class HopSigner:
    """Signs hop tokens with the hub's own active token key (the key its JWKS publishes)."""

    def __init__(self, keys: KeyRing, issuer: str, ttl: int = HOP_TTL) -> None:
        self.keys = keys
        self.issuer = issuer
        self.ttl = min(ttl, HOP_TTL)
        self._key: tuple[TokenKey, float] | None = None

    def _active(self) -> TokenKey:
        now = time.monotonic()
        if self._key is None or now - self._key[1] > 30:  # picks up `hub keys rotate` within 30 s
            self._key = (self.keys.active(), now)
        return self._key[0]

    def token(self, audience: str, hop: HopIdentity | None, body: dict[str, Any], now: float | None = None) -> str:
        """An RFC 9068 access token for one POST to one department (``aud``), bound to that POST's ``body`` (its
        query, hence the columns asked, and its representations) by ``req_sha256``, naming the original actor
        when there is one. The department accepts each ``jti`` once."""
        issued = time.time() if now is None else now
        key = self._active()
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": audience,
            "sub": HUB_CLIENT_ID,
            "client_id": HUB_CLIENT_ID,
            "iat": int(issued),
            "nbf": int(issued),
            "exp": int(issued) + self.ttl,
            "jti": secrets.token_urlsafe(16),
            "req_sha256": request_digest(body),
        }
        if hop is not None:
            claims.update(act=hop.act(), purpose=hop.purpose, case=hop.case, request_id=hop.request_id)
        return _es256_compact(key, claims)


def request_digest(body: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of a subgraph POST's ``query`` and ``variables`` as canonical JSON (keys sorted, no spaces,
    UTF-8): what a hop token's ``req_sha256`` binds it to. A department recomputes it from the body it got."""
    doc = {"query": body.get("query", ""), "variables": body.get("variables") or {}}
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class HopVerifier:
    """Checks the hub's hop tokens for one department (``audience``) against the hub's public keys
    (``keyset``; ``refresh`` is asked for them again when a token names a key not seen yet)."""

    MAX_JTIS = 200_000  # tokens seen and still unexpired; beyond this, new tokens are refused (fail closed)

    def __init__(self, issuer: str, audience: str, keyset: KeySet | None = None) -> None:
        self.issuer, self.audience = issuer, audience
        self.keyset = keyset or KeySet([])
        self.seen: dict[str, float] = {}  # jti -> when it may be forgotten (its exp plus the leeway)
        self._keys: tuple[KeySet, dict[str, EllipticCurvePublicKey]] | None = None  # kid -> key, per key set

    def _once(self, jti: Any, exp: int) -> None:
        """Each token is accepted once: its ``jti`` is remembered until the token could no longer be valid."""
        now = time.time()
        if len(self.seen) > 1000:
            for old in [j for j, until in self.seen.items() if until < now]:
                del self.seen[old]
        if not isinstance(jti, str) or not 16 <= len(jti) <= 64:
            raise AuthenticationError("the token has no usable jti")
        if jti in self.seen:
            raise AuthenticationError("the token was already used (replay)")
        if len(self.seen) >= self.MAX_JTIS:
            raise AuthenticationError("too many tokens in flight")
        self.seen[jti] = exp + LEEWAY

    async def refresh(self) -> None:
        """Read the key set again (here: a fixed key set; the demo subgraph reads the hub's JWKS)."""

    def _public(self, kid: object) -> EllipticCurvePublicKey | None:
        if not isinstance(kid, str):
            return None
        keys = self._keys
        if keys is None or keys[0] is not self.keyset:  # the key set was replaced (refresh): index it again
            index = {}
            for k in self.keyset.keys:
                raw = getattr(k, "raw_value", None)
                if k.kid and isinstance(raw, EllipticCurvePublicKey):
                    index[k.kid] = raw
            keys = self._keys = (self.keyset, index)
        return keys[1].get(kid)

    async def verify(self, token: str, body: dict[str, Any]) -> dict[str, Any]:
        """The token's claims, if it is the hub's, for this department, alive, bound to ``body`` and unused;
        ``AuthenticationError`` (``UNAUTHENTICATED``) naming what is wrong otherwise.

        The compact JWS is checked with ``cryptography`` directly (what joserfc does, without its generic layers:
        a third of the subgraph's CPU per call went there); the checks and their messages are the same."""
        parts = token.split(".")
        try:
            if len(parts) != 3:
                raise ValueError
            header = json.loads(_b64decode(parts[0]))
            if not isinstance(header, dict):
                raise ValueError
        except (ValueError, UnicodeError):
            raise AuthenticationError("the bearer token is not a well-formed JWT") from None
        if header.get("alg") not in ALGORITHMS or header.get("typ") != "at+jwt":
            raise AuthenticationError("the token must be an ES256 at+jwt access token")
        kid = header.get("kid")
        public = self._public(kid)
        if public is None:
            await self.refresh()
            public = self._public(kid)
            if public is None:
                raise AuthenticationError("the token was signed by a key the hub does not publish")
        try:
            sig = _b64decode(parts[2])
            if len(sig) != 64:
                raise ValueError("an ES256 signature is 64 bytes")
            der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
            public.verify(der, f"{parts[0]}.{parts[1]}".encode("ascii"), _ECDSA_SHA256)
            claims = json.loads(_b64decode(parts[1]))
            if not isinstance(claims, dict):
                raise ValueError("the claims are not a JSON object")
            _check_registered(claims, self.issuer, self.audience, time.time())
        except InvalidSignature:
            raise AuthenticationError("the token is not valid here (BadSignatureError)") from None
        except _ClaimError as exc:
            raise AuthenticationError(f"the token is not valid here ({exc.args[0]})") from None
        except (ValueError, UnicodeError, TypeError):
            raise AuthenticationError("the token is not valid here (DecodeError)") from None
        if claims.get("client_id") != HUB_CLIENT_ID:
            raise AuthenticationError("only the hub's own hop tokens are accepted")
        if int(claims["exp"]) - int(claims["iat"]) > MAX_LIFETIME:
            raise AuthenticationError("the token lives too long for a hop token")
        if claims.get("req_sha256") != request_digest(body):
            raise AuthenticationError("the token was minted for another request")
        self._once(claims.get("jti"), int(claims["exp"]))
        return claims


# -- compact ES256 JWS, with cryptography directly --------------------------------------------------------------
_ECDSA_SHA256 = ECDSA(SHA256())


class _ClaimError(Exception):
    """A registered claim is missing or wrong (named like joserfc's errors)."""


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    if not text or len(text) % 4 == 1 or "=" in text:
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


_HEADERS: dict[str, str] = {}  # kid -> the encoded protected header (the same for every token of a key)


def _es256_compact(key: TokenKey, claims: dict[str, Any]) -> str:
    """A compact JWS (RFC 7515) of ``claims`` signed ES256 with ``key``: the JWT joserfc would produce."""
    header = _HEADERS.get(key.kid)
    if header is None:
        header = _HEADERS[key.kid] = _b64encode(
            json.dumps({"typ": "at+jwt", "alg": TOKEN_ALG, "kid": key.kid}, separators=(",", ":")).encode()
        )
    payload = _b64encode(json.dumps(claims, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
    signing_input = f"{header}.{payload}"
    private = key.key.raw_value
    if not isinstance(private, EllipticCurvePrivateKey):
        raise TypeError("the hub's token key is not an EC private key")
    r, s = decode_dss_signature(private.sign(signing_input.encode("ascii"), _ECDSA_SHA256))
    return f"{signing_input}.{_b64encode(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def _check_registered(claims: dict[str, Any], issuer: str, audience: str, now: float) -> None:
    """iss, aud, exp, iat (and nbf when present), with ``LEEWAY`` seconds of clock difference."""
    for name in ("iss", "aud", "exp", "iat"):
        if name not in claims:
            raise _ClaimError("MissingClaimError")
    if claims["iss"] != issuer:
        raise _ClaimError("InvalidClaimError")
    aud = claims["aud"]
    if not (aud == audience or (isinstance(aud, list) and audience in aud)):
        raise _ClaimError("InvalidClaimError")
    for name in ("exp", "iat", "nbf"):
        if name in claims and (type(claims[name]) not in (int, float)):
            raise _ClaimError("InvalidClaimError")
    if claims["exp"] < now - LEEWAY:
        raise _ClaimError("ExpiredTokenError")
    if "nbf" in claims and claims["nbf"] > now + LEEWAY:
        raise _ClaimError("InvalidTokenError")
    if claims["iat"] > now + LEEWAY:
        raise _ClaimError("InvalidTokenError")
