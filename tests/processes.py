"""``hub serve`` processes of their own, for the tests of several hub processes on one hub database."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from hub.localpg import free_port

Served = list[tuple[subprocess.Popen[bytes], int]]


def serve_hubs(root: Path, env: dict[str, str], n: int = 2, ready: str = "/healthz", timeout: float = 60) -> Served:
    """Start ``n`` ``hub serve`` processes (``env`` as their environment, logs in ``root/serve-<i>.log``) and
    wait until each answers ``ready`` with 200; (process, port) each. A process that does not come up fails the
    test with the end of its log, the others killed."""
    served: Served = []
    for i in range(n):
        port = free_port()
        with (root / f"serve-{i}.log").open("wb") as log:
            cmd = [sys.executable, "-m", "hub", "serve", "--port", str(port)]
            served.append((subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT), port))
    deadline = time.monotonic() + timeout
    for i, (proc, port) in enumerate(served):
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}{ready}", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                stop_hubs(served, kill=True)
                pytest.fail(f"hub serve on port {port} did not start:\n{(root / f'serve-{i}.log').read_text()[-3000:]}")
            time.sleep(0.1)
    return served


def stop_hubs(served: Served, kill: bool = False) -> None:
    for proc, _ in served:
        if proc.poll() is None:
            proc.kill() if kill else proc.terminate()
            proc.wait(10)
