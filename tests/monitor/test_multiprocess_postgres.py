"""Two ``hub serve`` processes with the monitor on, one PostgreSQL hub database: they share the departments'
events (a cursor row is held FOR UPDATE SKIP LOCKED while its batch is handled), one is killed with SIGKILL
mid-stream, and every event is still handled exactly once, each match making exactly one alert."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select

from hub.clock import system_clock
from hub.db import alert_history, alerts, monitor_cursors, monitor_events, upgrade
from hub.demo.events import emit_event
from hub.demo.generate import GenerateResult
from hub.departments import OUTBOXES
from hub.settings import Settings
from tests.conftest import POLICIES
from tests.monitor.test_monitor import GOLDEN
from tests.pgserver import new_server
from tests.processes import serve_hubs, stop_hubs

pytestmark = pytest.mark.postgres


def outbox_ends(root: Path) -> dict[str, int]:
    ends = {}
    for dept in OUTBOXES:
        with closing(sqlite3.connect(root / "departments" / f"{dept}.sqlite")) as db:
            ends[dept] = db.execute("SELECT coalesce(max(seq), 0) FROM change_events").fetchone()[0]
    return ends


@pytest.fixture(scope="module")
def cluster(dept_data: tuple[Path, GenerateResult], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    pg = new_server()
    url = pg.create_db("hub")
    root = tmp_path_factory.mktemp("monitor-cluster")
    shutil.copytree(dept_data[0] / "departments", root / "departments")  # events are written to them
    upgrade(url)
    env = {
        **os.environ,
        "HUB_DATA_DIR": str(root),
        "HUB_DATABASE_URL": url,
        "HUB_POLICY_DIR": str(POLICIES),
        "HUB_MONITOR": "1",
        "HUB_MONITOR_INTERVAL": "0.05",
        "HUB_MONITOR_BATCH": "1",  # one event a batch: the kill lands in the middle of the stream, however fast
    }
    served = serve_hubs(root, env)
    try:
        yield {"url": url, "root": root, "procs": [p for p, _ in served]}
    finally:
        stop_hubs(served)
        pg.cleanup()


def test_two_processes_each_event_once_and_sigkill(cluster: Any) -> None:
    engine = create_engine(cluster["url"])
    root: Path = cluster["root"]
    ends = outbox_ends(root)
    total = sum(ends.values())

    def handled() -> int:
        with engine.connect() as conn:
            return int(conn.execute(select(func.coalesce(func.sum(monitor_cursors.c.position), 0))).scalar_one())

    def wait_until(n: int, stalled: float = 120) -> None:
        """Until ``n`` events are handled; fails when none is handled for ``stalled`` seconds (a loaded machine is
        slow, a stuck monitor makes no progress)."""
        last, since = handled(), time.monotonic()
        while last < n:
            assert time.monotonic() - since < stalled, f"monitor stuck at {last} of {n} events"
            time.sleep(0.05)
            now = handled()
            if now > last:
                last, since = now, time.monotonic()

    wait_until(total // 3)  # both processes are reading; kill one in the middle of the stream
    victim, survivor = cluster["procs"]
    victim.send_signal(signal.SIGKILL)
    assert victim.wait(10) == -signal.SIGKILL
    killed_at = handled()
    assert killed_at < total, "the stream was over before the kill"
    # the golden event arrives after the kill: only the survivor is left to handle it
    settings = Settings(data_dir=root, policy_dir=POLICIES)
    dept, seq = emit_event(settings, "disability_changed", GOLDEN, category=4, grade=2, clock=system_clock)
    ends[dept] = seq
    wait_until(sum(ends.values()))
    assert survivor.poll() is None
    with engine.connect() as conn:
        events = conn.execute(select(monitor_events.c.department, monitor_events.c.seq, monitor_events.c.outcome)).all()
        made = conn.execute(select(alerts.c.rule_id, alerts.c.id_number, alerts.c.source)).all()
        again = conn.execute(select(alert_history.c.detail).where(alert_history.c.action == "matched_again")).all()
    engine.dispose()
    # every event once: each (department, seq) up to the end of each outbox, no gap and no repeat
    assert sorted((d, s) for d, s, _ in events) == sorted((d, s) for d in ends for s in range(1, ends[d] + 1))
    # each match made exactly one alert (an event handled twice would make a second, or a 'matched again' note)
    assert not [k for k, n in Counter((r, i, s) for r, i, s in made).items() if n > 1]
    assert not [k for k, n in Counter((r, i) for r, i, _ in made).items() if n > 1]
    # an event that matched made an alert, or a note on the open alert of the same rule and resident; once each
    notes = [detail for (detail,) in again]
    assert not [k for k, n in Counter(notes).items() if n > 1]
    alerted = {f"{d}:{s}" for d, s, o in events if o == "alerted"}
    assert {s for _, _, s in made} | {n.split(" ")[0] for n in notes} == alerted
    assert [(r, s) for r, i, s in made if i == GOLDEN] == [("M1", f"disability:{seq}")]
    print(f"\nmonitor kill test: {total + 1} events, killed at {killed_at}, {len(made)} alerts, each once")
