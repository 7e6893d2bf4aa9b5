"""Tokens from an external identity provider: its JWKS fetched by URL and refreshed on unknown keys.

Configured by ``HUB_EXTERNAL_JWKS_URL`` and ``HUB_EXTERNAL_ISSUER``. The token's ``client_id`` must still be
a client registered in the hub (the registry decides department, area, purposes and status).
"""

from __future__ import annotations

import logging
import time

import httpx
from joserfc.jwk import KeySet

from hub.auth.tokens import TrustedIssuer
from hub.errors import ConfigError

log = logging.getLogger("hub.auth")

EXTERNAL_ALGS = ("ES256", "RS256", "PS256")
REFRESH_INTERVAL = 300.0  # refresh at least this often
MIN_REFRESH_GAP = 10.0  # and on an unknown key, but not more often than this


class ExternalIssuer:
    def __init__(self, jwks_url: str, issuer: str, timeout: float = 5.0) -> None:
        if not issuer:
            raise ConfigError("HUB_EXTERNAL_ISSUER must be set with HUB_EXTERNAL_JWKS_URL", code="BAD_SETTING")
        self.jwks_url = jwks_url
        self.issuer = issuer
        self.timeout = timeout
        self.keyset = KeySet([])
        self.fetched_at = 0.0

    def refresh(self) -> None:
        """Fetch the JWKS (blocking; call from a worker thread). Keeps the old keys if the fetch fails."""
        self.fetched_at = time.monotonic()
        try:
            r = httpx.get(self.jwks_url, timeout=self.timeout)
            r.raise_for_status()
            self.keyset = KeySet.import_key_set(r.json())
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("could not fetch external JWKS from %s: %s", self.jwks_url, exc.__class__.__name__)

    def knows(self, kid: object) -> bool:
        return isinstance(kid, str) and any(k.kid == kid for k in self.keyset.keys)

    def should_refresh(self, kid: object) -> bool:
        age = time.monotonic() - self.fetched_at
        return age > REFRESH_INTERVAL or (not self.knows(kid) and age > MIN_REFRESH_GAP)

    def trusted(self) -> TrustedIssuer:
        return TrustedIssuer(self.issuer, self.keyset, EXTERNAL_ALGS, ("client_id",))
