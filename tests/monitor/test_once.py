"""Handled once: a batch handled again after a crash (between the rule evaluations and the cursor moving) asks no
rule twice, writes no evaluation or alert entry twice and makes the same alert; alerts are paged and followed in
the order they were committed (``alerts.seq``), also when two share the same instant."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import closing
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from hub.app import create_app
from hub.db import audit_entries, monitor_evaluations
from hub.demo.events import emit_event
from hub.demo.generate import GenerateResult
from hub.departments import OUTBOXES
from hub.monitor.alerts import NewAlert
from tests.conftest import Hub, make_settings, working_clock
from tests.monitor.test_monitor import GOLDEN

CLIENTS = {"linping-cw": ("civil_affairs", "330113", ["MON", "CASE"], ["caseworker"])}


def skip_to_outbox_ends(hub: Hub) -> None:
    """Move every cursor to its outbox's end (the demo's history is not what these tests are about)."""
    store = hub.app.state.hub.alerts
    for dept in OUTBOXES:
        with closing(sqlite3.connect(hub.settings.data_dir / "departments" / f"{dept}.sqlite")) as db:
            end = db.execute("SELECT coalesce(max(seq), 0) FROM change_events").fetchone()[0]
        claim = store.claim(dept)
        assert claim is not None
        store.finish(claim, end, [], [], [])


@pytest.fixture(scope="module")
async def quiet(dept_data: tuple[Path, GenerateResult], tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Hub]:
    """A hub whose monitor is driven by the test (not running in the background)."""
    root = tmp_path_factory.mktemp("monitor-once")
    shutil.copytree(dept_data[0] / "departments", root / "departments")
    settings = make_settings(root, monitor=False)
    app = create_app(settings, sign_interval=3600, clock=working_clock())
    secrets = {cid: app.state.hub.clients.add(cid, *spec)[1] for cid, spec in CLIENTS.items()}
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hub.test") as client:
            hub = Hub(app, client, settings, secrets, dept_data[1], {})
            skip_to_outbox_ends(hub)
            yield hub
    app.state.hub.close()


def entries(hub: Hub, case_ref: str) -> list[tuple[str, str]]:
    """(officer, operation) of the audit entries with this case reference."""
    import json

    with hub.app.state.hub.engine.connect() as conn:
        rows = conn.execute(
            select(audit_entries.c.officer, audit_entries.c.entry).where(audit_entries.c.case_ref == case_ref)
        ).all()
    return [(r[0], json.loads(r[1]).get("operation_name") or "") for r in rows]


class Crash(Exception):
    pass


async def test_a_batch_handled_again_after_a_crash_writes_its_entries_once(
    quiet: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = quiet.app.state.hub
    monitor, store = state.monitor, state.alerts
    _, seq = emit_event(quiet.settings, "disability_changed", GOLDEN, category=4, grade=2, clock=quiet.clock)
    case_ref = f"EVT-disability-{seq}-{seq}"
    real_finish = store.finish

    def crash(*args: Any, **kwargs: Any) -> None:
        raise Crash("the process died before the cursor moved")

    monkeypatch.setattr(store, "finish", crash)
    with pytest.raises(Crash):
        await monitor.poll("disability")
    assert store.position("disability") == seq - 1  # not handled: the batch comes again
    [evaluation] = entries(quiet, case_ref)
    assert evaluation[0] == "monitor/M1"  # M1 was asked once, through the gateway
    with state.engine.connect() as conn:
        [(alert_id, written)] = conn.execute(
            select(monitor_evaluations.c.alert_id, monitor_evaluations.c.entry_written).where(
                monitor_evaluations.c.department == "disability", monitor_evaluations.c.seq == seq
            )
        ).all()
    assert alert_id.startswith("AL") and written is True
    assert store.get(alert_id) is None  # the alert itself was never committed
    assert [op for _, op in entries(quiet, alert_id)] == ["alert.created M1"]

    monkeypatch.setattr(store, "finish", real_finish)
    asked = 0
    real_ask = monitor.ask

    async def counting(*args: Any, **kwargs: Any) -> dict[str, Any]:
        nonlocal asked
        asked += 1
        result: dict[str, Any] = await real_ask(*args, **kwargs)
        return result

    monkeypatch.setattr(monitor, "ask", counting)
    assert await monitor.poll("disability") == 1
    assert asked == 0  # the kept verdict is used: no rule asked again
    assert store.position("disability") == seq
    assert entries(quiet, case_ref) == [evaluation]  # one evaluation entry, not two
    assert [op for _, op in entries(quiet, alert_id)] == ["alert.created M1"]  # one alert entry, not two
    alert = store.get(alert_id)  # the alert id the first attempt planned, with the M1 match
    assert alert is not None and alert.rule_id == "M1" and alert.source == f"disability:{seq}"
    assert alert.estimated_monthly == 2000 and len(alert.programmes) == 7
    with state.engine.connect() as conn:  # cleared once the cursor passed the event
        assert conn.execute(select(monitor_evaluations)).all() == []
    [outcome] = [e for e in store.events("disability") if e["seq"] == seq]
    assert (outcome["outcome"], outcome["reason"]) == ("alerted", "matched M1")


def _alert(alert_id: str, id_number: str) -> NewAlert:
    return NewAlert(
        rule_id="M7",
        id_number=id_number,
        area_code="330113",
        area_name="临平区运河街道",
        source="sweep",
        event_kind="sweep",
        occurred_on=date(2026, 1, 5),
        matched=[],
        programmes=[],
        estimated_monthly=0,
        due_on=date(2026, 1, 9),
        due_basis="test",
        id=alert_id,
    )


@pytest.fixture
def frozen(quiet: Hub) -> Iterator[None]:
    """The hub's clock standing still: every alert made meanwhile has the same ``created_at``."""
    clock = quiet.app.state.hub.alerts.clock
    at = clock()
    quiet.app.state.hub.alerts.clock = lambda: at
    try:
        yield
    finally:
        quiet.app.state.hub.alerts.clock = clock


async def test_alerts_in_the_same_instant_are_paged_and_followed_in_commit_order(quiet: Hub, frozen: None) -> None:
    state = quiet.app.state.hub
    store = state.alerts
    # committed in this order, at the same instant; the second's id sorts before the first's
    store.finish(None, 0, [], [_alert("AL20260105-FFFFFFFF", "330113195001010017")], [])
    store.finish(None, 0, [], [_alert("AL20260105-00000000", "330113195001010033")], [])
    assert store.get("AL20260105-FFFFFFFF").created_at == store.get("AL20260105-00000000").created_at  # type: ignore[union-attr]
    query = "query($after: String) { alerts(after: $after, first: 10) { alerts { id } endCursor } }"
    r = await quiet.query(query, client="linping-cw", purpose="MON", variables={"after": "AL20260105-FFFFFFFF"})
    assert r.json()["data"]["alerts"] == {"alerts": [{"id": "AL20260105-00000000"}], "endCursor": "AL20260105-00000000"}
    # the subscription's resume cursor: a follower resuming after the first gets the second
    follow = state.alert_feed.follow("330113", after="AL20260105-FFFFFFFF")
    try:
        got = await asyncio.wait_for(follow.__anext__(), 5)
    finally:
        await follow.aclose()
    assert got.id == "AL20260105-00000000"
    assert store.latest("330113") == "AL20260105-00000000"  # a new subscription starts after the last committed
