"""A demo department subgraph: one department's tables served as an Apollo Federation subgraph (strawberry).

    python -m hub.demo.subgraph --db .hub-demo/departments/education.sqlite --port 8001 \\
        --jwks http://127.0.0.1:8000/.well-known/jwks.json

It stands in for a department that runs its own GraphQL service: it reads its own SQLite file (read-only),
serves ``Person @key(fields: "idNumber") { enrolment: [EnrolmentRow!]! }`` (the contract in
``hub.sources.contract``), and answers ``_entities`` in one SQL statement per table per request.

It applies its own checks to every entity request: a hop token signed by the hub (ES256, ``typ`` at+jwt,
``iss`` the hub, ``aud`` this department, at most 60 s of lifetime) that names the original actor (``act``)
and purpose, is bound to this very request body (``req_sha256``) and is used only once (``jti``); and it
answers predicates itself (``<table>Matches(where:)``, yes/no), and keeps its own log, one JSON line on
stdout per request: who asked (the hub, on behalf of which client, department and officer), why (purpose,
case), for what and how many residents.
``_service { sdl }`` alone is answered without a token: the schema describes no resident.

``--debug`` adds ``GET /_last_hop`` (the last verified claims and request counters) for tests;
``--drop-field stage`` serves a schema without that column (to see the hub refuse it at start-up).
"""

import argparse
import json
import os
import sys
import threading
import time
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any, Optional

import anyio
import httpx
import strawberry
from graphql import FieldNode, GraphQLError, InlineFragmentNode, OperationDefinitionNode, Visitor, parse, visit
from joserfc.jwk import KeySet
from sqlalchemy import Engine, Table, select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from strawberry.dataloader import DataLoader

from hub.auth.hop import HopVerifier
from hub.departments import DEPARTMENTS, OUTBOXES
from hub.errors import AuthenticationError
from hub.sources.contract import (
    ENTITY_KEYS,
    FEED_FIELD,
    FEED_MAX,
    camel,
    column_type,
    condition_from_json,
    matches_field,
    row_type_name,
)
from hub.sources.sql import readonly_engine

REFRESH_EVERY = 10.0


# -- the schema, derived from the department's tables ---------------------------------------------------------


def _python_type(column: Any) -> Any:
    py = column_type(column).python
    return Optional[py] if column.nullable else py  # noqa: UP045 (a runtime type for strawberry)


def _row_class(table: Table, drop: set[str]) -> Any:
    annotations: dict[str, Any] = {}
    namespace: dict[str, Any] = {}
    for c in table.columns:
        if c.name in drop:
            continue
        annotations[c.name] = _python_type(c)
        namespace[c.name] = strawberry.field(name=camel(c.name))
    cls = type(row_type_name(table), (), {"__annotations__": annotations, **namespace})
    return strawberry.type(cls, name=row_type_name(table), description=f"One row of the {table.name} table.")


def _loader(info: strawberry.Info, engine: Engine, table: Table, key: str) -> DataLoader[str, list[Any]]:
    loaders: dict[str, DataLoader[str, list[Any]]] = info.context["loaders"]
    name = f"{table.name}.{key}"
    if name not in loaders:

        async def load(keys: list[str]) -> list[list[Any]]:
            def run() -> dict[str, list[Any]]:
                out: dict[str, list[Any]] = {}
                with engine.connect() as conn:
                    for row in conn.execute(select(table).where(table.c[key].in_(keys))):
                        out.setdefault(row._mapping[key], []).append(row)
                return out

            found = await anyio.to_thread.run_sync(run)
            info.context["residents"] += len(keys)
            return [found.get(k, []) for k in keys]

        loaders[name] = DataLoader(load_fn=load)
    return loaders[name]


def _table_resolver(engine: Engine, table: Table, key: str, row_cls: Any, attr: str) -> Any:
    names = [n for n in row_cls.__annotations__]

    async def resolve(root: Any, info: strawberry.Info) -> list[row_cls]:
        rows = await _loader(info, engine, table, key).load(getattr(root, attr))
        return [row_cls(**{n: r._mapping[n] for n in names}) for r in rows]

    return resolve


def _matches_resolver(engine: Engine, table: Table, key: str, attr: str) -> Any:
    """``<table>Matches(where:)``: whether any of the entity's rows satisfies the hub's condition, answered here
    in one SQL statement per condition per request (the compared value never leaves the department)."""

    async def resolve(root: Any, info: strawberry.Info, where: str) -> bool:
        loaders: dict[str, DataLoader[str, bool]] = info.context["loaders"]
        name = f"{table.name}.{key}?{where}"
        if name not in loaders:
            try:
                condition = condition_from_json(table, where)
            except (ValueError, TypeError, KeyError) as exc:
                raise GraphQLError(f"the condition cannot be evaluated here: {exc}") from None

            async def load(keys: list[str]) -> list[bool]:
                def run() -> set[str]:
                    stmt = select(table.c[key]).where(table.c[key].in_(keys)).where(condition).distinct()
                    with engine.connect() as conn:
                        return {r[0] for r in conn.execute(stmt)}

                hits = await anyio.to_thread.run_sync(run)
                info.context["residents"] += len(keys)
                return [k in hits for k in keys]

            loaders[name] = DataLoader(load_fn=load)
        return await loaders[name].load(getattr(root, attr))

    return resolve


def build_schema(code: str, engine: Engine, drop: Sequence[str] = ()) -> strawberry.federation.Schema:
    metadata = DEPARTMENTS[code].metadata
    assert metadata is not None, f"department {code} has no tables"
    dropped = set(drop)
    entities: list[Any] = []
    for key, (entity, key_field) in ENTITY_KEYS.items():
        tables = [t for t in metadata.tables.values() if key in t.c]
        if not tables:
            continue
        namespace: dict[str, Any] = {"__annotations__": {key: str}, key: strawberry.field(name=key_field)}
        for table in tables:
            row_cls = _row_class(table, dropped)
            namespace[table.name] = strawberry.field(
                resolver=_table_resolver(engine, table, key, row_cls, key), name=camel(table.name)
            )
            namespace[f"{table.name}_matches"] = strawberry.field(
                resolver=_matches_resolver(engine, table, key, key),
                name=matches_field(table),
                description=f"Whether any {table.name} row of this entity satisfies `where` (the hub's condition).",
            )

        def resolve_reference(cls: Any, /, _key: str = key, _field: str = key_field, **rep: Any) -> Any:
            return cls(**{_key: str(rep[_field])})

        namespace["resolve_reference"] = classmethod(resolve_reference)
        cls = type(entity, (), namespace)
        entities.append(strawberry.federation.type(cls, name=entity, keys=[key_field]))

    def department() -> str:
        return code

    # every department subgraph declares these root fields and the feed's type: shareable, so a supergraph of
    # several departments composes (Apollo, Hive); the feed is the hub's, kept out of a supergraph's API
    described = strawberry.federation.field(
        resolver=department, description="The department this subgraph serves.", shareable=True
    )
    fields: dict[str, Any] = {"department": described}
    if code in OUTBOXES:
        fields["change_events"] = strawberry.federation.field(
            resolver=_feed_resolver(engine, OUTBOXES[code]),
            name=FEED_FIELD,
            description="This department's change events after a sequence number, oldest first (the outbox).",
            shareable=True,
            inaccessible=True,
        )
    query = strawberry.type(type("Query", (), fields))
    return strawberry.federation.Schema(query=query, types=entities)


@strawberry.federation.type(
    description="One change event: what changed for whom and when, never the data itself.", shareable=True
)
class ChangeEvent:
    seq: int
    id_number: str
    kind: str
    occurred_on: date
    recorded_at: str


def _feed_resolver(engine: Engine, outbox: Table) -> Any:
    """``changeEvents(after:, first:)``: the outbox rows after ``after``, one SQL statement."""

    async def resolve(info: strawberry.Info, after: int, first: int) -> list[ChangeEvent]:
        if not 1 <= first <= FEED_MAX:
            raise GraphQLError(f"first: from 1 to {FEED_MAX}")

        def run() -> list[ChangeEvent]:
            stmt = select(outbox).where(outbox.c.seq > after).order_by(outbox.c.seq).limit(first)
            with engine.connect() as conn:
                return [ChangeEvent(**dict(r._mapping)) for r in conn.execute(stmt)]

        found = await anyio.to_thread.run_sync(run)
        info.context["residents"] += len(found)
        return found

    return resolve


# -- hop-token verification --------------------------------------------------------------------------------------


class Verifier(HopVerifier):
    """The hub's hop-token verifier (``hub.auth.hop``) with the hub's JWKS, read from a file or fetched from a
    URL (re-read when a token names a key not seen yet, at most every few seconds)."""

    def __init__(self, jwks: str, issuer: str, audience: str) -> None:
        super().__init__(issuer, audience)
        self.jwks = jwks
        self.loaded_at = -REFRESH_EVERY

    async def refresh(self) -> None:
        if time.monotonic() - self.loaded_at < REFRESH_EVERY:
            return
        self.loaded_at = time.monotonic()
        try:
            if self.jwks.startswith(("http://", "https://")):
                async with httpx.AsyncClient(timeout=5) as client:
                    r = await client.get(self.jwks)
                    r.raise_for_status()
                    data = r.json()
            else:
                data = json.loads(Path(self.jwks).read_text())
            self.keyset = KeySet.import_key_set(data)
        except (httpx.HTTPError, OSError, ValueError) as exc:
            print(json.dumps({"event": "jwks_unavailable", "source": self.jwks, "error": str(exc)}), flush=True)


# -- the HTTP app --------------------------------------------------------------------------------------------------


def _read_logged(event: str, claims: dict[str, Any], **what: Any) -> None:
    """One JSON line on stdout per read the hub made: who asked, for whom, why (the department's own record)."""
    act = claims.get("act") or {}
    line = {
        "event": event,
        "at": time.time(),
        "requester": claims.get("client_id"),
        "client_id": act.get("client_id"),
        "officer": act.get("officer"),
        "purpose": claims.get("purpose"),
        "case": claims.get("case"),
        **what,
    }
    print(json.dumps(line, ensure_ascii=False), flush=True)


def _error(message: str, code: str, status: int) -> JSONResponse:
    return JSONResponse({"data": None, "errors": [{"message": message, "extensions": {"code": code}}]}, status)


class _Fields(Visitor):
    """Every field of a document, wherever it is (operations, fragments, aliases)."""

    def __init__(self) -> None:
        super().__init__()
        self.nodes: list[FieldNode] = []

    def enter_field(self, node: FieldNode, *_: Any) -> None:
        self.nodes.append(node)


def _asked(document: Any) -> tuple[bool, bool, list[str]]:
    """(asks for _entities anywhere, asks for nothing but the SDL, the entity fields asked for)."""
    found = _Fields()
    visit(document, found)
    names = {f.name.value for f in found.nodes}
    service_only = (
        bool(names)
        and names <= {"_service", "sdl", "__typename"}
        and all(isinstance(d, OperationDefinitionNode) for d in document.definitions)
    )
    fields = []
    for node in found.nodes:
        if node.name.value != "_entities" or node.selection_set is None:
            continue
        for frag in node.selection_set.selections:
            if isinstance(frag, InlineFragmentNode) and frag.type_condition and frag.selection_set:
                for f in frag.selection_set.selections:
                    if isinstance(f, FieldNode):
                        fields.append(f"{frag.type_condition.name.value}.{f.name.value}")
    return "_entities" in names, service_only, fields


def _asks_feed(document: Any) -> bool:
    found = _Fields()
    visit(document, found)
    return any(f.name.value == FEED_FIELD for f in found.nodes)


def create_subgraph_app(
    code: str,
    db: Path,
    jwks: str,
    *,
    issuer: str = "https://hub.local",
    drop: Sequence[str] = (),
    debug: bool = False,
    purposes: Sequence[str] = (),
) -> Starlette:
    engine = readonly_engine(f"sqlite:///{db}")
    schema = build_schema(code, engine, drop)
    verifier = Verifier(jwks, issuer, code)
    stats: dict[str, Any] = {
        "requests": 0,
        "entity_requests": 0,
        "representations": 0,
        "last_hop": None,
        "last_traceparent": None,
    }

    async def graphql(request: Request) -> Response:
        stats["requests"] += 1
        try:
            body = json.loads(await request.body())
            query, variables = body["query"], body.get("variables") or {}
            if not isinstance(query, str) or not isinstance(variables, dict):
                raise TypeError("query must be a string, variables an object")
            document = parse(query)
        except (ValueError, KeyError, TypeError, GraphQLError):
            return _error("send a JSON body with a GraphQL query", "BAD_REQUEST", 400)
        entities, service_only, fields = _asked(document)
        feed = _asks_feed(document)
        claims: dict[str, Any] = {}
        if not service_only:
            scheme, _, token = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not token:
                return _error("a hop token from the hub is required", "UNAUTHENTICATED", 401)
            try:
                claims = await verifier.verify(token.strip(), body)
            except AuthenticationError as exc:
                return _error(exc.message, exc.code, exc.status)
            act = claims.get("act")
            named = isinstance(act, dict) and act.get("department") and claims.get("purpose")
            if (entities or feed) and not named:
                return _error("the hop token must name the original actor and purpose", "FORBIDDEN", 403)
            if (entities or feed) and purposes and claims.get("purpose") not in purposes:
                return _error(f"purpose {claims.get('purpose')} is not accepted here", "FORBIDDEN", 403)
        context: dict[str, Any] = {"claims": claims, "loaders": {}, "residents": 0}
        result = await schema.execute(
            query, variable_values=variables, context_value=context, operation_name=body.get("operationName")
        )
        if entities:
            stats["entity_requests"] += 1
            stats["representations"] += len(variables.get("r") or variables.get("representations") or [])
            stats["last_hop"] = claims
            stats["last_traceparent"] = request.headers.get("traceparent")  # the hub's trace, when it traces
            _read_logged("entities", claims, issuer=claims.get("iss"), request_id=claims.get("request_id"),
                         department=(claims.get("act") or {}).get("department"), fields=fields,
                         residents=context["residents"], errors=len(result.errors or []))  # fmt: skip
        if feed and (context["residents"] or result.errors):  # a poll that found nothing disclosed nothing
            _read_logged("change_events", claims, after=variables.get("after"), events=context["residents"],
                         errors=len(result.errors or []))  # fmt: skip
        out: dict[str, Any] = {"data": result.data}
        if result.errors:
            out["errors"] = [e.formatted for e in result.errors]
        return JSONResponse(out)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok", "department": code})

    async def last_hop(request: Request) -> Response:
        return JSONResponse(stats)

    routes = [Route("/graphql", graphql, methods=["POST"]), Route("/healthz", healthz, methods=["GET"])]
    if debug:
        routes.append(Route("/_last_hop", last_hop, methods=["GET"]))
    app = Starlette(routes=routes)
    app.state.schema = schema
    return app


def main(argv: Sequence[str] | None = None) -> int:
    import uvicorn

    p = argparse.ArgumentParser(prog="python -m hub.demo.subgraph", description=__doc__.split("\n\n")[0])
    p.add_argument("--db", required=True, help="the department's SQLite file (opened read-only)")
    p.add_argument("--department", default="education")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8001)
    p.add_argument("--jwks", required=True, help="the hub's JWKS: a URL or a JSON file path")
    p.add_argument("--issuer", default="https://hub.local", help="the hub's token issuer (iss)")
    p.add_argument("--purposes", default="", help="comma-separated purposes accepted (default: any)")
    p.add_argument("--drop-field", action="append", default=[], help="leave this column out of the schema")
    p.add_argument("--debug", action="store_true", help="serve GET /_last_hop")
    p.add_argument("--exit-with-parent", action="store_true", help="stop when the process that started it ends")
    args = p.parse_args(argv)
    if args.department not in DEPARTMENTS or DEPARTMENTS[args.department].metadata is None:
        print(f"unknown source department {args.department!r}", file=sys.stderr)
        return 2
    if not Path(args.db).exists():
        print(f"no such database: {args.db}", file=sys.stderr)
        return 2
    app = create_subgraph_app(
        args.department,
        Path(args.db),
        args.jwks,
        issuer=args.issuer,
        drop=args.drop_field,
        debug=args.debug,
        purposes=[x for x in args.purposes.split(",") if x],
    )
    print(
        json.dumps({"event": "listening", "department": args.department, "url": f"http://{args.host}:{args.port}"}),
        flush=True,
    )
    if args.exit_with_parent:
        _exit_with_parent()
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


def _exit_with_parent() -> None:
    """``hub demo`` may end by a signal that skips its clean-up (uvicorn re-raises it): do not outlive it."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, daemon=True, name="exit-with-parent").start()


if __name__ == "__main__":
    raise SystemExit(main())
