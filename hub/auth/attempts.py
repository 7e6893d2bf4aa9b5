"""Failed client authentications at the token endpoint: counted per client id and per address, and refused
for a while once too many failed in a window, so a secret cannot be guessed at line speed.

Counts are kept in the process (several processes each keep their own; with N processes an attacker gets at
most N times the budget). Every failed attempt and every refusal is also written to the audit log by the
token endpoint, so privacy officers see them whatever process answered.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable


class FailedAttempts:
    """Sliding-window failure counter. ``retry_after(key)`` > 0 means: refuse ``key`` for that many seconds."""

    def __init__(self, limit: int, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.window, self.clock = limit, window, clock
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, key: str) -> deque[float]:
        now = self.clock()
        seen = self._failures.get(key)
        if seen is None:
            return deque()
        while seen and seen[0] <= now - self.window:
            seen.popleft()
        if not seen:
            del self._failures[key]
        return seen

    def retry_after(self, key: str) -> float:
        seen = self._recent(key)
        if self.limit <= 0 or len(seen) < self.limit:
            return 0.0
        return max(0.0, seen[0] + self.window - self.clock())

    def failed(self, key: str) -> None:
        self._recent(key)
        self._failures.setdefault(key, deque()).append(self.clock())
        if len(self._failures) > 100_000:  # bounded memory under a flood of distinct keys: forget the oldest
            for old in list(self._failures)[:10_000]:
                del self._failures[old]
