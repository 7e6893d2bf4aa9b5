"""What one hub process shares between requests (``HubState``), built from the settings at start-up: schema,
policies, keys, the hub database and its stores, the audit log, the department sources and remote hubs."""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import time
import uuid

import anyio
from graphql import GraphQLSchema, specified_rules
from graphql.validation import NoSchemaIntrospectionCustomRule
from joserfc import jws
from joserfc.errors import JoseError
from opentelemetry.sdk.trace.export import SpanExporter
from sqlalchemy.exc import SQLAlchemyError

from hub.audit.archive import archived_leaves
from hub.audit.log import AuditLog
from hub.audit.witness import parse_witnesses
from hub.auth.actor import Actor
from hub.auth.attempts import FailedAttempts
from hub.auth.external import ExternalIssuer
from hub.auth.hop import HopSigner
from hub.auth.keys import KeyRing
from hub.auth.tokens import VerifiedTokens, verify_token
from hub.clock import Clock, china_date, system_clock
from hub.db import open_hub_db
from hub.departments import SOURCE_DEPARTMENTS
from hub.errors import AuditUnavailable, AuthenticationError
from hub.federation.remote import RemoteHubs
from hub.gateway import Exchange, ValidDocuments, audit_body
from hub.limits import Limits
from hub.lookups import MissLedger
from hub.metrics import Metrics
from hub.monitor.alerts import AlertStore
from hub.monitor.feed import AlertFeed
from hub.monitor.reader import Monitor
from hub.monitor.rules import RuleSet, load_rules
from hub.policy.load import load_policy_set
from hub.ratelimit import RateLimiter
from hub.schema import build_schema, catalog_of, graphql_schema
from hub.settings import Settings
from hub.sources import Source
from hub.sources.contract import is_subgraph_url
from hub.sources.sql import SqlSource
from hub.sources.subgraph import SubgraphSource, check_subgraphs
from hub.store.authorizations import AuthorizationStore
from hub.store.clients import Client, ClientStore
from hub.store.operations import OperationStore
from hub.store.prefetch import PREFETCHED, Prefetched
from hub.tracing import Tracing
from hub.upstream.breaker import CircuitBreaker

log = logging.getLogger("hub")


def build_sources(settings: Settings, signer: HopSigner) -> dict[str, Source]:
    """One source per department: a SQL database, or a GraphQL subgraph (an http(s) URL), each with its own
    circuit breaker. A subgraph whose schema does not match the contract refuses to start, naming the field."""
    sources: dict[str, Source] = {}
    for code in SOURCE_DEPARTMENTS:
        url = settings.department_url(code)
        breaker = CircuitBreaker(settings.breaker_threshold, settings.breaker_reset)
        if is_subgraph_url(url):
            sources[code] = SubgraphSource(
                code,
                url,
                signer=signer,
                timeout=settings.source_timeout,
                breaker=breaker,
                max_bytes=settings.source_max_bytes,
                predicates_in_hub=code in {x.strip() for x in settings.predicates_in_hub.split(",")},
            )
        else:
            sources[code] = SqlSource(code, url, timeout=settings.source_timeout, breaker=breaker)
    check_subgraphs(sources.values())  # a schema mismatch refuses to start, naming the field
    return sources


class HubState:
    """Everything one hub process shares between requests. Built at start-up; refuses to start if invalid."""

    def __init__(
        self, settings: Settings, clock: Clock = system_clock, span_exporter: SpanExporter | None = None
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.schema = build_schema()
        self.graphql_schema: GraphQLSchema = graphql_schema(self.schema)
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
        self.engine = open_hub_db(settings.database_url, settings.db_busy_timeout)
        self.clients = ClientStore(self.engine, clock, settings.client_secret_scrypt_n)
        self.verified_tokens = VerifiedTokens()  # signatures checked once per token and key set (hub/auth/tokens.py)
        self.authorizations = AuthorizationStore(self.engine, clock)
        self.operations = OperationStore(self.engine, clock)  # approved operations (hub/operations.py)
        # rate limits shared by every process on this database (hub/ratelimit.py): /graphql per client, and the
        # token endpoint per address and per client
        self.graphql_limit = RateLimiter(self.engine, settings.rate_limit, settings.rate_burst, clock)
        self.token_limit = RateLimiter(self.engine, settings.token_rate_limit, settings.rate_burst, clock)
        audit_key = self.keys.audit_private_key()
        self.audit = AuditLog(
            self.engine,
            audit_key,
            self.keys.pseudonym_key(),
            clock=clock,
            origin=settings.audit_origin,
            witnesses=parse_witnesses(settings.witnesses),
            digest_key=self.keys.digest_key(),
            archived=lambda: archived_leaves(self.engine, audit_key.public_key()),
        )
        self.misses = MissLedger(self.engine, settings.lookup_miss_budget, settings.lookup_miss_window, clock)
        self.alerts = AlertStore(self.engine, clock)
        self.monitor = Monitor(self)  # the change-event reader; runs in the background only with HUB_MONITOR=1
        self.alert_feed = AlertFeed(self.alerts, settings.monitor_interval)  # alert subscriptions: hub/monitor/ws.py
        self.monitor.listeners.append(self.alert_feed.announce)
        self.external = (
            ExternalIssuer(settings.external_jwks_url, settings.external_issuer) if settings.external_jwks_url else None
        )
        # Departments: SQL databases, or GraphQL subgraphs (http(s) URLs); remote regions' hubs (federation).
        self.sources = build_sources(settings, HopSigner(self.keys, settings.issuer))
        self.remotes = RemoteHubs.from_settings(settings)
        # Prometheus metrics, this process's own registry (hub/metrics.py, docs/operations.md)
        self.metrics = Metrics()
        for code, source in self.sources.items():
            source.breaker.observe = self.metrics.department_observer(code)
        self.metrics.watch(lambda: self.sources, self.audit.size)
        # OpenTelemetry traces, this app's own provider (hub/tracing.py): the hub database and SQL departments
        self.tracing = Tracing(settings.otlp_endpoint, span_exporter)
        sql = [s.engine for s in self.sources.values() if isinstance(s, SqlSource)]
        self.tracing.instrument_engines([self.engine, *sql])
        if self.tracing.enabled:  # a client span per department subgraph POST (hub/tracing.py, traced_post)
            for source in self.sources.values():
                if isinstance(source, SubgraphSource):
                    source.tracer = self.tracing.provider.get_tracer("hub.upstream")
        if self.tracing.enabled:  # traced statements are SQLAlchemy's: no inline reads (hub/sources/sql.py)
            self.clients.inline = self.operations.inline = self.misses.inline = None
            self.audit.raw_sqlite = False  # its appends through SQLAlchemy too (hub/audit/log.py)
            for source in self.sources.values():
                if isinstance(source, SqlSource):
                    source.inline = None
        # token endpoint: failed client authentications per client id and per address (hub/auth/attempts.py)
        self.failed_by_client = FailedAttempts(settings.token_failures_per_client, settings.token_failure_window)
        self.failed_by_address = FailedAttempts(settings.token_failures_per_address, settings.token_failure_window)

    def _read_together(self, client_id: str) -> tuple[Client | None, Prefetched]:
        with self.engine.connect() as conn:
            client = self.clients.get(client_id, conn)
            reads = Prefetched(client_id, self.operations.mode(client_id, conn), self.misses.spent(client_id, conn))
        return client, reads

    async def _client(self, client_id: str) -> Client | None:
        """The client's row, read on every request. On PostgreSQL (nothing read inline) with this request's
        operations mode and lookup-miss budget, in one worker-thread hand-off (hub/store/prefetch.py)."""
        PREFETCHED.set(None)
        if self.clients.inline is not None:
            return await self.clients.aget(client_id)
        client, reads = await anyio.to_thread.run_sync(self._read_together, client_id)
        PREFETCHED.set(reads)
        return client

    async def authenticate(self, token: str) -> Actor:
        s = self.settings
        external = None
        if self.external is not None:
            kid = self._kid(token)
            if not self._hub_kid(kid) and self.external.should_refresh(kid):
                await anyio.to_thread.run_sync(self.external.refresh)
            external = self.external.trusted()
        claims = verify_token(
            self.keys, token, issuer=s.issuer, audience=s.audience, external=external, cache=self.verified_tokens
        )
        try:
            client = await self._client(str(claims["client_id"]))
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
            outside_scope=tuple(p for p in client.purposes if p not in purposes),
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
        self.graphql_limit.close()
        self.token_limit.close()
        self.clients.close()
        for reader in (self.operations.inline, self.misses.inline):
            if reader is not None:
                reader.close()
        self.engine.dispose()


def _address(host: str) -> str:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return ""
