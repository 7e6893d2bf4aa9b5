"""Shared pieces of the benchmarks: data, hub settings, server processes, PostgreSQL, results, statistics."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from hub.localpg import PgServer

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
RESULTS = BENCH / "results"
DATA = RESULTS / "data"
POLICIES = REPO / "policies"
PYTHON = sys.executable

RESIDENTS = 10_000  # the `hub demo` data set
SEED = 20241
CASE_CLIENT = "linping-ca"  # civil affairs of 临平 (330113), registered for CASE
BATCH_CLIENT = "hangzhou-ca"  # civil affairs of Hangzhou (3301): every generated resident is in its jurisdiction
CLIENTS: dict[str, tuple[str, str, list[str]]] = {
    CASE_CLIENT: ("civil_affairs", "330113", ["VER", "MON", "CASE"]),
    BATCH_CLIENT: ("civil_affairs", "3301", ["VER", "MON", "CASE"]),
}
HEADERS_CASE = {"x-hub-purpose": "CASE", "x-hub-case": "CASE-2026-0001", "x-hub-officer": "officer-bench"}


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# -- data ----------------------------------------------------------------------------------------------
def department_data(residents: int = RESIDENTS, seed: int = SEED) -> Path:
    """``DATA/departments``: the demo's 11 department SQLite files, generated once per (residents, seed)."""
    from hub.demo.generate import generate

    out = DATA / "departments"
    marker = out / ".generated.json"
    wanted = {"residents": residents, "seed": seed}
    if marker.exists() and json.loads(marker.read_text()) == wanted:
        return out
    log(f"generating demo data: {residents} residents, seed {seed}")
    result = generate(out, residents=residents, seed=seed)
    (out / ".golden.json").write_text(json.dumps({"id": result.golden_id, "household": result.golden_household}))
    marker.write_text(json.dumps(wanted))
    return out


def fresh_dir(name: str) -> Path:
    """An empty ``RESULTS/run/<name>`` whose ``departments`` links to the shared department files."""
    root = RESULTS / "run" / name
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    (root / "departments").symlink_to(department_data())
    return root


def hub_env(data_dir: Path, database_url: str = "", **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env.update(
        HUB_DATA_DIR=str(data_dir),
        HUB_POLICY_DIR=str(POLICIES),
        HUB_TOKEN_TTL="7200",  # noqa: S106 (a lifetime in seconds, not a secret)
        PYTHONPATH=str(REPO),
    )
    if database_url:
        env["HUB_DATABASE_URL"] = database_url
    env.update(extra)
    return env


def register_clients(database_url: str, data_dir: Path) -> dict[str, str]:
    """Bring the hub database up to date and register the bench clients; return their secrets."""
    from hub.db import open_hub_db
    from hub.store.clients import ClientStore

    url = database_url or f"sqlite:///{data_dir / 'hub.sqlite'}"
    engine = open_hub_db(url)
    try:
        store = ClientStore(engine)
        return {cid: store.add(cid, dept, area, purposes)[1] for cid, (dept, area, purposes) in CLIENTS.items()}
    finally:
        engine.dispose()


def record_authorizations(database_url: str, data_dir: Path, households: Sequence[str]) -> None:
    """A valid 核对授权书 for each household, recorded for civil affairs (needed by purpose VER)."""
    from sqlalchemy import insert

    from hub.db import authorizations, hub_engine

    url = database_url or f"sqlite:///{data_dir / 'hub.sqlite'}"
    engine = hub_engine(url)
    now = datetime.now(UTC)
    rows = [
        {
            "household_id": h,
            "department": "civil_affairs",
            "scope": '["*"]',
            "signer": "bench",
            "valid_from": date.today() - timedelta(days=1),
            "valid_to": date.today() + timedelta(days=30),
            "document_sha256": "0" * 64,
            "recorded_by": "bench",
            "recorded_at": now,
        }
        for h in households
    ]
    try:
        with engine.begin() as conn:
            conn.execute(insert(authorizations), rows)
    finally:
        engine.dispose()


def sample_ids(area_prefix: str, n: int) -> list[str]:
    """The first ``n`` resident ID numbers (by ID) registered under ``area_prefix``."""
    import sqlite3

    db = department_data() / "public_security.sqlite"
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        rows = conn.execute(
            "SELECT id_number FROM residents WHERE area_code LIKE ? ORDER BY id_number LIMIT ?", (area_prefix + "%", n)
        ).fetchall()
    return [r[0] for r in rows]


# -- servers --------------------------------------------------------------------------------------------
@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    url: str
    log_path: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server process so far (Linux /proc)."""
        return proc_cpu_seconds(self.proc.pid)


def _stat_fields(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def proc_cpu_seconds(pid: int, *, reaped: bool = False) -> float:
    """User + system CPU time of process ``pid`` so far (Linux /proc); with ``reaped``, plus that of its children
    that have exited and been waited for (``cutime``/``cstime``)."""
    fields = _stat_fields(pid)
    if fields is None:
        return 0.0
    ticks = int(fields[11]) + int(fields[12]) + (int(fields[13]) + int(fields[14]) if reaped else 0)
    return ticks / os.sysconf("SC_CLK_TCK")


def postgres_cpu_seconds(pg: PgServer) -> float:
    """CPU time of a PostgreSQL server so far: the postmaster, every live child (backends, WAL writer,
    checkpointer, ...) and the children that have exited (the postmaster reaps them: its ``cutime``/``cstime``).
    Taken before and after a measured window, the difference is what the server spent in it."""
    try:
        postmaster = int((pg.data / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0.0
    total = proc_cpu_seconds(postmaster, reaped=True)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None and fields[1] == str(postmaster):  # fields[1] is the parent's pid
            total += proc_cpu_seconds(int(entry.name))
    return total


def start_server(
    name: str,
    cmd: Sequence[str],
    *,
    port: int,
    env: Mapping[str, str] | None = None,
    ready_path: str = "/healthz",
    timeout: float = 60,
    cwd: Path | None = None,
) -> Server:
    """Start ``cmd`` (which must listen on 127.0.0.1:``port``) and wait until ``ready_path`` answers."""
    log_path = RESULTS / "logs" / f"{name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    out = log_path.open("wb")
    proc = subprocess.Popen(list(cmd), env=dict(env or os.environ), stdout=out, stderr=subprocess.STDOUT, cwd=cwd)
    out.close()
    url = f"http://127.0.0.1:{port}"
    server = Server(name, proc, url, log_path)
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}; see {log_path}:\n{log_path.read_text()[-2000:]}")
        try:
            r = httpx.get(url + ready_path, timeout=2)
            if r.status_code < 500:
                return server
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"{name} did not answer on {url}{ready_path} within {timeout}s; see {log_path}")
        time.sleep(0.1)


def uvicorn_cmd(app: str, port: int, *, factory: bool = True) -> list[str]:
    cmd = [PYTHON, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--log-level", "warning", "--no-access-log", "--timeout-graceful-shutdown", "5"]
    if factory:
        cmd.append("--factory")
    return cmd


@contextlib.contextmanager
def servers() -> Iterator[list[Server]]:
    """A list to put started servers in; every one is stopped on the way out, whatever happened."""
    started: list[Server] = []
    try:
        yield started
    finally:
        for s in reversed(started):
            s.stop()


def hub_token(base_url: str, client_id: str, secret: str) -> str:
    r = httpx.post(
        base_url + "/oauth/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret), timeout=30
    )
    r.raise_for_status()
    return str(r.json()["access_token"])


# -- PostgreSQL ----------------------------------------------------------------------------------------
@contextlib.contextmanager
def postgres() -> Iterator[PgServer | None]:
    """A running PostgreSQL server, or None (with a message) when the binaries are missing."""
    try:
        server = PgServer(prefix="hub-bench-pg-", options="-c synchronous_commit=on -c max_connections=100")
    except FileNotFoundError as exc:
        log(f"PostgreSQL skipped: {exc}")
        yield None
        return
    try:
        server.init()
        yield server
    finally:
        server.cleanup()


# -- results -------------------------------------------------------------------------------------------
def machine() -> dict[str, Any]:
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = ""
    with contextlib.suppress(OSError, IndexError, ValueError):
        kb = int(Path("/proc/meminfo").read_text().split("\n")[0].split()[1])
        mem = f"{kb / 1024 / 1024:.0f} GiB"
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory": mem,
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
    }


def write_result(name: str, result: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    result = {
        "benchmark": name,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "loadavg_at_end": [round(x, 2) for x in os.getloadavg()],  # other work on the machine shows here
    } | result
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    log(f"wrote {path.relative_to(REPO)}")
    return path


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) by linear interpolation; NaN for no values."""
    if not values:
        return float("nan")
    s = sorted(values)
    k = (len(s) - 1) * q / 100
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def load(
    url: str,
    headers: Mapping[str, str],
    bodies: Sequence[str],
    *,
    concurrency: int,
    duration: float,
    warmup: float,
    name: str = "load",
) -> dict[str, Any]:
    """Run ``bench.loadgen`` in its own process against ``url`` and return its JSON result."""
    spec = RESULTS / "logs" / f"{name}.spec.json"
    spec.parent.mkdir(parents=True, exist_ok=True)
    spec.write_text(json.dumps({"headers": dict(headers), "bodies": list(bodies)}, ensure_ascii=False))
    cmd = [PYTHON, "-m", "bench.loadgen", "--url", url, "--spec", str(spec)]
    cmd += ["-c", str(concurrency), "-d", str(duration), "-w", str(warmup)]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + warmup + 120, env=env, cwd=REPO)
    if out.returncode != 0:
        raise RuntimeError(f"load generator failed ({out.returncode}): {out.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(out.stdout)
    return result
