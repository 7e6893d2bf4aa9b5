"""Subgraph fetches that do not depend on each other go out together: two departments below one resident are two
concurrent POSTs, each still under its own deadline (docs/federation.md, "What a federated request costs")."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from starlette.responses import JSONResponse, Response

from hub.demo.subgraph import build_schema
from hub.sources.sql import readonly_engine
from tests.conftest import serve
from tests.federation.test_hostile import Hostile, _sdl
from tests.live import Fed, FedHub, running
from tests.sources.test_subgraph import _ids

DELAY = 0.8  # each department answers after this long


class Slow(Hostile):
    """A department subgraph that answers truly (the demo subgraph's schema over its data) after ``DELAY`` s, and
    records when each POST started and ended."""

    def __init__(self, fed: Fed, code: str) -> None:
        super().__init__(_sdl(fed, code))
        self.schema = build_schema(code, readonly_engine(f"sqlite:///{fed.root / 'departments' / f'{code}.sqlite'}"))
        self.spans: list[tuple[float, float]] = []
        self.delay = DELAY

        async def answer(body: dict[str, Any]) -> Response:
            started = time.monotonic()
            await asyncio.sleep(self.delay)
            result = await self.schema.execute(body["query"], variable_values=body.get("variables"))
            self.spans.append((started, time.monotonic()))
            return JSONResponse({"data": result.data})

        self.answer = answer


@pytest.fixture(scope="module")
def slow(fed: Fed) -> Iterator[dict[str, tuple[Slow, str]]]:
    edu, ca = Slow(fed, "education"), Slow(fed, "civil_affairs")
    with serve(edu.app()) as edu_url, serve(ca.app()) as ca_url:
        yield {"education": (edu, edu_url + "/graphql"), "civil_affairs": (ca, ca_url + "/graphql")}


@pytest.fixture(scope="module")
async def hub_p(fed: Fed, slow: dict[str, tuple[Slow, str]]) -> AsyncIterator[FedHub]:
    settings = fed.settings(
        "parallel", department_urls={code: url for code, (_, url) in slow.items()}, source_timeout=1.5
    )
    async with running(settings) as h:
        yield h


async def test_independent_departments_are_fetched_concurrently(
    fed: Fed, slow: dict[str, tuple[Slow, str]], hub_p: FedHub
) -> None:
    pid = _ids(fed, 1)[0]
    query = f'{{ person(idNumber: "{pid}") {{ name education {{ school }} civilAffairs {{ tier }} }} }}'
    warm = await hub_p.query(query)  # schema checks, connections
    assert warm.status_code == 200 and "errors" not in warm.json(), warm.text
    for s, _ in slow.values():
        s.spans.clear()
    started = time.monotonic()
    r = await hub_p.query(query)
    elapsed = time.monotonic() - started
    assert r.status_code == 200 and "errors" not in r.json(), r.text
    assert r.json()["data"]["person"] == warm.json()["data"]["person"]
    [(e0, e1)] = slow["education"][0].spans
    [(c0, c1)] = slow["civil_affairs"][0].spans
    assert max(e0, c0) < min(e1, c1), "the two departments' POSTs did not overlap"
    assert elapsed < 2 * DELAY, elapsed  # one after the other would take at least 2 x DELAY


async def test_each_concurrent_fetch_keeps_its_own_deadline(
    fed: Fed, slow: dict[str, tuple[Slow, str]], hub_p: FedHub
) -> None:
    """A department slower than the deadline fails alone: the other's record comes back."""
    pid = _ids(fed, 1)[0]
    query = f'{{ person(idNumber: "{pid}") {{ name education {{ school }} civilAffairs {{ tier }} }} }}'
    slow["education"][0].delay = 3.0
    try:
        started = time.monotonic()
        r = await hub_p.query(query)
        elapsed = time.monotonic() - started
    finally:
        slow["education"][0].delay = DELAY
    body = r.json()
    assert body["data"]["person"]["education"] is None and body["data"]["person"]["civilAffairs"] is not None
    assert [e["extensions"]["code"] for e in body["errors"]] == ["UPSTREAM_UNAVAILABLE"]
    assert body["errors"][0]["path"][:2] == ["person", "education"]
    assert elapsed < 2.5, elapsed  # the 1.5 s deadline, not the 3 s answer
