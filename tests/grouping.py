"""How pytest-xdist hands the suite to its workers (``-n auto --dist loadgroup``; a plugin of tests/conftest.py).

Each test gets a group (:func:`xdist_group`); the tests of one group run in one worker, in order. The scheduler
below hands the groups out in an order that keeps both workers busy to the end and never makes a worker switch the
shared ``hub_settings`` fixture back from PostgreSQL to SQLite (a session fixture with parameters is built again at
each switch: a new PostgreSQL server, and a hub whose clients are already registered)."""

from __future__ import annotations

import os
from typing import Any

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Groups known to take long (seconds of CPU on the 2-core machine, 2026-12): handed out first, longest first, so
# that no worker starts one while the other has nothing left. Every other group follows, largest first.
SLOW_FIRST = (
    "live",  # six subgraph and hub processes (tests/live.py) and the tests that use them
    "tests/test_fuzz.py",  # 800 hypothesis-graphql documents against a served hub
    "tests/monitor/test_multiprocess_postgres.py",  # two `hub serve` processes, one killed
    "tests/audit/test_verify_stream.py",  # traced-memory runs over 50,000 and 25,000 entries
    "tests/compiled/test_differential.py:sqlite",  # 200 generated operations, each on both paths
    "tests/pg/test_multiprocess.py",
    "tests/console/test_console_browser.py",  # chromium
    "demo-data",  # the demo's default data (10,000 residents)
)


def xdist_group(item: pytest.Item) -> str:
    """One file per group (its module fixtures are built once), split by the ``hub_settings`` parameter (so the
    SQLite tests of every file can run before any file's PostgreSQL tests); except that the tests of an expensive
    session fixture are one group, so only one worker builds it: the live subgraph and hub processes
    (``tests/live.py``) and the demo's default-size data (``demo_data``). No ``]`` in a name: pytest-xdist reads
    the group after the last ``@`` of a node id only when it comes after the last ``]``."""
    fixtures = getattr(item, "fixturenames", ())
    if "fed" in fixtures:
        return "live"
    if "demo_data" in fixtures:
        return "demo-data"
    group = os.path.relpath(str(item.path), REPO)
    database = getattr(getattr(item, "callspec", None), "params", {}).get("hub_settings")
    return f"{group}:{database}" if database else group


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's worker reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(pytest.mark.xdist_group(xdist_group(item)))


def _order(scope: str, tests: int) -> tuple[int, int, int]:
    postgres = scope.endswith(":postgres")
    slow = SLOW_FIRST.index(scope) if scope in SLOW_FIRST else len(SLOW_FIRST)
    return (postgres, slow, -tests)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    if config.getoption("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling

    class Scheduling(LoadGroupScheduling):  # type: ignore[misc]
        """pytest-xdist's loadgroup, its queue in :func:`_order`: every SQLite or database-free group before any
        PostgreSQL one (each worker takes groups from the front, so none goes back to SQLite), slow ones first."""

        ordered = False

        def _assign_work_unit(self, node: Any) -> None:
            if not self.ordered:
                queue = sorted(self.workqueue.items(), key=lambda kv: _order(kv[0], len(kv[1])))
                self.workqueue.clear()
                self.workqueue.update(queue)
                self.ordered = True
            super()._assign_work_unit(node)

    return Scheduling(config, log)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node: Any, ids: list[str]) -> None:
    """Stops the run when the workers' tests did not get their group: without the groups every worker builds every
    file's and session's fixtures (the live processes, the demo data, PostgreSQL copies) and the suite takes about
    twice as long, silently. pytest 9.2 with pytest-xdist 3.8 did that (pytest-xdist#1386)."""
    if node.config.getoption("dist") == "loadgroup" and ids and not any("@" in i for i in ids):
        pytest.exit(
            "--dist loadgroup did not group the tests (a pytest / pytest-xdist mismatch, pytest-xdist#1386): "
            "install the versions pyproject.toml allows, or run with -n 0",
            returncode=pytest.ExitCode.USAGE_ERROR,
        )
