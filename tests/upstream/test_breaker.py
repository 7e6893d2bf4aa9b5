"""The circuit breaker's half-open state: one trial call; calls arriving meanwhile wait for its outcome."""

from __future__ import annotations

import asyncio

import pytest

from hub.errors import UpstreamUnavailable
from hub.upstream.breaker import CircuitBreaker
from hub.upstream.guard import guarded


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def _opened() -> tuple[CircuitBreaker, Clock]:
    clock = Clock()
    b = CircuitBreaker(threshold=2, reset_after=10, clock=clock)
    for _ in range(2):
        assert await b.admit(1.0)
        b.failure()
    assert b.state == "open" and not await b.admit(1.0)  # open: refused at once, no waiting
    clock.now += 10
    assert b.state == "half-open"
    return b, clock


async def test_calls_during_a_successful_trial_wait_and_go_through() -> None:
    b, _ = await _opened()
    assert await b.admit(1.0)  # the trial
    waiting = [asyncio.create_task(b.admit(1.0)) for _ in range(3)]
    await asyncio.sleep(0.02)
    assert not any(t.done() for t in waiting)  # they wait for the trial's outcome
    b.success()
    assert await asyncio.gather(*waiting) == [True, True, True] and b.state == "closed"


async def test_calls_during_a_failed_trial_are_refused() -> None:
    b, _ = await _opened()
    assert await b.admit(1.0)
    waiting = asyncio.create_task(b.admit(1.0))
    await asyncio.sleep(0.02)
    b.failure()
    assert await waiting is False and b.state == "open"


async def test_waiting_is_bounded() -> None:
    b, _ = await _opened()
    assert await b.admit(1.0)  # a trial that never reports back
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await b.admit(0.05) is False
    assert loop.time() - started < 1.0


async def test_the_guarded_call_maps_failures_and_counts_them() -> None:
    clock = Clock()
    b = CircuitBreaker(threshold=2, reset_after=10, clock=clock)
    with pytest.raises(UpstreamUnavailable, match=r"^department x is unavailable$"):
        async with guarded(b, 1.0, "department x"):
            raise OSError("secret detail")
    with pytest.raises(UpstreamUnavailable, match=r"^department x did not answer within 0.01s$"):
        async with guarded(b, 0.01, "department x"):
            await asyncio.sleep(1)
    assert b.state == "open"
    with pytest.raises(UpstreamUnavailable, match=r"^department x is unavailable \(circuit open\)$"):
        async with guarded(b, 1.0, "department x"):
            pass
    clock.now += 10  # half-open: the trial is cancelled, which proves nothing and lets the next trial through
    with pytest.raises(asyncio.CancelledError):
        async with guarded(b, 1.0, "department x"):
            raise asyncio.CancelledError
    assert not b.trial_in_flight
    async with guarded(b, 1.0, "department x"):
        pass
    assert b.state == "closed"
    with pytest.raises(KeyError):  # not one of the failures named: passed on, not counted
        async with guarded(b, 1.0, "department x", failures=(OSError,)):
            raise KeyError("k")
    assert b.failures == 0
