"""New alerts for subscribers, read from the alert store after a cursor (docs/monitoring.md, "Subscription").

The store is the truth, not the announcement: a follower reads ``AlertStore.page(area, after=cursor)`` whenever
this process's monitor announces a new alert, and at least every ``interval`` seconds otherwise, so alerts
created by another hub process on the same hub database arrive too (a poll later), and a subscriber that resumes
with ``after`` gets every alert since, at least once. The query already keeps to the subscriber's area; the
subscription re-checks each alert against the caller's current area before it is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator

import anyio

from hub.monitor.alerts import Alert, AlertStore, NewAlert


class AlertFeed:
    """One per hub process: wakes every follower when the monitor announces new alerts."""

    def __init__(self, store: AlertStore, interval: float) -> None:
        self.store, self.interval = store, interval
        self._wakes: set[asyncio.Event] = set()
        self.following = 0  # followers whose cursor is set: an alert committed from now on reaches them

    def announce(self, alert: NewAlert | None = None) -> None:
        """A monitor listener (called in the event loop, after the alert is committed)."""
        for wake in list(self._wakes):
            wake.set()

    def _page(self, area: str, cursor: str | None) -> tuple[list[Alert], bool]:
        return self.store.page(area, after=cursor, first=100)

    async def follow(self, area: str, after: str | None = None) -> AsyncIterator[Alert]:
        """Alerts in ``area`` created after ``after`` (an alert id; None: from now on), oldest first, forever."""
        wake = asyncio.Event()
        self._wakes.add(wake)
        counted = False
        try:
            cursor = after if after else await anyio.to_thread.run_sync(self.store.latest, area)
            self.following, counted = self.following + 1, True
            pending: deque[Alert] = deque()
            while True:
                if not pending:
                    wake.clear()
                    found, _ = await anyio.to_thread.run_sync(self._page, area, cursor)
                    if not found:
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(wake.wait(), self.interval)
                        continue
                    pending.extend(found)
                    cursor = found[-1].id
                yield pending.popleft()
        finally:
            self._wakes.discard(wake)
            if counted:
                self.following -= 1
