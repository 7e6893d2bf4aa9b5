"""OpenTelemetry traces (docs/operations.md, "Traces"), exported over OTLP/HTTP when ``HUB_OTLP_ENDPOINT`` is set.

One tracer provider per app (never the global one), so two hubs in one process trace apart. Instrumented:
Starlette (a server span per HTTP request), the hub database's and the SQL departments' SQLAlchemy engines (a
span per statement: the statement with its ``?``/``%(name)s`` placeholders, never the bound values), the
department subgraph calls (a client span per POST, ``traced_post``, carrying the W3C ``traceparent`` to the
subgraph), httpx (remote-hub calls; process-wide, so only when exporting), and one span per gateway step, made
after the request from the times the gateway marked (``hub.step.authenticate``, ``hub.step.plan``, ...).

No span attribute holds a variable's value, a resident's ID number, an officer, a case reference or a query
string: the server span's URL attributes are the path alone, and the hub's own attributes are the purpose, the
consumer's department, the decision and the status."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from sqlalchemy import Engine
from starlette.applications import Starlette

URL_ATTRIBUTES = ("http.url", "http.target", "url.full", "url.path")


def _path_only(span: Any, scope: dict[str, Any]) -> None:
    """The server span's URL attributes without the query string (it could name a resident)."""
    if span is None or not span.is_recording():
        return
    path = scope.get("path", "")
    for key in URL_ATTRIBUTES:
        span.set_attribute(key, path)
    span.set_attribute("url.query", "")


async def traced_post(
    tracer: Any, department: str, client: Any, body: Any, headers: dict[str, str], max_bytes: int
) -> tuple[int, Any]:
    """One department subgraph POST (``hub.upstream.http1.JsonPoster``) as a client span: method, server, path
    (never the query string or body) and status; a failure marks the span as an error. The trace context goes to
    the subgraph in ``traceparent``."""
    from opentelemetry.propagate import inject
    from opentelemetry.trace import SpanKind

    attributes = {
        "http.request.method": "POST",
        "server.address": client.host,
        "server.port": client.port,
        "url.path": client.path.split("?", 1)[0],
        "hub.department": department,
    }
    with tracer.start_as_current_span("POST", kind=SpanKind.CLIENT, attributes=attributes) as span:
        inject(headers)
        status, payload = await client.post(body, headers, max_bytes)
        span.set_attribute("http.response.status_code", status)
        return int(status), payload


class Tracing:
    def __init__(self, endpoint: str = "", exporter: SpanExporter | None = None) -> None:
        self.endpoint = endpoint
        self.enabled = bool(endpoint) or exporter is not None
        self.provider = TracerProvider(resource=Resource.create({"service.name": "hub"}))
        if exporter is not None:
            self.provider.add_span_processor(SimpleSpanProcessor(exporter))
        elif endpoint:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            self.provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
        self.tracer = self.provider.get_tracer("hub")

    def instrument_app(self, app: Starlette) -> None:
        if not self.enabled:
            return
        from opentelemetry.instrumentation.starlette import StarletteInstrumentor

        StarletteInstrumentor.instrument_app(app, tracer_provider=self.provider, server_request_hook=_path_only)
        if self.endpoint:  # httpx is instrumented process-wide: only in a process that exports
            from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

            HTTPXClientInstrumentor().instrument(tracer_provider=self.provider)

    def instrument_engines(self, engines: Sequence[Engine]) -> None:
        if not self.enabled:
            return
        from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
        from opentelemetry.metrics import NoOpMeterProvider

        usage = NoOpMeterProvider().get_meter("hub").create_up_down_counter("db.client.connections.usage")
        tracer = self.provider.get_tracer("opentelemetry.instrumentation.sqlalchemy")
        for engine in engines:
            EngineTracer(tracer, engine, usage)  # type: ignore[no-untyped-call]

    def record(self, marks: Sequence[tuple[str, int]], attributes: dict[str, str | int]) -> None:
        """The gateway's steps as child spans of the current (server) span, from ``marks``: (step, time it
        ended, in ns), the first being the start; and the request's attributes on the server span."""
        if not self.enabled:
            return
        current = trace.get_current_span()
        if current.is_recording():
            current.set_attributes(attributes)
        for (_, start), (step, end) in zip(marks, marks[1:], strict=False):
            span = self.tracer.start_span(f"hub.step.{step}", start_time=start)
            span.end(end_time=end)

    def shutdown(self) -> None:
        self.provider.shutdown()
