"""Monitor: event-to-alert latency at 100 events/s, and the monthly sweep's throughput (docs/monitoring.md).

In-process, the real app with its monitor running (``HUB_MONITOR_INTERVAL`` 0.05 s) over a copy of the demo's
department files (events are written to them): the demo's own events are handled first; then disability changes
(grade 2, physical) are written to the federation's database at 100 events/s for distinct low-income residents,
and each alert's arrival (the monitor's announcement, after its commit) is timed from the moment its event was
committed. Then ``sweep``: every sweep rule over the low-income population, residents/s, requests and SQL
statements per department.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sqlite3
import threading
import time
from contextlib import closing
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from bench.common import POLICIES, department_data, fresh_dir, log, median, percentile, write_result


def write_events(root: Path, residents: list[str], rate: float, written: dict[str, float]) -> None:
    """As the disabled persons' federation would: each resident's certificate becomes physical grade 2 and an
    outbox row is written, in one transaction, at ``rate`` per second (one connection, as a department's system
    keeps; ``hub demo event`` opens one per event, too slow for 100/s)."""
    today = date.today().isoformat()
    with closing(sqlite3.connect(root / "departments" / "disability.sqlite", timeout=30, isolation_level=None)) as db:
        t0 = time.perf_counter()
        for i, id_number in enumerate(residents):
            time.sleep(max(0.0, t0 + i / rate - time.perf_counter()))
            db.execute("BEGIN IMMEDIATE")
            changed = db.execute(
                "UPDATE certificates SET category = 4, grade = 2, change_date = ? WHERE id_number = ?",
                (today, id_number),
            ).rowcount
            if not changed:
                db.execute(
                    "INSERT INTO certificates (id_number, cert_no, category, grade, issue_date, change_date, "
                    "two_subsidies) VALUES (?, ?, 4, 2, ?, NULL, 'none')",
                    (id_number, f"{id_number}42", today),
                )
            seq = db.execute("SELECT coalesce(max(seq), 0) + 1 FROM change_events").fetchone()[0]
            db.execute(
                "INSERT INTO change_events (seq, id_number, kind, occurred_on, recorded_at) VALUES (?, ?, ?, ?, ?)",
                (seq, id_number, "disability_changed", today, datetime.now(UTC).isoformat()),
            )
            db.execute("COMMIT")
            written[f"disability:{seq}"] = time.perf_counter()


async def run(quick: bool) -> dict[str, Any]:
    from hub.app import create_app
    from hub.departments import OUTBOXES
    from hub.monitor.alerts import NewAlert
    from hub.settings import Settings

    root = fresh_dir("monitor")
    (root / "departments").unlink()
    shutil.copytree(department_data(), root / "departments")
    settings = Settings(data_dir=root, policy_dir=POLICIES, monitor=True, monitor_interval=0.05)
    app = create_app(settings, sign_interval=3600)
    state = app.state.hub
    arrived: dict[str, float] = {}

    def heard(alert: NewAlert) -> None:
        arrived.setdefault(alert.source, time.perf_counter())

    state.monitor.listeners.append(heard)
    with closing(sqlite3.connect(root / "departments" / "civil_affairs.sqlite")) as db:
        population = [r[0] for r in db.execute("SELECT DISTINCT id_number FROM assistance ORDER BY id_number")]
    ends = {}
    for dept in OUTBOXES:
        with closing(sqlite3.connect(root / "departments" / f"{dept}.sqlite")) as db:
            ends[dept] = db.execute("SELECT coalesce(max(seq), 0) FROM change_events").fetchone()[0]
    async with app.router.lifespan_context(app):
        started = time.perf_counter()
        while any(state.alerts.position(d) < n for d, n in ends.items()):
            await asyncio.sleep(0.05)
        backlog = {"events": sum(ends.values()), "seconds": round(time.perf_counter() - started, 2)}
        log(f"demo backlog: {backlog['events']} events in {backlog['seconds']} s")
        n = 100 if quick else 300
        rate = 100.0
        written: dict[str, float] = {}
        t0 = time.perf_counter()
        writer = threading.Thread(target=write_events, args=(root, population[:n], rate, written))
        writer.start()
        while writer.is_alive():
            await asyncio.sleep(0.05)
        writer.join()
        offered = len(written) / (time.perf_counter() - t0)
        deadline = time.perf_counter() + 60
        while state.alerts.position("disability") < max(int(k.split(":")[1]) for k in written):
            if time.perf_counter() > deadline:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)
        latencies = [(arrived[k] - t) * 1000 for k, t in written.items() if k in arrived]
        latency = {
            "events": len(written),
            "offered_per_s": round(offered, 1),
            "alerts": len(latencies),
            "p50_ms": round(percentile(latencies, 50), 1),
            "p99_ms": round(percentile(latencies, 99), 1),
            "median_ms": round(median(latencies), 1),
        }
        log(f"event to alert: {latency}")
        stats = await state.monitor.sweep()
        sweep = {
            "residents": stats.residents,
            "seconds": round(stats.seconds, 2),
            "residents_per_s": round(stats.residents / stats.seconds, 1) if stats.seconds else None,
            "requests": stats.requests,
            "alerts": stats.alerts,
            "statements": dict(sorted(stats.statements.items())),
        }
        log(f"sweep: {sweep}")
    state.close()
    return {"backlog": backlog, "latency": latency, "sweep": sweep}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    write_result("monitor", asyncio.run(run(args.quick)))


if __name__ == "__main__":
    main()
