"""Due dates in working days: official Chinese holidays and adjusted working days (调休), from the maintained
``chinese-calendar`` package. For a year it does not cover yet (the State Council publishes each year's
arrangement in November), Monday to Friday count, and the basis says so."""

from __future__ import annotations

from datetime import date, timedelta

import chinese_calendar  # type: ignore[import-untyped]

OFFICIAL = "chinese-calendar"
WEEKDAYS = "weekdays (no official calendar for that year yet)"


def _is_workday(day: date) -> tuple[bool, bool]:
    try:
        return bool(chinese_calendar.is_workday(day)), True
    except NotImplementedError:
        return day.weekday() < 5, False


def add_working_days(start: date, days: int) -> tuple[date, str]:
    """The date ``days`` working days after ``start`` (``start`` itself does not count), and the basis used."""
    day, left, official = start, days, True
    while left > 0:
        day += timedelta(days=1)
        work, known = _is_workday(day)
        official = official and known
        if work:
            left -= 1
    return day, OFFICIAL if official else WEEKDAYS
