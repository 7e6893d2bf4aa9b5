"""GraphiQL offline: the page and its scripts come from the hub (nothing from a CDN), with the hub's starter query
and the steps to get a token; loading it writes no audit entry. Over HTTP, and in Debian's chromium (Playwright,
the console tests' way: tests/console/test_console_browser.py), with a screenshot beside the console's."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from hub.app import create_app
from hub.db import audit_entries
from hub.demo.generate import GenerateResult
from hub.graphiql import ASSETS, SERVED, STARTER_QUERY
from tests.browser import SHOTS
from tests.conftest import CLIENTS, make_settings, serve, working_clock

# the shipped files are the npm packages' own (hub/static/graphiql/README.md): graphiql 3.8.3, react 18.3.1
SHA256 = {
    "graphiql.min.js": "22faab94067b695e5f7959619fbe686ebcc8955002a0c97d986bcbba4ad4bc2c",
    "graphiql.min.css": "b1868247f8e0502cd869e581f5f3cb55b334862e7f51b1d6cbace11059b9adc2",
    "react.production.min.js": "d949f1c3687aedadcedac85261865f29b17cd273997e7f6b2bfc53b2f9d4c4dd",
    "react-dom.production.min.js": "35f4f974f4b2bcd44da73963347f8952e341f83909e4498227d4e26b98f66f0d",
}


class DevHub:
    def __init__(self, url: str, app: Any, secrets: dict[str, str]) -> None:
        self.url, self.app, self.secrets = url, app, secrets

    def audit_size(self) -> int:
        with self.app.state.hub.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(audit_entries)).scalar_one())


@pytest.fixture(scope="module")
def dev_hub(dept_data: tuple[Path, GenerateResult], tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevHub]:
    root = tmp_path_factory.mktemp("graphiql")
    (root / "departments").symlink_to(dept_data[0] / "departments")
    app = create_app(make_settings(root, dev_mode=True), sign_interval=3600, clock=working_clock())
    secrets = {}
    for cid in ("linping-ca",):
        dept, area, purposes, roles = CLIENTS[cid]
        _, secrets[cid] = app.state.hub.clients.add(cid, dept, area, purposes, roles)
    with serve(app) as url:
        yield DevHub(url, app, secrets)


def test_the_page_loads_nothing_from_outside_and_writes_no_entry(dev_hub: DevHub) -> None:
    before = dev_hub.audit_size()
    r = httpx.get(f"{dev_hub.url}/graphql", headers={"accept": "text/html"})
    assert r.status_code == 200 and r.headers["content-type"] == "text/html; charset=utf-8"
    page = r.text
    refs = re.findall(r'<(?:script|link)\b[^>]*\b(?:src|href)="([^"]+)"', page)
    assert sorted(refs) == sorted(f"/graphiql/{n}" for n in SERVED)
    assert "https://" not in page and "http://unpkg" not in page
    csp = r.headers["content-security-policy"]
    assert "script-src 'self';" in csp and "connect-src 'self';" in csp and "default-src 'none'" in csp
    # the hub's own starter query and how to get a token and set the headers
    assert 'household(householdId: \\"H330113000173\\")' in page.replace("\\n", "\n")
    assert f"-d grant_type=client_credentials -d scope=CASE {dev_hub.url}/oauth/token" in page
    for header in ("X-Hub-Purpose", "X-Hub-Officer", "X-Hub-Case", "Bearer"):
        assert header in page
    for name in SERVED:
        a = httpx.get(f"{dev_hub.url}/graphiql/{name}")
        assert a.status_code == 200
        expected = "text/css; charset=utf-8" if name.endswith(".css") else "text/javascript; charset=utf-8"
        assert a.headers["content-type"] == expected
        assert a.headers["x-content-type-options"] == "nosniff"
        assert a.content == (ASSETS / name).read_bytes()
    assert httpx.get(f"{dev_hub.url}/graphiql/LICENSE-react").status_code == 404  # only the listed files
    assert httpx.get(f"{dev_hub.url}/graphiql/..%2Fgraphiql.py").status_code == 404
    assert dev_hub.audit_size() == before


def test_shipped_files_are_the_pinned_npm_builds() -> None:
    for name, digest in SHA256.items():
        assert hashlib.sha256((ASSETS / name).read_bytes()).hexdigest() == digest, name
    for licence in ("LICENSE-graphiql", "LICENSE-react"):
        assert (ASSETS / licence).read_text(encoding="utf-8").startswith("MIT License")


async def test_outside_dev_mode_there_is_no_graphiql(hub: Any) -> None:
    r = await hub.client.get("/graphql", headers={"accept": "text/html"})
    assert r.status_code == 405 and r.json()["errors"][0]["extensions"]["code"] == "METHOD_NOT_ALLOWED"
    assert (await hub.client.get("/graphiql/graphiql.min.js")).status_code == 404


# ------------------------------------------------------------------------------------------------- browser


async def test_graphiql_renders_offline_and_runs_the_starter_query_with_a_token(browser: Any, dev_hub: DevHub) -> None:
    ctx = await browser.new_context(viewport={"width": 1400, "height": 900})
    page = await ctx.new_page()
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    before = dev_hub.audit_size()
    await page.goto(f"{dev_hub.url}/graphql")
    await page.wait_for_selector(".graphiql-container .graphiql-query-editor .CodeMirror", timeout=30_000)
    editor_text = await page.evaluate(
        "document.querySelector('.graphiql-query-editor .CodeMirror').CodeMirror.getValue()"
    )
    assert editor_text == STARTER_QUERY
    await page.wait_for_timeout(1000)  # GraphiQL introspects on load: the fetcher keeps it at home without a token
    assert errors == []
    assert dev_hub.audit_size() == before
    assert requested and all(u.startswith(f"{dev_hub.url}/") for u in requested), requested
    assert not any(u.endswith("/graphql") and u != f"{dev_hub.url}/graphql" for u in requested)
    await page.screenshot(path=SHOTS / "graphiql.png")

    # with a token in the Headers tab, the starter query runs and answers
    token = httpx.post(
        f"{dev_hub.url}/oauth/token",
        data={"grant_type": "client_credentials", "scope": "CASE"},
        auth=("linping-ca", dev_hub.secrets["linping-ca"]),
    ).json()["access_token"]
    await page.evaluate(
        """token => { const cm = [...document.querySelectorAll('.graphiql-editor-tool .CodeMirror')]
             .map(e => e.CodeMirror).find(c => c.getValue().includes('<paste the access_token here>'));
           cm.setValue(cm.getValue().replace('<paste the access_token here>', token)); }""",
        token,
    )
    await page.click(".graphiql-execute-button")
    result = ""
    for _ in range(300):  # the page's CSP refuses wait_for_function's eval; poll from here instead
        result = await page.evaluate("document.querySelector('.result-window .CodeMirror').CodeMirror.getValue()")
        if '"data"' in result or '"errors"' in result:
            break
        await page.wait_for_timeout(100)
    assert '"household"' in result and '"errors"' not in result, result[:500]
    assert dev_hub.audit_size() == before + 1  # the query, allowed, and nothing else
    assert all(u.startswith(f"{dev_hub.url}/") for u in requested)
    await page.screenshot(path=SHOTS / "graphiql-answer.png")
    await ctx.close()
