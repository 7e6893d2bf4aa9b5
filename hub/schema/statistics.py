"""Aggregates for statistics (purpose STAT): counts per cell, with cells under 10 suppressed.

Counts are computed in the departments' own queries (GROUP BY); no resident row leaves a department.
Where a count needs residents' areas (held by household registration), the hub passes the ID numbers of
the area's residents to the department as a bound list, and only counts come back.
"""

from __future__ import annotations

from typing import Any

import strawberry
from sqlalchemy import func, select
from strawberry.types import Info

from hub.departments import assistance, certificates, residents
from hub.errors import RequestError, UpstreamUnavailable
from hub.policy.model import Form
from hub.schema.context import HubContext, ctx
from hub.schema.directives import disclosed

MIN_CELL = 10


@strawberry.type(description="One cell of an aggregate. Cells under 10 are suppressed: count null.")
class CountCell:
    key: str
    count: int | None
    suppressed: bool


def _cells(pairs: list[tuple[str, int]]) -> list[CountCell]:
    return [
        CountCell(key=str(k), count=None if n < MIN_CELL else int(n), suppressed=n < MIN_CELL) for k, n in sorted(pairs)
    ]


async def _run(c: HubContext, dept: str, stmt: Any) -> list[tuple[Any, ...]]:
    try:
        return await c.source(dept).aggregate(stmt)
    except UpstreamUnavailable:
        c.upstream_failures.add(dept)
        raise


async def _grouped(c: HubContext, dept: str, stmt: Any) -> list[tuple[str, int]]:
    return [(str(k), int(n)) for k, n in await _run(c, dept, stmt)]


CHUNK = 5000  # ID numbers per bound list (SQLite and PostgreSQL parameter limits)


async def _grouped_over(c: HubContext, dept: str, ids: list[str], build: Any) -> list[tuple[str, int]]:
    """Sum per-key counts over chunks of ID numbers (each resident appears in one chunk only)."""
    totals: dict[str, int] = {}
    for i in range(0, len(ids), CHUNK):
        for k, n in await _grouped(c, dept, build(ids[i : i + CHUNK])):
            totals[k] = totals.get(k, 0) + n
    return list(totals.items())


@strawberry.type(description="Aggregate statistics for one area (GB/T 2260 prefix) within your jurisdiction.")
class Statistics:
    area: strawberry.Private[str]

    async def _area_ids(self, c: HubContext) -> list[str]:
        stmt = select(residents.c.id_number).where(residents.c.area_code.startswith(self.area, autoescape=True))
        return [str(r[0]) for r in await _run(c, "public_security", stmt)]

    @disclosed(Form.AGGREGATE, "public_security", "Registered residents per area code.")
    async def residents_by_area(self, info: Info) -> list[CountCell]:
        stmt = (
            select(residents.c.area_code, func.count())
            .where(residents.c.area_code.startswith(self.area, autoescape=True), residents.c.status == "normal")
            .group_by(residents.c.area_code)
        )
        return _cells(await _grouped(ctx(info), "public_security", stmt))

    @disclosed(Form.AGGREGATE, "civil_affairs", "Current assistance recipients per tier in the area.")
    async def recipients_by_tier(self, info: Info) -> list[CountCell]:
        c = ctx(info)
        current = assistance.c.end_date.is_(None) | (assistance.c.end_date >= c.today)  # as isRecipient

        def build(chunk: list[str]) -> Any:
            return (
                select(assistance.c.tier, func.count(func.distinct(assistance.c.id_number)))
                .where(assistance.c.id_number.in_(chunk), current)
                .group_by(assistance.c.tier)
            )

        return _cells(await _grouped_over(c, "civil_affairs", await self._area_ids(c), build))

    @disclosed(Form.AGGREGATE, "disability", "Certificate holders per disability grade in the area.")
    async def disability_by_grade(self, info: Info) -> list[CountCell]:
        c = ctx(info)

        def build(chunk: list[str]) -> Any:
            return (
                select(certificates.c.grade, func.count(func.distinct(certificates.c.id_number)))
                .where(certificates.c.id_number.in_(chunk))
                .group_by(certificates.c.grade)
            )

        return _cells(await _grouped_over(c, "disability", await self._area_ids(c), build))


def statistics(info: Info, area: str) -> Statistics | None:
    c = ctx(info)
    if not area.isdigit() or not 2 <= len(area) <= 6:
        raise RequestError("area must be a 2- to 6-digit area-code prefix", code="BAD_ARGUMENT")
    if c.area_prefix is not None and not area.startswith(c.area_prefix):
        return None  # outside the jurisdiction: indistinguishable from an area with no data
    return Statistics(area=area)
