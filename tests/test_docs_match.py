"""What a new user found wrong in the docs (issue 14, "Docs that match"): the behaviour the pages describe, and
the pages themselves (no reference to a file the repository does not have, every route documented, no
known-issue note that points at a test no longer marked as failing)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from starlette.routing import Mount, Route, WebSocketRoute

from tests.conftest import Hub

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
QUERY = '{ person(idNumber: "330113195203180176") { name } }'


async def test_invalid_scope_lists_the_clients_purposes(hub: Hub) -> None:
    r = await hub.client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "scope": "CASE AUDIT REF"},
        auth=("linping-ca", hub.secrets["linping-ca"]),
    )
    assert r.status_code == 400
    assert r.json() == {
        "error": "invalid_scope",
        "error_description": "client is not registered for AUDIT, REF (registered: CASE, MON, STAT, VER)",
    }
    # the page shows the same message
    assert "`client is not registered for REF (registered: CASE, MON)`" in (DOCS / "errors" / "oauth.md").read_text()


async def test_a_purpose_left_out_of_the_tokens_scope_is_named_as_such(hub: Hub, audit_tail: Any) -> None:
    narrow = await hub.token("linping-ca", scope="MON")
    r = await hub.query(QUERY, purpose="CASE", token=narrow)
    assert r.status_code == 403
    error = r.json()["errors"][0]
    assert error["extensions"]["code"] == "PURPOSE_NOT_REGISTERED"
    assert error["message"] == (
        "the token's scope (MON) does not include purpose CASE, for which client linping-ca is registered: "
        "request a token with scope CASE, or without scope"
    )
    assert audit_tail()[-1]["reasons"] == ["PURPOSE_NOT_REGISTERED"]
    # a purpose the registry does not give the client keeps the registry's message
    r = await hub.query(QUERY, purpose="REF", case=None)
    assert r.json()["errors"][0]["message"] == "client linping-ca is not registered for purpose REF"
    page = (DOCS / "errors" / "PURPOSE_NOT_REGISTERED.md").read_text(encoding="utf-8")
    assert "the token's scope (MON) does not include purpose CASE" in page
    assert "hub clients update" in page and "no command to change" not in page


async def test_healthz_answers_as_documented(hub: Hub) -> None:
    r = await hub.client.get("/healthz")
    body = r.json()
    assert r.status_code == 200 and set(body) == {"status", "departments", "grants"} and body["status"] == "ok"
    ops = (DOCS / "operations.md").read_text(encoding="utf-8")
    assert '{"status": "ok", "departments": [' in ops and '"grants": ' in ops


def test_every_route_is_documented(hub: Hub) -> None:
    """Each path the hub serves is named in docs/ (in backquotes, as `GET /path` or `/path`)."""
    text = "\n".join(p.read_text(encoding="utf-8") for p in DOCS.rglob("*.md"))
    paths = {r.path for r in hub.app.routes if isinstance(r, Route | WebSocketRoute | Mount)}
    missing = sorted(p for p in paths if not re.search(rf"`(?:[A-Z]+ )?{re.escape(p.split('{')[0])}", text))
    assert missing == []


def test_docs_point_only_at_files_in_the_repository() -> None:
    """A backquoted or linked ``*.md`` name in docs/ or the README is a file of this repository."""
    names = {p.name for p in ROOT.rglob("*.md") if ".venv" not in p.parts and ".git" not in p.parts}
    found = []
    for page in [ROOT / "README.md", *DOCS.rglob("*.md")]:
        text = page.read_text(encoding="utf-8")
        for m in re.finditer(r"`([^`\s]*?([A-Za-z0-9_.-]+\.md))`|(?<![\w/])([A-Z][A-Z_]+\.md)\b", text):
            name = m.group(2) or m.group(3)
            if name not in names:
                found.append(f"{page.relative_to(ROOT)}: {name}")
    assert found == []


def test_no_known_issue_note_outlives_its_fix() -> None:
    """A page naming a test as marking a known issue: the test exists and is not marked xfail any more, or the
    page still says so; here: no page carries a "Known issue" note whose test passes."""
    tests = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "tests").rglob("*.py"))
    stale = []
    for page in DOCS.rglob("*.md"):
        text = page.read_text(encoding="utf-8")
        for m in re.finditer(r"[Kk]nown issue.*?`(test_\w+)`", text, re.S):
            name = m.group(1)
            if not re.search(rf"@pytest\.mark\.xfail[^\n]*\n(?:\s*@[^\n]*\n)*\s*(?:async )?def {name}\(", tests):
                stale.append(f"{page.name}: {name}")
    assert stale == []


def test_config_error_page_says_the_command_line_prints_it() -> None:
    page = (DOCS / "errors" / "CONFIG_ERROR.md").read_text(encoding="utf-8")
    assert "never sent today" not in page and "error [CONFIG_ERROR]" in page
    assert "NO_HUB_DATA" in page
