"""Prometheus metrics (``GET /metrics``, docs/operations.md). One registry per app (``HubState.metrics``), never
prometheus_client's global one, so two hubs in one process (the tests, the demo) count apart.

Labels are bounded and name no person: routes are the app's route paths (``other`` for anything else), purposes
only registered ones, departments the registry's, coordinates the schema's, decisions and outcomes fixed words.
No resident ID, officer name, case reference, client id or request id is ever a label value."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hub.logs import REQUEST_ID

if TYPE_CHECKING:
    from hub.sources import Source

access = logging.getLogger("hub.access")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# request latencies: from a cached allowed lookup (milliseconds) to the source timeout and beyond
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
AUDIT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)
BREAKER_STATES = ("closed", "half-open", "open")


class _Live(Collector):
    """Values read when scraped: each department's breaker state and the audit tree's size."""

    def __init__(self, sources: Callable[[], dict[str, Source]], tree_size: Callable[[], int]) -> None:
        self.sources, self.tree_size = sources, tree_size

    def collect(self) -> Iterable[Metric]:
        breaker = GaugeMetricFamily(
            "hub_breaker_state",
            "1 for the state each department's circuit breaker is in",
            labels=["department", "state"],
        )
        failures = GaugeMetricFamily(
            "hub_breaker_failures", "Consecutive failures counted by each department's breaker", labels=["department"]
        )
        for code, source in sorted(self.sources().items()):
            now = source.breaker.state
            for state in BREAKER_STATES:
                breaker.add_metric([code, state], 1.0 if state == now else 0.0)
            failures.add_metric([code], float(source.breaker.failures))
        yield breaker
        yield failures
        try:
            size = self.tree_size()
        except Exception:  # noqa: BLE001 (an unreachable database: the gauge is left out, /readyz says why)
            return
        yield GaugeMetricFamily("hub_audit_tree_size", "Entries in the audit log's Merkle tree", value=size)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.http_requests = Counter(
            "hub_http_requests", "HTTP requests answered, by route", ["route", "method", "status"], registry=r
        )
        self.http_latency = Histogram(
            "hub_http_request_duration_seconds",
            "Time to answer an HTTP request, by route",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.graphql_requests = Counter(
            "hub_graphql_requests",
            "GraphQL requests, by purpose, consumer department, decision and HTTP status",
            ["route", "purpose", "department", "decision", "status"],
            registry=r,
        )
        self.graphql_latency = Histogram(
            "hub_graphql_request_duration_seconds",
            "Time from receiving a GraphQL request to its committed audit entry, by purpose and decision",
            ["purpose", "decision"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.denials = Counter(
            "hub_policy_denials",
            "Field coordinates refused by the policy plan, by consumer department, purpose and coordinate",
            ["department", "purpose", "coordinate"],
            registry=r,
        )
        self.audit_append = Histogram(
            "hub_audit_append_duration_seconds",
            "Time for an audit entry to be appended and committed (group commit included), by outcome",
            ["outcome"],
            buckets=AUDIT_BUCKETS,
            registry=r,
        )
        self.upstream = Histogram(
            "hub_department_call_duration_seconds",
            "Time of each call to a department (SQL statement or subgraph request), by department and outcome",
            ["department", "outcome"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )

        self.unapproved = Counter(
            "hub_unapproved_documents",
            "Documents sent as text that are not approved for the client and purpose, by the client's mode "
            "(log: run and logged; require: refused)",
            ["department", "purpose", "mode"],
            registry=r,
        )

    def watch(self, sources: Callable[[], dict[str, Source]], tree_size: Callable[[], int]) -> None:
        self.registry.register(_Live(sources, tree_size))

    def department_observer(self, code: str) -> Callable[[str, float], None]:
        """What a department's breaker calls after each guarded call (hub/upstream/guard.py)."""

        def observe(outcome: str, seconds: float) -> None:
            self.upstream.labels(code, outcome).observe(seconds)

        return observe

    def graphql_answered(
        self, purpose: str, department: str, decision: str, status: int, seconds: float, denied: Iterable[str]
    ) -> None:
        """One GraphQL request, once its audit entry is committed (or could not be)."""
        purpose, department = purpose or "none", department or "none"
        self.graphql_requests.labels("/graphql", purpose, department, decision, str(status)).inc()
        self.graphql_latency.labels(purpose, decision).observe(seconds)
        for coordinate in denied:
            self.denials.labels(department, purpose, coordinate).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Counts every HTTP request by route (the app's route paths; under a mounted app such as ``/console``, the
    mount and the route template that answered, e.g. ``/console/entries/{seq}``; ``other`` for anything else),
    method and status, times it, and writes its access log line (``hub.access``, with the request id when the endpoint
    bound one; the path is logged as its route, never with its query string). Pure ASGI, so it runs in the
    request's own task and context."""

    METHODS = frozenset({"GET", "POST", "HEAD", "OPTIONS", "PUT", "DELETE", "PATCH"})

    def __init__(self, app: ASGIApp, metrics: Metrics, routes: Iterable[str], mounts: Iterable[str] = ()) -> None:
        self.app, self.metrics, self.routes = app, metrics, frozenset(routes)
        self.mounts = tuple(mounts)

    def route_of(self, scope: Scope) -> str:
        """The label for a request that has been answered: its route's path, never the path itself (a path may
        carry an ID number; a route template does not)."""
        path: str = scope["path"]
        if path in self.routes:
            return path
        route = scope.get("route")  # the router sets the route that matched, the innermost one under a mount
        template = getattr(route, "path", None)
        for mount in self.mounts:
            if path.startswith(mount + "/") and isinstance(template, str) and template:
                return mount + template
        return "other"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope["method"] if scope["method"] in self.METHODS else "other"
        status = 500  # unless the app starts a response

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        started = time.perf_counter()
        bound = REQUEST_ID.set("")  # the GraphQL endpoint binds its request id (hub/logs.py)
        try:
            await self.app(scope, receive, sending)
        finally:
            elapsed = time.perf_counter() - started
            route = self.route_of(scope)
            self.metrics.http_requests.labels(route, method, str(status)).inc()
            self.metrics.http_latency.labels(route).observe(elapsed)
            http = {"method": method, "route": route, "status": status, "duration_ms": round(elapsed * 1000, 1)}
            access.info("%s %s %d", method, route, status, extra={"http": http})
            REQUEST_ID.reset(bound)
