"""A hub of its own for the operations tests that break something (its database, its lock)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from hub.app import create_app
from hub.demo.generate import GenerateResult
from tests.conftest import CLIENTS, Hub, make_settings, working_clock

OwnHub = Callable[..., AbstractAsyncContextManager[Hub]]


@pytest.fixture
def own_hub(dept_data: tuple[Path, GenerateResult], tmp_path: Path) -> OwnHub:
    """``async with own_hub(**settings) as hub``: a hub on SQLite in ``tmp_path``, the suite's clients registered."""
    (tmp_path / "departments").symlink_to(dept_data[0] / "departments")

    @asynccontextmanager
    async def make(**overrides: Any) -> AsyncIterator[Hub]:
        exporter = overrides.pop("span_exporter", None)  # traces to a test's exporter (hub/tracing.py)
        settings = make_settings(tmp_path, **overrides)
        app = create_app(settings, sign_interval=3600, clock=working_clock(), span_exporter=exporter)
        secrets = {}
        for cid, (dept, area, purposes, roles) in CLIENTS.items():
            _, secrets[cid] = app.state.hub.clients.add(cid, dept, area, purposes, roles)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as client:
                yield Hub(app, client, settings, secrets, dept_data[1], {})

    return make
