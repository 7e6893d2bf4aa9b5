"""The circuit breaker's half-open state: one trial call; calls arriving meanwhile wait for its outcome."""

from __future__ import annotations

import asyncio

from hub.sources.breaker import CircuitBreaker


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
