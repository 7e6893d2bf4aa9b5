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

import contextvars
import hashlib
import json
import secrets
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jwt import JWTClaimsRegistry

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
        header = {"alg": TOKEN_ALG, "typ": "at+jwt", "kid": key.kid}
        return jwt.encode(header, claims, key.key, algorithms=[TOKEN_ALG])


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

    async def verify(self, token: str, body: dict[str, Any]) -> dict[str, Any]:
        """The token's claims, if it is the hub's, for this department, alive, bound to ``body`` and unused;
        ``AuthenticationError`` (``UNAUTHENTICATED``) naming what is wrong otherwise."""
        try:
            header = jws.extract_compact(token.encode("ascii")).headers()
        except (JoseError, ValueError, UnicodeError):
            raise AuthenticationError("the bearer token is not a well-formed JWT") from None
        if header.get("alg") not in ALGORITHMS or header.get("typ") != "at+jwt":
            raise AuthenticationError("the token must be an ES256 at+jwt access token")
        kid = header.get("kid")
        if not any(k.kid == kid for k in self.keyset.keys):
            await self.refresh()
            if not any(k.kid == kid for k in self.keyset.keys):
                raise AuthenticationError("the token was signed by a key the hub does not publish")
        try:
            claims = dict(jwt.decode(token, self.keyset, algorithms=ALGORITHMS).claims)
            registry = JWTClaimsRegistry(
                leeway=LEEWAY,
                iss={"essential": True, "value": self.issuer},
                aud={"essential": True, "value": self.audience},
                exp={"essential": True},
                iat={"essential": True},
            )
            registry.validate(claims)
        except (JoseError, ValueError) as exc:
            raise AuthenticationError(f"the token is not valid here ({exc.__class__.__name__})") from None
        if claims.get("client_id") != HUB_CLIENT_ID:
            raise AuthenticationError("only the hub's own hop tokens are accepted")
        if int(claims["exp"]) - int(claims["iat"]) > MAX_LIFETIME:
            raise AuthenticationError("the token lives too long for a hop token")
        if claims.get("req_sha256") != request_digest(body):
            raise AuthenticationError("the token was minted for another request")
        self._once(claims.get("jti"), int(claims["exp"]))
        return claims
