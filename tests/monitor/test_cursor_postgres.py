"""Two hub processes on one PostgreSQL hub database: while one handles a department's events its cursor row is
locked (FOR UPDATE SKIP LOCKED), so the other skips that department instead of handling the same events."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hub.clock import system_clock
from hub.db import hub_engine, upgrade
from hub.monitor.alerts import AlertStore
from tests.pgserver import new_server


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    server = new_server()
    try:
        url = server.create_db("hub")
        upgrade(url)
        yield url
    finally:
        server.cleanup()


def test_a_claimed_cursor_is_skipped_by_another_process(pg_url: str) -> None:
    one, two = AlertStore(hub_engine(pg_url), system_clock), AlertStore(hub_engine(pg_url), system_clock)
    first = one.claim("disability")
    assert first is not None and first.position == 0
    assert two.claim("disability") is None  # held: the second process moves on
    other = two.claim("tax")  # another department is free
    assert other is not None
    two.release(other)
    one.finish(first, 7, [dict(department="disability", seq=7, kind="disability_changed", outcome="no_match",
                               rules='["M1"]', reason="no rule's conditions held")], [], [])  # fmt: skip
    again = two.claim("disability")
    assert again is not None and again.position == 7  # handled once; the other process starts after it
    two.release(again)
    one.engine.dispose()
    two.engine.dispose()
