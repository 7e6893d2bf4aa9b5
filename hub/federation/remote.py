"""The client of another region's hub: its credentials there, a token cached until shortly before it expires,
one bounded and guarded POST per sub-operation, and what came back (``RemoteAnswer``)."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx

from hub.errors import ConfigError, UpstreamUnavailable
from hub.federation.consumer import Asker
from hub.upstream.bounded import DEFAULT_MAX_BYTES, post_json
from hub.upstream.breaker import CircuitBreaker
from hub.upstream.guard import HTTP_FAILURES, guarded

if TYPE_CHECKING:
    from hub.settings import Settings

log = logging.getLogger("hub.sources")

REQUEST_ID_RE = re.compile(r"^[0-9a-f]{32}$")  # a hub's request id (uuid4 hex)


@dataclass
class RemoteAnswer:
    hub: str
    body: dict[str, Any] | None = None  # the remote's JSON response
    request_id: str = ""
    failure: str = ""
    out_of_area: int = 0  # residents the remote found outside the consumer's (narrowed) jurisdiction
    dropped: list[str] = field(default_factory=list)  # paths of answered values nobody asked for
    error_codes: set[str] = field(default_factory=set)

    def record(self) -> dict[str, Any]:
        """The audit entry's line for this region: its (validated) request id, and what was refused."""
        out: dict[str, Any] = {"hub": self.hub, "request_id": self.request_id}
        if self.dropped:
            out["dropped"] = sorted(set(self.dropped))[:50]
        if self.error_codes:
            out["errors"] = sorted(self.error_codes)[:10]
        if self.failure:
            out["failed"] = True
        return out


class RemoteHub:
    """One remote region's hub, reached over HTTP with this hub's client credentials there."""

    def __init__(
        self,
        name: str,
        url: str,
        client_id: str,
        secret: str,
        *,
        timeout: float = 5.0,
        breaker: CircuitBreaker | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        self.name = name
        self.url = url.rstrip("/")
        self.client_id = client_id
        self.secret = secret
        self.timeout = timeout
        self.breaker = breaker or CircuitBreaker()
        self.max_bytes = max_bytes
        self.requests = 0
        self._token: tuple[str, float] | None = None
        self._lock = asyncio.Lock()

    async def _access_token(self, client: httpx.AsyncClient) -> str:
        async with self._lock:
            if self._token is not None and self._token[1] > time.monotonic():
                return self._token[0]
            r = await client.post(
                f"{self.url}/oauth/token",
                data={"grant_type": "client_credentials"},
                auth=(self.client_id, self.secret),
            )
            if r.status_code != 200 or len(r.content) > 65_536:
                raise UpstreamUnavailable(f"{self.name}: token request refused ({r.status_code})")
            body = r.json()
            ttl = float(body.get("expires_in", 60))
            self._token = (str(body["access_token"]), time.monotonic() + max(ttl - 30, ttl / 2))
            return self._token[0]

    async def ask(
        self, query: str, variables: dict[str, Any], operation_name: str | None, asker: Asker
    ) -> RemoteAnswer:
        """Send one sub-operation on behalf of ``asker`` (consumer, officer, purpose, case, row scope here);
        never raises."""
        answer = RemoteAnswer(self.name)
        payload: dict[str, Any] = {"query": query, "variables": variables}
        if operation_name:
            payload["operationName"] = operation_name
        headers = asker.headers()
        try:
            async with guarded(self.breaker, self.timeout, f"{self.name}: the region's hub", failures=HTTP_FAILURES):
                async with httpx.AsyncClient(timeout=self.timeout) as client:
                    for attempt in (1, 2):
                        headers["authorization"] = f"Bearer {await self._access_token(client)}"
                        self.requests += 1
                        r, body = await post_json(
                            client, f"{self.url}/graphql", json_body=payload, headers=headers, max_bytes=self.max_bytes
                        )
                        if r.status_code == 401 and attempt == 1:
                            self._token = None  # expired or rotated there: one fresh token, one retry
                            continue
                        break
                    rid = r.headers.get("x-request-id", "")
                    answer.request_id = rid if REQUEST_ID_RE.match(rid) else ""
                    if not answer.request_id:
                        log.warning("remote hub %s: its request id is malformed; not recorded", self.name)
                    if not isinstance(body, dict):
                        raise ValueError("not a JSON object")
                    answer.body = body
                    ext = body.get("extensions")
                    hub_ext = ext.get("hub") if isinstance(ext, dict) else None
                    n = hub_ext.get("outOfArea") if isinstance(hub_ext, dict) else None
                    if isinstance(n, int) and not isinstance(n, bool) and 0 <= n <= 100_000:
                        answer.out_of_area = n
        except UpstreamUnavailable as exc:  # the guard's own: breaker open, too slow, or failed
            answer.failure = exc.message
        return answer


class RemoteHubs:
    """The configured remote regions, asked in configuration order (the first non-null answer wins)."""

    def __init__(self, hubs: Sequence[RemoteHub] = ()) -> None:
        self.hubs = list(hubs)

    def __bool__(self) -> bool:
        return bool(self.hubs)

    @classmethod
    def from_settings(cls, settings: Settings) -> RemoteHubs:
        hubs = []
        for name, url in settings.remote_hubs.items():
            if not url.startswith(("http://", "https://")):
                raise ConfigError(f"remote hub {name}: {url!r} is not an http(s) URL", code="BAD_SETTING")
            creds = settings.remote_credentials.get(name)
            if not creds or not creds[0] or not creds[1]:
                env = "HUB_REMOTE_" + name.upper().replace("-", "_")
                raise ConfigError(
                    f"remote hub {name} has no credentials: set {env}_CLIENT_ID and {env}_CLIENT_SECRET",
                    code="BAD_SETTING",
                )
            hubs.append(
                RemoteHub(
                    name,
                    url,
                    creds[0],
                    creds[1],
                    timeout=settings.source_timeout,
                    breaker=CircuitBreaker(settings.breaker_threshold, settings.breaker_reset),
                    max_bytes=settings.source_max_bytes,
                )
            )
        return cls(hubs)
