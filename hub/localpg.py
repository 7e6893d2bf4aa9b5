"""A throw-away PostgreSQL server on 127.0.0.1, started from the local binaries (``initdb``, ``pg_ctl``).

Used by the test suite and the benchmarks; the hub itself never starts a database. As root PostgreSQL
refuses to run, so the server then runs as the ``postgres`` system user (created by the Debian package).
Each server listens on a free port, keeps ``fsync`` on (durability is what the audit tests measure), and is
removed by ``cleanup``.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from sqlalchemy import create_engine, text


def pg_bin() -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl``: on the PATH, else the newest Debian install; or None."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(candidates[-1]).parent if candidates else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgServer:
    def __init__(self, prefix: str = "hub-pg-", options: str = "") -> None:
        found = pg_bin()
        if found is None:
            raise FileNotFoundError(
                "PostgreSQL binaries (initdb, pg_ctl) not found: install the postgresql package (.ci/run does)"
            )
        self.bin = found
        self.options = options
        self.dir = Path(tempfile.mkdtemp(prefix=prefix))
        self.data = self.dir / "data"
        self.port = free_port()
        self.as_postgres = os.geteuid() == 0
        if self.as_postgres:
            shutil.chown(self.dir, "postgres", "postgres")

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self._as_owner(str(self.bin / args[0]), *args[1:], check=check)

    def _as_owner(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        prefix = ["runuser", "-u", "postgres", "--"] if self.as_postgres else []
        return subprocess.run([*prefix, *cmd], check=check, capture_output=True, text=True, timeout=120)

    def initdb(self) -> PgServer:
        """Create the cluster (not started)."""
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8")
        return self

    def init(self, template: Path | None = None) -> PgServer:
        """Create the cluster and start it. With ``template`` (the data directory of a cluster made by ``initdb``
        and never started), the cluster is a copy of it: a fraction of initdb's time."""
        if template is None:
            self.initdb()
        else:
            self._as_owner("cp", "-a", str(template), str(self.data))
        return self.start()

    def start(self) -> PgServer:
        opts = f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories={self.dir} -c fsync=on"
        if self.options:
            opts += " " + self.options
        self._run("pg_ctl", "-D", str(self.data), "-o", opts, "-l", str(self.dir / "log"), "-w", "-t", "60", "start")
        return self

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def kill(self) -> None:
        """Stop abruptly (immediate shutdown), as a crashed department server would."""
        self.stop("immediate")

    def wait_down(self, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) != 0:
                    return
            time.sleep(0.1)

    def url(self, db: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{db}"

    def create_db(self, name: str) -> str:
        engine = create_engine(self.url("postgres"), isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        engine.dispose()
        return self.url(name)

    def version(self) -> str:
        return self._run("postgres", "--version", check=False).stdout.strip()

    def cleanup(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)
