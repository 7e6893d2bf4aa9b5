"""LISTEN/NOTIFY on a PostgreSQL department: an event inserted there wakes the reader well inside a long poll
interval; a lost notification (the listener's connection killed, the trigger off) is still picked up by the poll,
and the listener comes back."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from hub.app import create_app
from hub.cli import main
from hub.demo.events import emit_event
from hub.demo.generate import GenerateResult
from hub.departments import DEPARTMENTS, OUTBOX_METADATA, OUTBOXES
from hub.localpg import PgServer
from hub.monitor.notify import CHANNEL, TRIGGER_SQL
from tests.conftest import Hub, make_settings, working_clock
from tests.monitor.test_monitor import GOLDEN
from tests.pgserver import copy_department

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def disability_pg(dept_data: tuple[Path, GenerateResult]) -> Iterator[str]:
    """The disability federation's database (records and outbox) on PostgreSQL, with the NOTIFY trigger."""
    server = PgServer().init()
    try:
        url = server.create_db("dept_disability")
        md = DEPARTMENTS["disability"].metadata
        assert md is not None
        source = dept_data[0] / "departments" / "disability.sqlite"
        copy_department(source, md, url)
        copy_department(source, OUTBOX_METADATA["disability"], url)
        assert main(["monitor", "install-trigger", url]) == 0  # as the department would, with its rights
        yield url
    finally:
        server.cleanup()


def _sql(url: str, stmt: str) -> object:
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            result = conn.execute(text(stmt))
            return result.scalar() if result.returns_rows else None
    finally:
        engine.dispose()


@pytest.fixture
async def slow(
    request: pytest.FixtureRequest,
    disability_pg: str,
    dept_data: tuple[Path, GenerateResult],
    tmp_path: Path,
) -> AsyncIterator[Hub]:
    """A hub polling only every ``interval`` seconds (30 unless the test says), disability on PostgreSQL, every
    cursor already at its outbox's end (so the reader is idle and asleep when the test writes an event)."""
    interval = getattr(request, "param", 30.0)
    shutil.copytree(dept_data[0] / "departments", tmp_path / "departments")
    settings = make_settings(
        tmp_path, monitor=True, monitor_interval=interval, department_urls={"disability": disability_pg}
    )
    app = create_app(settings, sign_interval=3600, clock=working_clock())
    state = app.state.hub
    for dept, outbox in OUTBOXES.items():  # skip the demo's history
        end = (await state.sources[dept].aggregate(select(func.coalesce(func.max(outbox.c.seq), 0))))[0][0]
        claim = state.alerts.claim(dept)
        assert claim is not None
        state.alerts.finish(claim, int(end), [], [], [])
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hub.test") as client:
            hub = Hub(app, client, settings, {}, dept_data[1], {})
            listener = None
            for _ in range(100):  # the reader's first (idle) round and its LISTEN connection
                listener = state.monitor.listeners_pg.get("disability")
                if listener is not None and listener.listening.is_set():
                    break
                await asyncio.sleep(0.05)
            assert listener is not None and listener.listening.is_set()
            await asyncio.sleep(0.3)  # the reader is asleep now
            yield hub
    state.close()


async def reached(hub: Hub, seq: int, within: float) -> float:
    """Seconds until the disability cursor reaches ``seq`` (fails after ``within``)."""
    store, started = hub.app.state.hub.alerts, time.monotonic()
    while time.monotonic() - started < within:
        if store.position("disability") >= seq:
            return time.monotonic() - started
        await asyncio.sleep(0.02)
    raise AssertionError(f"event {seq} not handled within {within} s (cursor {store.position('disability')})")


async def test_a_notification_wakes_the_reader_inside_a_long_poll_interval(slow: Hub) -> None:
    state = slow.app.state.hub
    assert state.monitor.interval == 30.0
    hints = state.monitor.hints
    _, seq = emit_event(slow.settings, "disability_changed", GOLDEN, category=4, grade=2, clock=slow.clock)
    took = await reached(slow, seq, within=5)
    assert took < 5 and state.monitor.hints == hints + 1  # one NOTIFY, not the 30 s poll
    [alert] = [a for a in state.alerts.page("330113", id_number=GOLDEN)[0] if a.source == f"disability:{seq}"]
    assert alert.rule_id == "M1"


def test_the_notification_carries_only_the_sequence_number(disability_pg: str) -> None:
    import psycopg

    from hub.monitor.notify import conninfo

    with psycopg.connect(conninfo(disability_pg), autocommit=True) as conn:
        conn.execute(f"LISTEN {CHANNEL}")
        with psycopg.connect(conninfo(disability_pg), autocommit=True) as writer:
            seq = writer.execute(
                "INSERT INTO change_events (seq, id_number, kind, occurred_on, recorded_at) "
                "SELECT max(seq) + 1, %s, 'disability_changed', current_date, now()::text FROM change_events "
                "RETURNING seq",
                (GOLDEN,),
            ).fetchone()
        note = next(conn.notifies(timeout=5))
    assert seq is not None and (note.channel, note.payload) == (CHANNEL, str(seq[0]))


@pytest.mark.parametrize("slow", [1.0], indirect=True)
async def test_a_lost_notification_is_picked_up_by_the_poll(slow: Hub, disability_pg: str) -> None:
    monitor = slow.app.state.hub.monitor
    listener = monitor.listeners_pg["disability"]
    # the listener's connection dies and the department's trigger is off: no notification reaches the hub
    _sql(disability_pg, "ALTER TABLE change_events DISABLE TRIGGER change_events_notify")
    try:
        assert _sql(disability_pg, f"SELECT pg_terminate_backend({listener.backend_pid})") is True
        hints = monitor.hints
        _, seq = emit_event(slow.settings, "disability_changed", GOLDEN, category=4, grade=2, clock=slow.clock)
        await reached(slow, seq, within=5)  # the 1 s poll finds it
        assert monitor.hints == hints
    finally:
        _sql(disability_pg, "ALTER TABLE change_events ENABLE TRIGGER change_events_notify")
    # the listener reconnects after its pause and notifications wake the reader again
    await asyncio.wait_for(listener.listening.wait(), 10)
    assert listener.connections == 2
    hints = monitor.hints
    _, seq = emit_event(slow.settings, "disability_changed", GOLDEN, category=4, grade=1, clock=slow.clock)
    await reached(slow, seq, within=5)
    assert monitor.hints == hints + 1


def test_install_trigger_says_what_is_wrong_and_prints_the_sql(
    disability_pg: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = make_url(disability_pg)
    # a database without the outbox: nothing installed, the outbox named
    empty = url.set(database="postgres").render_as_string(hide_password=False)
    assert main(["monitor", "install-trigger", empty]) == 2
    err = capsys.readouterr().err
    assert "error [CONFIG_ERROR]:" in err and "has no change_events table" in err
    assert _sql(empty, "SELECT count(*) FROM pg_proc WHERE proname = 'hub_change_events_notify'") == 0
    # a wrong password: the server's refusal, never the password
    wrong = url.set(password="s3cret-wrong", username="nobody").render_as_string(hide_password=False)
    assert main(["monitor", "install-trigger", wrong]) == 2
    err = capsys.readouterr().err
    assert "could not install the trigger at" in err and "s3cret-wrong" not in err and "***" in err
    # SQLite departments are polled: no trigger to install
    assert main(["monitor", "install-trigger", "sqlite:///dept.sqlite"]) == 2
    assert "is not PostgreSQL" in capsys.readouterr().err
    assert main(["monitor", "install-trigger"]) == 2
    assert "or --sql to print the SQL" in capsys.readouterr().err
    # installed twice: still one trigger (the fixture installed it once)
    assert main(["monitor", "install-trigger", disability_pg]) == 0
    assert _sql(disability_pg, "SELECT count(*) FROM pg_trigger WHERE tgname = 'change_events_notify'") == 1
    capsys.readouterr()
    assert main(["monitor", "install-trigger", "--sql"]) == 0
    assert capsys.readouterr().out == ";\n\n".join(TRIGGER_SQL) + ";\n"
