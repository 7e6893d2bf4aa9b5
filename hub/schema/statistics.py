"""Aggregates for statistics (purpose STAT): counts per cell, perturbed by the cell-key method, cells under 10
suppressed.

Why: a published count is one equation about residents. Without perturbation, ``statistics(area: "3301")``
minus the other districts gave a suppressed cell (8 dibao recipients in one county) exactly, in 14 requests.
With the cell-key method (as used by the Australian Bureau of Statistics, and in Eurostat's tools) every cell
is perturbed by an amount fixed by the residents it counts, so asking again gives the same figure and
repetition never averages the noise away.

The parameters (docs/policies.md, "aggregate"):

* **Record key.** Each contributing resident has a record key: the first 8 bytes of
  HMAC-SHA256(perturbation key, ID number), an integer in [0, 2^64). The perturbation key is the hub's own,
  kept beside the pseudonym key (``hub/auth/keys.py``).
* **Cell key.** The sum of the cell's record keys modulo 2^64, divided by 2^64: a number in [0, 1) that is the
  same whenever the same residents are counted, whichever query or area prefix produced the cell.
* **Perturbation table.** Unbiased random rounding to base ``BASE`` = 10, indexed by the count's remainder
  r = n mod 10 and the cell key u: the cell is published as n - r + 10 when u < r/10, else as n - r (a count
  already a multiple of 10 is published as it is). Expected value n; maximum deviation 9; variance
  r(10-r) <= 25 (standard deviation at most 5).
* **Suppression.** A count under ``MIN_CELL`` = 10 is not published: ``count: null, suppressed: true``.

Together they resist differencing: every published count is a multiple of 10, so any sum or difference of
published counts is a multiple of 10, while a suppressed cell holds 1 to 9. No combination of published
cells, over any areas of the hierarchy, gives a suppressed cell exactly (tests/test_inference.py runs the
attack over the whole hierarchy).

The departments return the contributing ID numbers of each cell to the hub process (never to the consumer),
which counts them and derives the cell key; where a count needs residents' areas (held by household
registration), the hub passes the ID numbers of the area's residents to the department as a bound list.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from typing import Any

import strawberry
from sqlalchemy import select
from strawberry.types import Info

from hub.departments import assistance, certificates, residents
from hub.errors import RequestError
from hub.policy.model import Form
from hub.schema.context import HubContext, ctx
from hub.schema.directives import disclosed

MIN_CELL = 10


BASE = 10  # perturbation table: unbiased random rounding to a multiple of 10 (maximum deviation 9)
_SCALE = 2**64


@strawberry.type(
    description="One cell of an aggregate. Cells under 10 are suppressed (count null). Published counts are "
    "perturbed by the cell-key method: rounded to a multiple of 10, up or down as fixed by the residents counted "
    "(at most 9 from the true count, unbiased, the same on every request)."
)
class CountCell:
    key: str
    count: int | None
    suppressed: bool


def cell_key(key: bytes, id_numbers: Iterable[str]) -> float:
    """The cell key in [0, 1): the sum of the contributing residents' record keys, modulo 1."""
    total = 0
    for id_number in id_numbers:
        digest = hmac.new(key, id_number.encode("ascii", "replace"), hashlib.sha256).digest()
        total += int.from_bytes(digest[:8], "big")
    return (total % _SCALE) / _SCALE


def perturb(n: int, u: float) -> int:
    """The perturbation table: ``n`` rounded to a multiple of ``BASE``, up with probability (n mod BASE)/BASE as
    decided by the cell key ``u``."""
    r = n % BASE
    return n - r + (BASE if r and u < r / BASE else 0)


def _cells(key: bytes, groups: dict[str, set[str]]) -> list[CountCell]:
    out = []
    for k, ids in sorted(groups.items()):
        n = len(ids)
        small = n < MIN_CELL
        out.append(CountCell(key=str(k), count=None if small else perturb(n, cell_key(key, ids)), suppressed=small))
    return out


async def _run(c: HubContext, dept: str, stmt: Any) -> list[tuple[Any, ...]]:
    with c.calling(dept):
        return await c.source(dept).aggregate(stmt)


async def _grouped(c: HubContext, dept: str, stmt: Any) -> dict[str, set[str]]:
    """(cell, contributing ID number) rows -> the distinct ID numbers per cell."""
    groups: dict[str, set[str]] = {}
    for k, id_number in await _run(c, dept, stmt):
        groups.setdefault(str(k), set()).add(str(id_number))
    return groups


CHUNK = 5000  # ID numbers per bound list (SQLite and PostgreSQL parameter limits)


async def _grouped_over(c: HubContext, dept: str, ids: list[str], build: Any) -> dict[str, set[str]]:
    """The contributing ID numbers per cell, over chunks of ID numbers."""
    groups: dict[str, set[str]] = {}
    for i in range(0, len(ids), CHUNK):
        for k, members in (await _grouped(c, dept, build(ids[i : i + CHUNK]))).items():
            groups.setdefault(k, set()).update(members)
    return groups


@strawberry.type(description="Aggregate statistics for one area (GB/T 2260 prefix) within your jurisdiction.")
class Statistics:
    area: strawberry.Private[str]

    async def _area_ids(self, c: HubContext) -> list[str]:
        stmt = select(residents.c.id_number).where(residents.c.area_code.startswith(self.area, autoescape=True))
        return [str(r[0]) for r in await _run(c, "public_security", stmt)]

    @disclosed(Form.AGGREGATE, "public_security", "Registered residents per area code.")
    async def residents_by_area(self, info: Info) -> list[CountCell]:
        c = ctx(info)
        stmt = select(residents.c.area_code, residents.c.id_number).where(
            residents.c.area_code.startswith(self.area, autoescape=True), residents.c.status == "normal"
        )
        return _cells(c.perturbation_key, await _grouped(c, "public_security", stmt))

    @disclosed(Form.AGGREGATE, "civil_affairs", "Current assistance recipients per tier in the area.")
    async def recipients_by_tier(self, info: Info) -> list[CountCell]:
        c = ctx(info)
        current = assistance.c.end_date.is_(None) | (assistance.c.end_date >= c.today)  # as isRecipient

        def build(chunk: list[str]) -> Any:
            return (
                select(assistance.c.tier, assistance.c.id_number)
                .where(assistance.c.id_number.in_(chunk), current)
                .distinct()
            )

        return _cells(c.perturbation_key, await _grouped_over(c, "civil_affairs", await self._area_ids(c), build))

    @disclosed(Form.AGGREGATE, "disability", "Certificate holders per disability grade in the area.")
    async def disability_by_grade(self, info: Info) -> list[CountCell]:
        c = ctx(info)

        def build(chunk: list[str]) -> Any:
            return (
                select(certificates.c.grade, certificates.c.id_number)
                .where(certificates.c.id_number.in_(chunk))
                .distinct()
            )

        return _cells(c.perturbation_key, await _grouped_over(c, "disability", await self._area_ids(c), build))


def statistics(info: Info, area: str) -> Statistics | None:
    c = ctx(info)
    if not area.isdigit() or not 2 <= len(area) <= 6:
        raise RequestError("area must be a 2- to 6-digit area-code prefix", code="BAD_ARGUMENT")
    if c.area_prefix is not None and not area.startswith(c.area_prefix):
        return None  # outside the jurisdiction: indistinguishable from an area with no data
    return Statistics(area=area)
