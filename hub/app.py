"""``create_app(settings)``: routes, start-up checks and the shared state of one hub process."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ipaddress
import logging
import math
import time
import uuid
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, unquote

import anyio
from graphql import GraphQLSchema, specified_rules
from graphql.validation import NoSchemaIntrospectionCustomRule
from joserfc import jws
from joserfc.errors import JoseError
from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from hub.audit.log import AuditLog
from hub.audit.receipts import checkpoint_endpoint, receipt_endpoint
from hub.audit.witness import parse_witnesses
from hub.auth.actor import Actor
from hub.auth.attempts import FailedAttempts
from hub.auth.external import ExternalIssuer
from hub.auth.hop import HopSigner
from hub.auth.keys import KeyRing
from hub.auth.tokens import issue_token, verify_token
from hub.clock import Clock, china_date, system_clock
from hub.db import hub_engine, upgrade
from hub.departments import DEPARTMENTS, SOURCE_DEPARTMENTS
from hub.errors import AuditUnavailable, AuthenticationError, BodyTimeout, BodyTooLarge
from hub.federation.remote import RemoteHubs
from hub.gateway import Exchange, ValidDocuments, audit_body, handle, read_body
from hub.limits import Limits
from hub.lookups import MissLedger
from hub.monitor.alerts import AlertStore
from hub.monitor.reader import Monitor
from hub.monitor.rules import RuleSet, load_rules
from hub.policy.loader import CatalogEntry, load_policies
from hub.policy.model import PolicySet
from hub.schema import build_schema, catalog_of
from hub.settings import Settings
from hub.sources import Source
from hub.sources.sql import SqlSource
from hub.sources.subgraph import SubgraphSource, check_subgraphs, is_subgraph_url
from hub.store.authorizations import AuthorizationStore
from hub.store.clients import ClientStore
from hub.upstream.breaker import CircuitBreaker

log = logging.getLogger("hub")


def load_policy_set(
    settings: Settings, catalog: dict[str, CatalogEntry] | None = None, clock: Clock = system_clock
) -> PolicySet:
    if catalog is None:
        catalog = catalog_of(build_schema())
    return load_policies(settings.policy_dir, DEPARTMENTS, catalog, china_date(clock()))


class HubState:
    """Everything one hub process shares between requests. Built at start-up; refuses to start if invalid."""

    def __init__(self, settings: Settings, clock: Clock = system_clock) -> None:
        self.settings = settings
        self.clock = clock
        self.schema = build_schema()
        self.graphql_schema: GraphQLSchema = self.schema._schema
        self.catalog = catalog_of(self.schema)
        self.policy = load_policy_set(settings, self.catalog, clock)
        # monitoring rules (policies/monitoring/): refused at start-up if invalid or not granted to MON
        self.rules: RuleSet = load_rules(
            settings.policy_dir / "monitoring", self.graphql_schema, self.catalog, self.policy, china_date(clock())
        )
        # Validation rules, fixed for the process: introspection is refused outside development mode.
        self.validation_rules = list(specified_rules) + ([] if settings.dev_mode else [NoSchemaIntrospectionCustomRule])
        self.documents = ValidDocuments()  # parsed and validated documents by query text
        self.limits = Limits(
            settings.max_depth,
            settings.max_aliases,
            settings.max_root_fields,
            settings.max_directives,
            settings.max_cost,
        )
        self.keys = KeyRing(settings.key_dir)
        self.keys.ensure()
        self.perturbation_key = self.keys.perturbation_key()  # statistics' cell keys (hub/schema/statistics.py)
        upgrade(settings.database_url)
        self.engine = hub_engine(settings.database_url, settings.db_busy_timeout)
        self.clients = ClientStore(self.engine, clock)
        self.authorizations = AuthorizationStore(self.engine, clock)
        self.audit = AuditLog(
            self.engine,
            self.keys.audit_private_key(),
            self.keys.pseudonym_key(),
            clock=clock,
            origin=settings.audit_origin,
            witnesses=parse_witnesses(settings.witnesses),
            digest_key=self.keys.digest_key(),
        )
        self.misses = MissLedger(self.engine, settings.lookup_miss_budget, settings.lookup_miss_window, clock)
        self.alerts = AlertStore(self.engine, clock)
        self.monitor = Monitor(self)  # the change-event reader; runs in the background only with HUB_MONITOR=1
        self.external = (
            ExternalIssuer(settings.external_jwks_url, settings.external_issuer) if settings.external_jwks_url else None
        )
        # Departments: SQL databases, or GraphQL subgraphs (http(s) URLs); remote regions' hubs (federation).
        signer = HopSigner(self.keys, settings.issuer)
        self.sources: dict[str, Source] = {}
        for code in SOURCE_DEPARTMENTS:
            url = settings.department_url(code)
            breaker = CircuitBreaker(settings.breaker_threshold, settings.breaker_reset)
            if is_subgraph_url(url):
                self.sources[code] = SubgraphSource(
                    code,
                    url,
                    signer=signer,
                    timeout=settings.source_timeout,
                    breaker=breaker,
                    max_bytes=settings.source_max_bytes,
                    predicates_in_hub=code in {x.strip() for x in settings.predicates_in_hub.split(",")},
                )
            else:
                self.sources[code] = SqlSource(code, url, timeout=settings.source_timeout, breaker=breaker)
        check_subgraphs(self.sources.values())  # a schema mismatch refuses to start, naming the field
        self.remotes = RemoteHubs.from_settings(settings)
        # token endpoint: failed client authentications per client id and per address (hub/auth/attempts.py)
        self.failed_by_client = FailedAttempts(settings.token_failures_per_client, settings.token_failure_window)
        self.failed_by_address = FailedAttempts(settings.token_failures_per_address, settings.token_failure_window)

    async def authenticate(self, token: str) -> Actor:
        s = self.settings
        external = None
        if self.external is not None:
            kid = self._kid(token)
            if not self._hub_kid(kid) and self.external.should_refresh(kid):
                await anyio.to_thread.run_sync(self.external.refresh)
            external = self.external.trusted()
        claims = verify_token(self.keys, token, issuer=s.issuer, audience=s.audience, external=external)
        try:
            client = await anyio.to_thread.run_sync(self.clients.get, str(claims["client_id"]))
        except SQLAlchemyError:
            log.exception("client registry lookup failed")
            raise AuditUnavailable(
                "the hub's database is unavailable; no request can be served", code="HUB_DB_UNAVAILABLE"
            ) from None
        if client is None:
            raise AuthenticationError("the token's client is not registered", code="CLIENT_UNKNOWN")
        if not client.active:
            raise AuthenticationError(f"client {client.client_id} is disabled", code="CLIENT_DISABLED")
        # The registry is the authority: a purpose removed since the token was issued no longer counts.
        # External identity providers do not know purposes: the registry's apply.
        claimed = claims.get("purposes")
        purposes = client.purposes if claimed is None else tuple(p for p in claimed if p in client.purposes)
        return Actor(
            client_id=client.client_id,
            department=client.department,
            area=client.area,
            purposes=purposes,
            roles=client.roles,
            token_id=str(claims.get("jti", "")),
        )

    @staticmethod
    def _kid(token: str) -> object:
        try:
            return jws.extract_compact(token.encode("ascii")).headers().get("kid")
        except (JoseError, ValueError, UnicodeError):
            return None  # malformed: verify_token will say so

    def _hub_kid(self, kid: object) -> bool:
        return kid is None or any(k.kid == kid for k in self.keys.token_keys())

    async def record_token_failure(self, client_id: str, address: str, reason: str, status: int) -> None:
        """One audit entry for a refused client authentication (the secret is never recorded). The claimed
        client id is kept only when it is a registered client's; anything else is recorded as unknown."""
        ex = Exchange(request_id=uuid.uuid4().hex, started=time.perf_counter())
        ex.reasons, ex.status = [reason], status
        body = audit_body(ex)
        known = await anyio.to_thread.run_sync(self.clients.get, client_id)
        body.update(route="/oauth/token", client_id=known.client_id if known else "", address=_address(address))
        if known is not None:
            body.update(department=known.department, area=known.area)
        else:
            body["reasons"] = [reason, "CLIENT_UNKNOWN"]
        with contextlib.suppress(AuditUnavailable):  # the answer is a refusal either way; nothing is released
            await self.audit.append(body, [])

    def close(self) -> None:
        for source in self.sources.values():
            source.close()
        self.engine.dispose()


def _address(host: str) -> str:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return ""


def _oauth_error(error: str, description: str, status: int = 400) -> JSONResponse:
    headers = {"cache-control": "no-store"}
    if status == 401:
        headers["www-authenticate"] = 'Basic realm="hub"'
    return JSONResponse({"error": error, "error_description": description}, status_code=status, headers=headers)


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
    requested = str(form.get("scope", "")).split()
    purposes = list(client.purposes)
    if requested:
        unknown = [p for p in requested if p not in client.purposes]
        if unknown:
            return _oauth_error("invalid_scope", f"client is not registered for {', '.join(unknown)}")
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


async def audit_key_endpoint(request: Request) -> Response:
    state: HubState = request.app.state.hub
    return PlainTextResponse(state.keys.audit_public_path.read_text(), media_type="application/x-pem-file")


async def healthz(request: Request) -> Response:
    state: HubState = request.app.state.hub
    return JSONResponse({"status": "ok", "departments": sorted(state.sources), "grants": len(state.policy.grants)})


GRAPHIQL = """<!doctype html><html><head><title>hub · GraphiQL</title>
<link rel="stylesheet" href="https://unpkg.com/graphiql@3/graphiql.min.css"/></head>
<body style="margin:0"><div id="g" style="height:100vh"></div>
<script src="https://unpkg.com/react@18/umd/react.production.min.js"></script>
<script src="https://unpkg.com/react-dom@18/umd/react-dom.production.min.js"></script>
<script src="https://unpkg.com/graphiql@3/graphiql.min.js"></script>
<script>ReactDOM.createRoot(document.getElementById('g')).render(React.createElement(GraphiQL,{
fetcher:GraphiQL.createFetcher({url:'/graphql'}),defaultEditorToolsVisibility:true,
headers:'{"Authorization":"Bearer <token>","X-Hub-Purpose":"MON","X-Hub-Officer":"demo-officer"}'}));</script>
</body></html>"""


async def graphql_endpoint(request: Request) -> Response:
    state: HubState = request.app.state.hub
    if request.method == "GET":
        if state.settings.dev_mode:
            return HTMLResponse(GRAPHIQL)
        return JSONResponse(
            {"data": None, "errors": [{"message": "use POST", "extensions": {"code": "METHOD_NOT_ALLOWED"}}]},
            status_code=405,
        )
    return await handle(state, request)


def create_app(
    settings: Settings | None = None, *, sign_interval: float = 10.0, clock: Clock = system_clock
) -> Starlette:
    settings = settings or Settings.from_env()
    state = HubState(settings, clock)

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

    app = Starlette(
        routes=[
            Route("/graphql", graphql_endpoint, methods=["GET", "POST"]),
            Route("/oauth/token", token_endpoint, methods=["POST"]),
            Route("/.well-known/jwks.json", jwks_endpoint, methods=["GET"]),
            Route("/.well-known/audit-key.pem", audit_key_endpoint, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/audit/checkpoint", checkpoint_endpoint, methods=["GET"]),
            Route("/audit/receipt", receipt_endpoint, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    app.state.hub = state
    return app
