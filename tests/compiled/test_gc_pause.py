"""The collector paused while requests are under way (``hub.compiled.run.gc_paused``): reentrant, left alone when
someone else paused it, never paused for long however requests overlap, and held for a whole GraphQL request."""

from __future__ import annotations

import contextvars
import gc
from collections.abc import Iterator
from typing import Any

import pytest

from hub.compiled import run
from tests.conftest import Hub


@pytest.fixture
def collector() -> Iterator[None]:
    was = gc.isenabled()
    gc.enable()
    yield
    assert run._paused == 0
    if not was:
        gc.disable()


def test_reentrant_and_enabled_again_by_the_last(collector: None) -> None:
    with run.gc_paused():
        assert not gc.isenabled()
        with run.gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the outer request is still under way
    assert gc.isenabled()


def test_a_collector_paused_by_someone_else_stays_paused(collector: None) -> None:
    gc.disable()
    with run.gc_paused():
        assert run._paused == 0
    assert not gc.isenabled()
    gc.enable()


def test_overlapping_requests_still_let_it_collect(collector: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each request in a context of its own (as asyncio gives each task); one that is nested in another's (a
    compiled run within the endpoint's pause) adds nothing."""
    collected: list[int] = []
    monkeypatch.setattr(run.gc, "collect", lambda generation=2: collected.append(generation) or 0)
    now = [100.0]
    monkeypatch.setattr(run.time, "monotonic", lambda: now[0])

    def request(seconds: float) -> None:
        with run.gc_paused():
            with run.gc_paused():  # nested: nothing more, and no collection however long it took
                now[0] += seconds

    outer, long = run.gc_paused(), contextvars.Context()
    long.run(outer.__enter__)  # a long request
    try:
        for _ in range(3):  # others come and go while it runs
            contextvars.Context().run(request, 2.0)
        assert collected == [2]  # a full one, once more than MAX_PAUSE had passed since the pause began (at 6 s)
        contextvars.Context().run(request, 4.0)
        assert collected == [2]  # 4 s since that collection
        contextvars.Context().run(request, 1.5)
        assert collected == [2, 2]
        assert not gc.isenabled() and run._paused == 1
    finally:
        long.run(outer.__exit__, None, None, None)
    assert gc.isenabled() and collected == [2, 2]
    request(10.0)  # alone, nested: no collection
    assert collected == [2, 2] and gc.isenabled()


async def test_the_collector_is_paused_for_the_whole_graphql_request(
    hub: Hub, collector: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the response's encoding (after the compiled run and the audit append), and enabled after it."""
    from hub.compiled import encode

    seen: list[bool] = []
    render = encode.AnswerResponse.render

    def spy(self: Any, content: Any) -> bytes:
        seen.append(gc.isenabled())
        return render(self, content)

    monkeypatch.setattr(encode.AnswerResponse, "render", spy)
    r = await hub.query("{ catalog { coordinate } }")
    assert r.status_code == 200 and seen == [False]
    assert gc.isenabled()
