"""The reader over a subgraph department's feed: the disability federation served by the demo subgraph on
127.0.0.1 publishes ``changeEvents(after:, first:)``; the monitor reads it with a hop token naming itself, through
the guarded upstream call, and the golden scenario's M1 alert follows. The cursor moves only after the batch is
handled: while the department is down its events wait, and none is lost."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from hub.app import create_app
from hub.auth.keys import KeyRing
from hub.demo.events import emit_event
from hub.demo.generate import GenerateResult
from hub.localpg import free_port
from hub.sources.contract import feed_rows
from hub.sources.subgraph import SubgraphSource
from hub.upstream.breaker import CircuitBreaker
from tests.conftest import Hub, make_settings, working_clock
from tests.live import Proc, spawn, subgraph_args
from tests.monitor.test_monitor import GOLDEN, STORY
from tests.monitor.test_once import skip_to_outbox_ends


@dataclass
class Dept:
    root: Path
    port: int
    proc: Proc

    def start(self) -> None:
        args = subgraph_args(self.root / "departments" / "disability.sqlite", self.root / "jwks.json",
                             "--debug", department="disability")  # fmt: skip
        self.proc = spawn("disability", args, self.root / f"disability-{time.monotonic_ns()}.log", port=self.port)
        self.proc.wait_ready()


@pytest.fixture(scope="module")
def dept(dept_data: tuple[Path, GenerateResult], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dept]:
    """The disability federation as a demo subgraph process over its own copy of the department files."""
    root = tmp_path_factory.mktemp("feed")
    shutil.copytree(dept_data[0] / "departments", root / "departments")
    KeyRing(root / "keys").ensure()  # the hub's keys (the hub below uses the same data dir)
    (root / "jwks.json").write_text(json.dumps(KeyRing(root / "keys").jwks()))
    d = Dept(root, free_port(), None)  # type: ignore[arg-type]
    d.start()
    try:
        yield d
    finally:
        d.proc.kill()


@pytest.fixture(scope="module")
async def fed_mon(dept: Dept, dept_data: tuple[Path, GenerateResult]) -> AsyncIterator[Hub]:
    url = f"http://127.0.0.1:{dept.port}/graphql"
    settings = make_settings(dept.root, monitor=False, source_timeout=2.0, department_urls={"disability": url})
    app = create_app(settings, sign_interval=3600, clock=working_clock())
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hub.test") as client:
            hub = Hub(app, client, settings, {}, dept_data[1], {})
            skip_to_outbox_ends(hub)
            yield hub
    app.state.hub.close()


def emit(hub: Hub, grade: int) -> int:
    """The federation records the change in its own database (the subgraph serves it read-only)."""
    files = make_settings(hub.settings.data_dir)  # its SQLite file, not the subgraph URL
    _, seq = emit_event(files, "disability_changed", GOLDEN, category=4, grade=grade, clock=hub.clock)
    return seq


async def test_the_golden_event_through_the_subgraph_feed(fed_mon: Hub, dept: Dept) -> None:
    state = fed_mon.app.state.hub
    assert isinstance(state.sources["disability"], SubgraphSource)
    seq = emit(fed_mon, grade=2)
    assert state.alerts.position("disability") == seq - 1
    assert await state.monitor.poll("disability") == 1
    assert state.alerts.position("disability") == seq  # moved only now, after the alert was committed
    [alert] = state.alerts.page("330113", id_number=GOLDEN)[0]
    assert (alert.rule_id, alert.source, alert.area_name) == ("M1", f"disability:{seq}", "临平区运河街道")
    assert {p["id"] for p in alert.programmes} == STORY and alert.estimated_monthly == 2000
    # the department's own log: the feed read with a hop token naming the monitor, then M1's predicates
    lines = dept.proc.lines()
    [feed] = [ln for ln in lines if ln.get("event") == "change_events" and ln["after"] == seq - 1]
    assert (feed["client_id"], feed["officer"], feed["purpose"], feed["events"]) == (
        "hub-monitor", "monitor/feed", "MON", 1)  # fmt: skip
    assert feed["case"] == f"FEED-disability-{seq - 1}" and feed["requester"] == "hub"
    [asked] = [ln for ln in lines if ln.get("event") == "entities" and ln.get("case") == f"EVT-disability-{seq}-{seq}"]
    assert (asked["client_id"], asked["officer"], asked["purpose"]) == ("hub-monitor", "monitor/M1", "MON")
    assert await state.monitor.poll("disability") == 0  # nothing new: nothing handled twice


async def test_a_department_down_delays_its_events_and_loses_none(fed_mon: Hub, dept: Dept) -> None:
    state = fed_mon.app.state.hub
    source = state.sources["disability"]
    assert isinstance(source, SubgraphSource)
    start = state.alerts.position("disability")
    dept.proc.kill()
    seq = emit(fed_mon, grade=1)
    assert await state.monitor.poll("disability") == 0  # down: delayed
    assert state.alerts.position("disability") == start
    dept.start()  # back, on the same port
    source.breaker = CircuitBreaker()  # no need to wait out the open circuit's pause in a test
    assert await state.monitor.poll("disability") == seq - start
    assert state.alerts.position("disability") == seq
    [outcome] = [e for e in state.alerts.events("disability") if e["seq"] == seq]
    assert outcome["outcome"] in ("alerted", "no_match") and outcome["reason"] != ""


async def test_the_feed_needs_the_hubs_hop_token(dept: Dept) -> None:
    query = "{ changeEvents(after: 0, first: 5) { seq } }"
    async with httpx.AsyncClient() as c:
        r = await c.post(f"http://127.0.0.1:{dept.port}/graphql", json={"query": query})
    assert r.status_code == 401 and r.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    await asyncio.sleep(0)


def test_feed_answers_outside_the_contract_are_refused() -> None:
    ok = {"seq": 8, "idNumber": GOLDEN, "kind": "disability_changed", "occurredOn": "2026-12-01",
          "recordedAt": "2026-12-01T18:00:00+08:00"}  # fmt: skip
    assert feed_rows([ok], 7, 10) == [(8, GOLDEN, "disability_changed", "2026-12-01", "2026-12-01T18:00:00+08:00")]
    for bad, after, first, why in [
        ([ok], 8, 10, "increasing"),  # not after the cursor
        ([ok, ok], 7, 10, "increasing"),  # repeated
        ([ok, {**ok, "seq": 9}], 7, 1, "at most 1"),  # more than asked for
        ([{**ok, "seq": "9"}], 7, 10, "integer"),
        ([{**ok, "idNumber": None}], 7, 10, "missing"),
        ({"seq": 8}, 7, 10, "not a list"),
    ]:
        with pytest.raises(ValueError, match=why):
            feed_rows(bad, after, first)
