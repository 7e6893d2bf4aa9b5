"""The README's example query, run against the demo data it names, returns exactly the output it shows."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest

from hub.app import create_app
from hub.demo.generate import GenerateResult
from tests.conftest import REPO, make_settings, without_receipt, working_clock

README = (REPO / "README.md").read_text(encoding="utf-8")


def test_readme_first_screen_has_the_two_setup_commands() -> None:
    first_screen = README.splitlines()[:12]
    commands = [ln for ln in first_screen if ln.startswith("python3 -m venv .venv")]
    assert commands == [
        "python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/hub demo",
        "python3 -m venv .venv && .venv/bin/pip install -e '.[test]' && .venv/bin/pytest",
    ]


async def test_readme_example_output_is_real(tmp_path: Path, demo_data: tuple[Path, GenerateResult]) -> None:
    query = json.loads(re.search(r"-d '(\{\"query\":\"\{ household.*?\})'", README).group(1))["query"]  # type: ignore[union-attr]
    shown = json.loads(re.search(r"```json\n(\{\"data\": \{\"household\".*?)\n```", README, re.S).group(1))  # type: ignore[union-attr]
    (tmp_path / "departments").symlink_to(demo_data[0] / "departments")  # the demo's defaults: 10,000, seed 20241
    app = create_app(make_settings(tmp_path), sign_interval=3600, clock=working_clock())
    _, secret = app.state.hub.clients.add("linping-civil-affairs", "civil_affairs", "330113", ["CASE"])
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hub.test") as c:
            token = (
                await c.post(
                    "/oauth/token", data={"grant_type": "client_credentials"}, auth=("linping-civil-affairs", secret)
                )
            ).json()["access_token"]
            r = await c.post(
                "/graphql",
                json={"query": query},
                headers={
                    "authorization": f"Bearer {token}",
                    "x-hub-purpose": "CASE",
                    "x-hub-case": "CASE-2026-0001",
                    "x-hub-officer": "officer-wang",
                },
            )
    assert without_receipt(r.json()) == shown
    assert r.json()["extensions"]["receipt"]["seq"] == 0
    assert set(r.json()["extensions"]["digests"]) == {"key", "request", "result"}


@pytest.mark.parametrize("doc", ["README.md"])
def test_readme_mentions_every_command(doc: str) -> None:
    for command in ("hub serve", "hub demo", "hub schema export", "hub policy", "hub clients", "hub audit"):
        assert command in README, command
