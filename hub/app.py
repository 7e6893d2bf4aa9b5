"""``create_app(settings)``: the composition root. It wires the routes and the lifespan (the audit head signer,
the monitor) around the shared state built at start-up (``hub.state.HubState``); the work lives in the modules
it imports."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gc
import logging
import math
import time
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, unquote

from opentelemetry.sdk.trace.export import SpanExporter
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute

from hub.audit.receipts import checkpoint_endpoint, receipt_endpoint
from hub.auth.tokens import issue_token
from hub.clock import Clock, system_clock
from hub.compiled.run import gc_paused
from hub.console import console_app
from hub.errors import BodyTimeout, BodyTooLarge
from hub.gateway import handle, read_body
from hub.graphiql import graphiql_asset, graphiql_page
from hub.health import readiness
from hub.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from hub.metrics import MetricsMiddleware
from hub.monitor.ws import alert_socket
from hub.ratelimit import RateLimited
from hub.settings import Settings
from hub.state import HubState

log = logging.getLogger("hub")


def _oauth_error(error: str, description: str, status: int = 400) -> JSONResponse:
    headers = {"cache-control": "no-store"}
    if status == 401:
        headers["www-authenticate"] = 'Basic realm="hub"'
    return JSONResponse({"error": error, "error_description": description}, status_code=status, headers=headers)


async def _token_rate_limited(state: HubState, client_id: str, address: str, exc: RateLimited) -> Response:
    await state.record_token_failure(client_id, address, "RATE_LIMITED", 429)
    response = _oauth_error("temporarily_unavailable", exc.message, 429)
    response.headers["retry-after"] = str(exc.retry_after)
    return response


async def token_endpoint(request: Request) -> Response:
    """OAuth 2.0 token endpoint, client credentials grant only (RFC 6749 §4.4)."""
    state: HubState = request.app.state.hub
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        return _oauth_error("invalid_request", "send application/x-www-form-urlencoded parameters")
    try:
        raw = await read_body(request, 8192, state.settings.body_timeout)
    except BodyTooLarge:
        return _oauth_error("invalid_request", "request too large")
    except BodyTimeout:
        return _oauth_error("invalid_request", "the request body did not arrive in time", 408)
    try:
        form = {k: v[0] for k, v in parse_qs(raw.decode("utf-8"), strict_parsing=False).items()}
    except UnicodeDecodeError:
        return _oauth_error("invalid_request", "parameters must be UTF-8")
    client_id = secret = None
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("basic "):
        try:
            decoded = base64.b64decode(auth[6:].strip(), validate=True).decode("utf-8")
            cid, _, sec = decoded.partition(":")
            client_id, secret = unquote(cid), unquote(sec)
        except (ValueError, UnicodeDecodeError):
            return _oauth_error("invalid_client", "malformed Basic credentials", 401)
    elif "client_id" in form:
        client_id, secret = str(form.get("client_id", "")), str(form.get("client_secret", ""))
    if form.get("grant_type") != "client_credentials":
        return _oauth_error("unsupported_grant_type", "only client_credentials is supported")
    if not client_id or secret is None:
        return _oauth_error("invalid_client", "client authentication is required", 401)
    address = request.client.host if request.client else ""
    try:  # per caller, before anything is checked (docs/operations.md, rate limits)
        await state.token_limit.check(f"token:{address}", "this address")
    except RateLimited as exc:
        return await _token_rate_limited(state, client_id or "", address, exc)
    wait = max(state.failed_by_client.retry_after(client_id), state.failed_by_address.retry_after(address))
    if wait > 0:  # refused before the secret is even checked: guessing costs the attacker, not the hub
        await state.record_token_failure(client_id, address, "TOKEN_ATTEMPTS_LIMITED", 429)
        response = _oauth_error("temporarily_unavailable", "too many failed attempts; try again later", 429)
        response.headers["retry-after"] = str(math.ceil(wait))
        return response
    client = await asyncio.to_thread(state.clients.authenticate, client_id, secret)
    if client is None:
        state.failed_by_client.failed(client_id)
        state.failed_by_address.failed(address)
        await state.record_token_failure(client_id, address, "CLIENT_AUTH_FAILED", 401)
        return _oauth_error("invalid_client", "unknown client or wrong secret", 401)
    if not client.active:
        return _oauth_error("invalid_client", "client is disabled", 401)
    try:
        await state.token_limit.check(f"token-client:{client.client_id}", f"client {client.client_id}")
    except RateLimited as exc:
        return await _token_rate_limited(state, client.client_id, address, exc)
    requested = str(form.get("scope", "")).split()
    purposes = list(client.purposes)
    if requested:
        unknown = [p for p in requested if p not in client.purposes]
        if unknown:
            registered = ", ".join(sorted(client.purposes)) or "none"
            return _oauth_error(
                "invalid_scope", f"client is not registered for {', '.join(unknown)} (registered: {registered})"
            )
        purposes = requested
    s = state.settings
    token, claims = issue_token(
        state.keys,
        issuer=s.issuer,
        audience=s.audience,
        ttl=s.token_ttl,
        client_id=client.client_id,
        department=client.department,
        area=client.area,
        purposes=purposes,
        roles=list(client.roles),
    )
    return JSONResponse(
        {"access_token": token, "token_type": "Bearer", "expires_in": s.token_ttl, "scope": claims["scope"]},
        headers={"cache-control": "no-store", "pragma": "no-cache"},
    )


async def jwks_endpoint(request: Request) -> Response:
    state: HubState = request.app.state.hub
    return JSONResponse(state.keys.jwks(), headers={"cache-control": "max-age=60"})


async def authorization_server_metadata(request: Request) -> Response:
    """OAuth 2.0 Authorization Server Metadata (RFC 8414) for the client credentials grant. The issuer is
    ``HUB_ISSUER`` and the endpoints are under it, so it must be the hub's public base URL (docs/operations.md)."""
    state: HubState = request.app.state.hub
    issuer = state.settings.issuer
    base = issuer.rstrip("/")
    metadata = {
        "issuer": issuer,
        "token_endpoint": f"{base}/oauth/token",
        "jwks_uri": f"{base}/.well-known/jwks.json",
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "response_types_supported": [],  # no authorization endpoint: client credentials only
        "scopes_supported": sorted(state.policy.purposes),  # a token's scope is the purposes it may declare
    }
    return JSONResponse(metadata, headers={"cache-control": "max-age=300"})


async def audit_key_endpoint(request: Request) -> Response:
    state: HubState = request.app.state.hub
    return PlainTextResponse(state.keys.audit_public_path.read_text(), media_type="application/x-pem-file")


async def healthz(request: Request) -> Response:
    state: HubState = request.app.state.hub
    return JSONResponse({"status": "ok", "departments": sorted(state.sources), "grants": len(state.policy.grants)})


async def livez(request: Request) -> Response:
    """The process answers (docs/operations.md): nothing else is touched."""
    return JSONResponse({"status": "alive"}, headers={"cache-control": "no-store"})


async def readyz(request: Request) -> Response:
    """The hub can serve now: its database answers, the audit log can take a write, policies are loaded
    (503 otherwise). Departments are reported, never fatal (docs/operations.md)."""
    ready, body = await readiness(request.app.state.hub)
    return JSONResponse(body, status_code=200 if ready else 503, headers={"cache-control": "no-store"})


async def metrics_endpoint(request: Request) -> Response:
    """Prometheus metrics, this hub's own registry (hub/metrics.py, docs/operations.md)."""
    state: HubState = request.app.state.hub
    return Response(await asyncio.to_thread(state.metrics.render), media_type=METRICS_CONTENT_TYPE)


async def graphql_endpoint(request: Request) -> Response:
    state: HubState = request.app.state.hub
    if request.method == "GET":
        if state.settings.dev_mode:
            return await graphiql_page(request)  # shipped with the hub, offline (hub/graphiql.py)
        return JSONResponse(
            {"data": None, "errors": [{"message": "use POST", "extensions": {"code": "METHOD_NOT_ALLOWED"}}]},
            status_code=405,
        )
    with gc_paused():  # until the answer's objects are freed (hub/compiled/run.py, docs/performance.md)
        return await handle(state, request)


GC_THRESHOLD = (10_000, 20, 20)  # the youngest generation is collected every 10,000 allocations, not 700
_gc_tuned = False


def tune_gc() -> None:
    """Once per process, when the first app has started: what start-up built (schema, policies, keys, modules) is
    moved out of the collector's sight (``gc.freeze``), and the youngest generation is collected less often. A
    request allocates thousands of small objects, nearly all freed by reference counting; with the default
    threshold (700) the collector ran several times per request, each time walking the same start-up objects."""
    global _gc_tuned
    if _gc_tuned:
        return
    _gc_tuned = True
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)


def create_app(
    settings: Settings | None = None,
    *,
    sign_interval: float = 10.0,
    clock: Clock = system_clock,
    span_exporter: SpanExporter | None = None,
) -> Starlette:
    """The hub's ASGI app. ``span_exporter``: where trace spans go instead of ``HUB_OTLP_ENDPOINT`` (tests)."""
    settings = settings or Settings.from_env()
    state = HubState(settings, clock, span_exporter)  # everything the routes share (hub/state.py)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async def sign_heads() -> None:
            # Sign a head whenever the log grew, and at least once a minute (RFC 6962 §3.5 re-signing).
            last_size, last_time = -1, 0.0
            while True:
                await asyncio.sleep(sign_interval)
                try:
                    if state.audit.size() != last_size or time.monotonic() - last_time > 60:
                        head = await asyncio.to_thread(state.audit.sign_head)
                        last_size, last_time = head.tree_size, time.monotonic()
                except Exception:
                    log.exception("signing the audit tree head failed")

        task = asyncio.create_task(sign_heads())
        reader = asyncio.create_task(state.monitor.run()) if settings.monitor else None  # docs/monitoring.md
        tune_gc()
        try:
            yield
        finally:
            for t in (task, reader):
                if t is not None:
                    t.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await t
            with contextlib.suppress(Exception):
                await asyncio.to_thread(state.audit.sign_head)
            state.close()
            state.tracing.shutdown()

    routes: list[BaseRoute] = [
        Route("/graphql", graphql_endpoint, methods=["GET", "POST"]),
        Route("/graphiql/{name:str}", graphiql_asset, methods=["GET"]),  # GraphiQL's files (dev mode)
        Route("/oauth/token", token_endpoint, methods=["POST"]),
        Route("/.well-known/jwks.json", jwks_endpoint, methods=["GET"]),
        Route("/.well-known/oauth-authorization-server", authorization_server_metadata, methods=["GET"]),
        Route("/.well-known/audit-key.pem", audit_key_endpoint, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/livez", livez, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/audit/checkpoint", checkpoint_endpoint, methods=["GET"]),
        Route("/audit/receipt", receipt_endpoint, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
        WebSocketRoute("/graphql", alert_socket),  # the alert subscription, graphql-transport-ws only
        Mount("/console", console_app(state)),  # the privacy officers' console (docs/console.md)
    ]
    paths = [r.path for r in routes if isinstance(r, Route | WebSocketRoute | Mount)]
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(
                MetricsMiddleware,
                metrics=state.metrics,
                routes=paths,
                mounts=[r.path for r in routes if isinstance(r, Mount)],
            )
        ],
        lifespan=lifespan,
    )
    app.state.hub = state
    state.tracing.instrument_app(app)  # OpenTelemetry, when configured (hub/tracing.py)
    return app
