"""Debian's chromium driven by Playwright, for the tests of web pages (the console, GraphiQL).

Launched by path (Playwright ignores ``PLAYWRIGHT_CHROMIUM_EXECUTABLE_PATH`` and ``playwright install`` needs the
internet); .ci/run installs ``chromium`` and a CJK font, and a machine without them skips these tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = Path(__file__).parent / "console" / "screenshots"  # every page test writes its screenshots here
MISSING = "no /usr/bin/chromium: `apt-get install chromium fonts-wqy-microhei` (.ci/run does) to run browser tests"
ARGS = [
    "--no-sandbox",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-sync",
    "--no-first-run",
    "--metrics-recording-only",
]


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(MISSING)
    from playwright.async_api import async_playwright

    SHOTS.mkdir(exist_ok=True)
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield b
        finally:
            await b.close()
