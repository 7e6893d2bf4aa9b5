"""Two department subgraphs (Apollo Federation 2, ``strawberry.federation``) for the peer benchmark.

Used when ``hub.demo.subgraph`` is not available. Each reads its department's demo SQLite file through
the hub's own read-only ``SqlSource``, one batched statement per request and table (a DataLoader per request):

* ``public_security`` owns ``Person @key(fields: "idNumber")``: ``person``/``people`` roots, identity fields;
* ``civil_affairs`` contributes ``Person.civilAffairs { tier startDate endDate monthlyAmount }`` through
  ``_entities``.

Field names and shapes match the hub's schema, so one query text runs on Apollo's gateway and on the hub.

    BENCH_DATA_DIR=bench/results/data BENCH_SUBGRAPH=civil_affairs \\
        uvicorn --factory bench.subgraphs:create_app --port 4002
"""

from __future__ import annotations

import datetime
import os
from pathlib import Path
from typing import Any

import strawberry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from strawberry.asgi import GraphQL
from strawberry.dataloader import DataLoader
from strawberry.types import Info

from hub.departments import assistance, residents
from hub.settings import Settings
from hub.sources.sql import SqlSource


def loader(source: SqlSource, table: Any) -> DataLoader[str, list[Any]]:
    async def load(keys: list[str]) -> list[list[Any]]:
        return await source.rows_by(table, "id_number", keys)

    return DataLoader(load_fn=load)


# -- public security -----------------------------------------------------------------------------------
@strawberry.federation.type(name="Person", keys=["idNumber"])
class PsPerson:
    id_number: str
    name: str
    sex: str
    birth_date: datetime.date
    area_code: str
    relation_to_head: str

    @classmethod
    async def resolve_reference(cls, info: Info, **representation: Any) -> PsPerson | None:
        return await load_person(info, representation["idNumber"])


async def load_person(info: Info, id_number: str) -> PsPerson | None:
    rows = await info.context["residents"].load(id_number)
    if not rows:
        return None
    r = rows[0]
    return PsPerson(
        id_number=r.id_number,
        name=r.name,
        sex=r.sex,
        birth_date=r.dob,
        area_code=r.area_code,
        relation_to_head=r.relation_code,
    )


@strawberry.type
class PsQuery:
    @strawberry.field
    async def person(self, info: Info, id_number: str) -> PsPerson | None:
        return await load_person(info, id_number)

    @strawberry.field
    async def people(self, info: Info, id_numbers: list[str]) -> list[PsPerson | None]:
        return [await load_person(info, i) for i in id_numbers]


# -- civil affairs -------------------------------------------------------------------------------------
@strawberry.type(name="CivilAffairsRecord")
class CaRecord:
    tier: str | None
    start_date: datetime.date | None
    end_date: datetime.date | None
    monthly_amount: float | None


@strawberry.federation.type(name="Person", keys=["idNumber"])
class CaPerson:
    id_number: str

    @strawberry.field
    async def civil_affairs(self, info: Info) -> CaRecord | None:
        rows = await info.context["assistance"].load(self.id_number)
        if not rows:
            return CaRecord(tier=None, start_date=None, end_date=None, monthly_amount=None)
        r = rows[0]
        return CaRecord(
            tier=r.tier,
            start_date=r.start_date,
            end_date=r.end_date,
            monthly_amount=None if r.monthly_amount is None else float(r.monthly_amount),
        )

    @classmethod
    def resolve_reference(cls, **representation: Any) -> CaPerson:
        return CaPerson(id_number=representation["idNumber"])


@strawberry.type
class CaQuery:
    @strawberry.field
    def civil_affairs_version(self) -> str:
        return "1"


def build(dept: str) -> tuple[strawberry.Schema, dict[str, Any]]:
    if dept == "public_security":
        schema = strawberry.federation.Schema(query=PsQuery, types=[PsPerson], federation_version="2.5")
        return schema, {"residents": residents}
    if dept == "civil_affairs":
        schema = strawberry.federation.Schema(query=CaQuery, types=[CaPerson], federation_version="2.5")
        return schema, {"assistance": assistance}
    raise ValueError(f"no bench subgraph for {dept!r}")


class SubgraphView(GraphQL):  # type: ignore[type-arg]
    def __init__(self, schema: strawberry.Schema, source: SqlSource, tables: dict[str, Any]) -> None:
        super().__init__(schema, graphql_ide=None, allow_queries_via_get=False)
        self.source = source
        self.tables = tables

    async def get_context(self, request: Any, response: Any) -> dict[str, Any]:
        return {name: loader(self.source, table) for name, table in self.tables.items()}


def create_app() -> Starlette:
    dept = os.environ["BENCH_SUBGRAPH"]
    data_dir = Path(os.environ.get("BENCH_DATA_DIR", "bench/results/data"))
    schema, tables = build(dept)
    source = SqlSource(dept, Settings(data_dir=data_dir).department_url(dept))

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok", "department": dept})

    return Starlette(
        routes=[
            Route("/graphql", SubgraphView(schema, source, tables), methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ]
    )
