"""Time as a parameter: everything that stamps or compares times takes a ``Clock``.

A clock is any callable returning the current instant as an aware UTC ``datetime``. The hub uses
``system_clock``; tests use ``TestClock`` so that nothing depends on the hour, date or time zone they run at.
Dates that the law counts in (grant validity, household authorizations, "today" in a department's data) are
China Standard Time dates (UTC+8, no daylight saving), whatever the server's own time zone.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone

Clock = Callable[[], datetime]

CHINA = timezone(timedelta(hours=8), "CST")


def system_clock() -> datetime:
    return datetime.now(UTC)


def china_date(at: datetime) -> date:
    """The calendar date in China at instant ``at`` (an aware datetime)."""
    return at.astimezone(CHINA).date()


class TestClock:
    """A clock that starts at a chosen instant and then runs at real speed (so durations stay realistic).

    ``set(at)`` moves it to another instant; it keeps running from there.
    """

    __test__ = False  # not a pytest test class

    def __init__(self, start: datetime) -> None:
        self.set(start)

    def set(self, at: datetime) -> None:
        if at.tzinfo is None:
            raise ValueError("TestClock needs an aware datetime")
        self._start, self._mono = at.astimezone(UTC), time.monotonic()

    def __call__(self) -> datetime:
        return self._start + timedelta(seconds=time.monotonic() - self._mono)
