"""Target (1) of the overhead benchmark: the hub's own schema and resolvers served by plain strawberry.

Same types and resolvers (``hub.schema.build_schema()``), same department SQLite files through the same
``SqlSource`` and the same per-request DataLoaders (``HubContext``), with a fixed actor and purpose, the
row scope the hub's plan would give that actor (``330113``), and no household-authorization requirement.
What it leaves out is exactly the hub's own work per request: no token check, no client lookup, no query
limits, no policy plan, no audit entry.

Two endpoints, one process:

* ``POST /graphql``: ``strawberry.asgi.GraphQL``, what a plain strawberry service would run, with strawberry's
  own ``ParserCache`` and ``ValidationCache`` extensions (the hub keeps validated documents by query text too, so
  the baseline gets the same kind of cache: a repeated query text is neither parsed nor validated again);
* ``POST /bare``: a minimal Starlette endpoint calling graphql-core ``parse``/``validate``/``execute``
  the way the hub's gateway does, valid documents kept by query text (for reference: the floor under both).

Start with ``uvicorn --factory bench.plain_app:create_app``; ``BENCH_DATA_DIR`` names the folder holding
``departments/<code>.sqlite``.
"""

from __future__ import annotations

import json
import os
from datetime import date
from pathlib import Path
from typing import Any

from graphql import DocumentNode, ExecutionResult, execute, parse, validate
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from strawberry import Schema
from strawberry.asgi import GraphQL
from strawberry.extensions import ParserCache, ValidationCache
from strawberry.schema.config import StrawberryConfig

from hub.auth.actor import Actor
from hub.departments import SOURCE_DEPARTMENTS
from hub.policy.model import Purpose
from hub.schema.alerts import AlertSubscription
from hub.schema.build import Query
from hub.schema.context import HubContext
from hub.schema.mutations import Mutation
from hub.settings import Settings
from hub.sources.sql import SqlSource
from hub.upstream.breaker import CircuitBreaker

ACTOR = Actor(client_id="linping-ca", department="civil_affairs", area="330113", purposes=("CASE",))
PURPOSE = Purpose(
    id="CASE",
    name_zh="预警核实走访",
    name_en="Caseworker follow-up of an alert",
    legal_basis="bench",
    requires_case=True,
    requires_authorization=False,
    retention_days=1095,
)


def make_sources(data_dir: Path) -> dict[str, SqlSource]:
    settings = Settings(data_dir=data_dir)
    return {
        code: SqlSource(
            code,
            settings.department_url(code),
            timeout=settings.source_timeout,
            breaker=CircuitBreaker(settings.breaker_threshold, settings.breaker_reset),
        )
        for code in SOURCE_DEPARTMENTS
    }


def make_context(sources: dict[str, SqlSource], area_prefix: str | None = "330113") -> HubContext:
    return HubContext(
        actor=ACTOR,
        purpose=PURPOSE,
        case_ref="CASE-2026-0001",
        officer="officer-bench",
        area_prefix=area_prefix,
        sources=sources,
        today=date.today(),
        authorizations=None,
        max_batch=1000,
    )


class PlainGraphQL(GraphQL):  # type: ignore[type-arg]
    def __init__(self, schema: Any, sources: dict[str, SqlSource]) -> None:
        super().__init__(schema, graphql_ide=None, allow_queries_via_get=False)
        self.sources = sources

    async def get_context(self, request: Any, response: Any) -> HubContext:
        return make_context(self.sources)


CACHE_SIZE = 512  # documents kept, as the hub's own cache (hub/gateway.py ``ValidDocuments``)


def cached_schema() -> Schema:
    """The hub's schema (the same types as ``hub.schema.build_schema``) with strawberry's parser and validation
    caches: the fair baseline for a server that keeps validated documents."""
    return Schema(
        query=Query,
        mutation=Mutation,
        subscription=AlertSubscription,
        config=StrawberryConfig(disable_field_suggestions=True),
        extensions=[lambda: ParserCache(maxsize=CACHE_SIZE), lambda: ValidationCache(maxsize=CACHE_SIZE)],
    )


def create_app() -> Starlette:
    data_dir = Path(os.environ.get("BENCH_DATA_DIR", "bench/results/data"))
    schema = cached_schema()
    graphql_schema = schema._schema
    sources = make_sources(data_dir)
    documents: dict[str, DocumentNode] = {}  # valid documents by query text, as the hub and strawberry keep them

    async def bare(request: Request) -> Response:
        payload = json.loads(await request.body())
        document = documents.get(payload["query"])
        if document is None:
            document = parse(payload["query"])
            errors = validate(graphql_schema, document)
            if errors:
                return JSONResponse({"data": None, "errors": [e.formatted for e in errors]}, status_code=400)
            if len(documents) < CACHE_SIZE:
                documents[payload["query"]] = document
        result = execute(
            graphql_schema,
            document,
            context_value=make_context(sources),
            variable_values=payload.get("variables"),
            operation_name=payload.get("operationName"),
        )
        if not isinstance(result, ExecutionResult):
            result = await result
        body: dict[str, Any] = {"data": result.data}
        if result.errors:
            body["errors"] = [e.formatted for e in result.errors]
        return JSONResponse(body)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route("/bare", bare, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/graphql", PlainGraphQL(schema, sources), methods=["POST"]),
        ]
    )
