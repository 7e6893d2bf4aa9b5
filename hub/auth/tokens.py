"""Issue and verify RFC 9068 JWT access tokens (joserfc, the JOSE library of the authlib project).

Verification checks, in order, each with its own stable code: a Bearer token is present; it is a
compact JWS; ``alg`` is on the allow-list (``none`` and HMAC are refused); ``typ`` is ``at+jwt``
(authlib's RFC 9068 validator would accept a token with no ``typ``, RFC 9068 §4 does not); ``kid`` names
a key in our JWKS; the signature verifies; ``iss`` and ``aud`` are exactly ours; ``exp``/``nbf``/``iat``
hold within a small leeway; the registered claims are present.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from joserfc import jws, jwt
from joserfc.errors import (
    BadSignatureError,
    DecodeError,
    ExpiredTokenError,
    InvalidClaimError,
    JoseError,
    MissingClaimError,
)
from joserfc.jwk import KeySet
from joserfc.jwt import JWTClaimsRegistry

from hub.auth.keys import TOKEN_ALG, KeyRing
from hub.errors import AuthenticationError

ALLOWED_ALGS = [TOKEN_ALG]
_CLAIM_CODES = {
    "iss": ("TOKEN_WRONG_ISSUER", "token was issued by someone else"),
    "aud": ("TOKEN_WRONG_AUDIENCE", "token is meant for another audience"),
    "nbf": ("TOKEN_NOT_YET_VALID", "token is not valid yet (nbf in the future)"),
    "iat": ("TOKEN_NOT_YET_VALID", "token is not valid yet (issued in the future)"),
}
LEEWAY = 30


def issue_token(
    ring: KeyRing,
    *,
    issuer: str,
    audience: str,
    ttl: int,
    client_id: str,
    department: str,
    area: str,
    purposes: list[str],
    roles: list[str],
    now: float | None = None,
) -> tuple[str, dict[str, Any]]:
    key = ring.active()
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": audience,
        "sub": client_id,
        "client_id": client_id,
        "iat": issued,
        "nbf": issued,
        "exp": issued + ttl,
        "jti": secrets.token_urlsafe(16),
        "scope": " ".join(purposes),
        "department": department,
        "area": area,
        "purposes": purposes,
        "roles": roles,
    }
    header = {"alg": TOKEN_ALG, "typ": "at+jwt", "kid": key.kid}
    return jwt.encode(header, claims, key.key, algorithms=ALLOWED_ALGS), claims


def _fail(code: str, message: str) -> AuthenticationError:
    return AuthenticationError(message, code=code)


@dataclass(frozen=True)
class TrustedIssuer:
    """An issuer whose access tokens this hub accepts: itself, or an external identity provider."""

    issuer: str
    keyset: KeySet
    algorithms: tuple[str, ...]
    required_claims: tuple[str, ...]


HUB_CLAIMS = ("client_id", "department", "area", "purposes")


class VerifiedTokens:
    """The claims of hub-issued tokens whose signature verified, by token text (LRU, bounded), for as long as the
    hub's token keys are the same: a key rotation or prune, by this process or another (the key folder's listing,
    ``KeyRing.token_keys``), empties it before the next request is checked. A hit skips only the JWS parse and the
    ES256 signature check (about 0.3 ms): every claim, the times included, is validated again on every request,
    and the client's registry row is read on every request (``HubState.authenticate``), so a disabled client or
    a purpose removed is refused at once."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self.kids: tuple[str, ...] = ()
        self._claims: OrderedDict[str, dict[str, Any]] = OrderedDict()

    def current(self, ring: KeyRing) -> tuple[str, ...]:
        kids = tuple(k.kid for k in ring.token_keys())
        if kids != self.kids:
            self._claims.clear()
            self.kids = kids
        return kids

    def get(self, token: str) -> dict[str, Any] | None:
        claims = self._claims.get(token)
        if claims is not None:
            self._claims.move_to_end(token)
        return claims

    def put(self, token: str, claims: dict[str, Any]) -> None:
        if self.size <= 0:
            return
        self._claims[token] = claims
        while len(self._claims) > self.size:
            self._claims.popitem(last=False)

    def __len__(self) -> int:
        return len(self._claims)


def verify_token(
    ring: KeyRing,
    token: str,
    *,
    issuer: str,
    audience: str,
    now: float | None = None,
    external: TrustedIssuer | None = None,
    cache: VerifiedTokens | None = None,
) -> dict[str, Any]:
    """Return the claims of a valid access token or raise ``AuthenticationError`` with a precise code. With
    ``cache``, a hub-issued token whose signature verified before under the same keys is not parsed and checked
    again; its claims are (``VerifiedTokens``)."""
    kids: tuple[str, ...] = ()
    if cache is not None:
        kids = cache.current(ring)
        known = cache.get(token)
        if known is not None:
            _check_claims(known, issuer, audience, HUB_CLAIMS, now)
            return dict(known)
    try:
        compact = jws.extract_compact(token.encode("ascii"))
        header = compact.headers()
    except (JoseError, ValueError, UnicodeError, TypeError):
        raise _fail("TOKEN_MALFORMED", "the bearer token is not a well-formed JWT") from None
    trusted = [TrustedIssuer(issuer, ring.keyset(), tuple(ALLOWED_ALGS), HUB_CLAIMS)]
    if external is not None:
        trusted.append(external)
    alg = header.get("alg")
    if not any(alg in t.algorithms for t in trusted):
        accepted = sorted({a for t in trusted for a in t.algorithms})
        raise _fail("TOKEN_ALG_NOT_ALLOWED", f"token algorithm {alg!r} is not accepted (only {', '.join(accepted)})")
    if header.get("typ") != "at+jwt":
        raise _fail("TOKEN_WRONG_TYPE", "token typ must be at+jwt (RFC 9068)")
    kid = header.get("kid")
    chosen = next((t for t in trusted if isinstance(kid, str) and any(k.kid == kid for k in t.keyset.keys)), None)
    if chosen is None:
        raise _fail("TOKEN_UNKNOWN_KEY", "token was signed with a key this hub does not know")
    if alg not in chosen.algorithms:
        raise _fail("TOKEN_ALG_NOT_ALLOWED", f"token algorithm {alg!r} is not accepted for this issuer")
    try:
        decoded = jwt.decode(token, chosen.keyset, algorithms=list(chosen.algorithms))
    except BadSignatureError:
        raise _fail("TOKEN_BAD_SIGNATURE", "token signature does not verify") from None
    except (DecodeError, JoseError, ValueError):
        raise _fail("TOKEN_MALFORMED", "the bearer token is not a well-formed JWT") from None
    claims = decoded.claims
    _check_claims(claims, chosen.issuer, audience, chosen.required_claims, now)
    # kept only when verified with the hub's own keys (an external issuer's may refresh), unchanged meanwhile
    if cache is not None and chosen is trusted[0] and cache.current(ring) == kids:
        cache.put(token, dict(claims))
    return dict(claims)


def _check_claims(
    claims: dict[str, Any], issuer: str, audience: str, required: tuple[str, ...], now: float | None
) -> None:
    options: dict[str, Any] = {
        "iss": {"essential": True, "value": issuer},
        "aud": {"essential": True, "value": audience},
        "exp": {"essential": True},
        "iat": {"essential": True},
        "jti": {"essential": True},
    }
    options.update({c: {"essential": True} for c in required})
    registry = JWTClaimsRegistry(now=int(time.time() if now is None else now), leeway=LEEWAY, **options)
    try:
        registry.validate(claims)
    except ExpiredTokenError:
        raise _fail("TOKEN_EXPIRED", "token has expired") from None
    except MissingClaimError as exc:
        raise _fail("TOKEN_MISSING_CLAIM", f"token lacks a required claim ({exc.description})") from None
    except InvalidClaimError as exc:
        claim = exc.claim
        code, message = _CLAIM_CODES.get(claim, ("TOKEN_INVALID_CLAIM", f"token claim is invalid ({exc.description})"))
        raise _fail(code, message) from None
    if "purposes" in required and not isinstance(claims.get("purposes"), list):
        raise _fail("TOKEN_INVALID_CLAIM", "token claim purposes must be a list")
