"""A per-source circuit breaker: after ``threshold`` consecutive failures the source is skipped for
``reset_after`` seconds (its fields come back ``UPSTREAM_UNAVAILABLE`` at once instead of waiting for the
timeout); then one trial call is let through (half-open) and its outcome closes or re-opens the breaker.
Calls arriving while that trial is in flight wait for its outcome (``admit``) rather than fail: one request
often sends a department several statements at once, and none of them should fail because another one
happened to be the trial. The breaker never bypasses policy or audit: it only decides whether to call the
department at all."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class CircuitBreaker:
    def __init__(self, threshold: int = 3, reset_after: float = 10.0, clock: Callable[[], float] = time.monotonic):
        self.threshold = threshold
        self.reset_after = reset_after
        self.clock = clock
        self.failures = 0
        self.opened_at: float | None = None
        self.trial_in_flight = False
        # told the outcome ("ok", "failed", "timeout", "circuit_open") and duration of each guarded call
        self.observe: Callable[[str, float], None] | None = None

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        if self.clock() - self.opened_at >= self.reset_after:
            return "half-open"
        return "open"

    def allow(self) -> bool:
        state = self.state
        if state == "closed":
            return True
        if state == "half-open" and not self.trial_in_flight:
            self.trial_in_flight = True
            return True
        return False

    async def admit(self, wait: float) -> bool:
        """``allow``, except that while a half-open trial call is in flight, wait (at most ``wait`` seconds) for
        its outcome: admitted if it closed the breaker, refused if it re-opened it."""
        deadline = time.monotonic() + wait
        while True:
            if self.allow():
                return True
            if not (self.trial_in_flight and self.state == "half-open") or time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.005)

    def success(self) -> None:
        self.failures = 0
        self.opened_at = None
        self.trial_in_flight = False

    def abandoned(self) -> None:
        """The call was cancelled before it finished: it proves nothing, so let another trial through."""
        self.trial_in_flight = False

    def failure(self) -> None:
        self.failures += 1
        self.trial_in_flight = False
        if self.failures >= self.threshold or self.opened_at is not None:
            self.opened_at = self.clock()
