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


async def follow(page: Any, selector: str) -> None:
    """Click something that loads a new page (a link, a form's submit) and wait until that page has loaded.

    A bare ``page.click`` returns once the click is dispatched; reading the page straight after it can read the old
    page (a form posted to the same URL, a slow answer on a loaded machine), so every navigating click goes here."""
    async with page.expect_navigation(wait_until="load"):
        await page.click(selector)
