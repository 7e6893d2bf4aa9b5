"""The console over real HTTP (uvicorn on 127.0.0.1): who gets in, what each page view writes to the log, the
resident search by ID number, exports with proofs. The browser tests (test_console_browser.py) drive the pages."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from hub.audit.merkle import verify_inclusion
from hub.audit.query import access_report, flags_for
from hub.db import audit_entries
from tests.console.conftest import CASEWORKER, OFFICER, ConsoleHub, csrf_of, sign_in

PAGES = ["/console/", "/console/search", "/console/search.csv", "/console/search.json", "/console/entry/0",
         "/console/resident/" + "0" * 64, "/console/policies?consumer=civil_affairs&purpose=CASE"]  # fmt: skip


def client(hub: ConsoleHub, **kw: Any) -> httpx.Client:
    return httpx.Client(base_url=hub.url, follow_redirects=False, **kw)


def tail(hub: ConsoleHub, after: int) -> list[dict[str, Any]]:
    engine = hub.app.state.hub.engine  # type: ignore[attr-defined]
    with engine.connect() as conn:
        rows = conn.execute(select(audit_entries.c.entry).where(audit_entries.c.seq > after).order_by("seq"))
        return [json.loads(r[0]) for r in rows]


def newest(hub: ConsoleHub) -> int:
    return int(hub.app.state.hub.audit.size()) - 1  # type: ignore[attr-defined]


@pytest.mark.parametrize("client_id", ["linping-ca", "officer"])
def test_a_client_token_opens_no_console_page(console_hub: ConsoleHub, client_id: str) -> None:
    """Department clients (even the officers' API client, role officer) are machines: their tokens open nothing."""
    token = console_hub.token(client_id)
    with client(console_hub, headers={"authorization": f"Bearer {token}"}) as c:
        for path in PAGES:
            r = c.get(path)
            assert (r.status_code, r.headers.get("location")) == (303, "/console/login"), path
            assert r.content == b""
        r = c.post("/console/find", data={"id_number": console_hub.golden_id})
        assert (r.status_code, r.headers.get("location")) == (303, "/console/login")


def test_a_person_without_the_officer_role_is_refused(console_hub: ConsoleHub) -> None:
    before = newest(console_hub)
    with client(console_hub) as c:
        r = sign_in(c, CASEWORKER)
        assert r.status_code == 401 and "not an officer account" in r.text
        assert c.get("/console/").status_code == 303
        r = sign_in(c, OFFICER, "wrong password, long enough")
        assert r.status_code == 401
    (refused, wrong) = tail(console_hub, before)
    assert (refused["officer"], refused["decision"], refused["status"]) == (CASEWORKER, "deny", 401)
    assert refused["console"] == {"reason": "NOT_AN_OFFICER"} and refused["purpose"] == "AUDIT"
    assert (wrong["officer"], wrong["console"]) == (OFFICER, {"reason": "OFFICER_AUTH_FAILED"})


def test_sign_in_needs_the_forms_csrf_token_and_sets_a_strict_cookie(console_hub: ConsoleHub) -> None:
    with client(console_hub) as c:
        page = c.get("/console/login")
        cookie = page.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and "path=/console" in cookie
        assert page.headers["content-security-policy"].startswith("default-src 'none'")
        assert page.headers["x-frame-options"] == "DENY" and page.headers["x-content-type-options"] == "nosniff"
        r = c.post("/console/login", data={"name": OFFICER, "password": "correct horse battery staple", "csrf": "x"})
        assert r.status_code == 403 and "hub_console=" not in r.headers.get("set-cookie", "")
        r = sign_in(c)
        assert (r.status_code, r.headers["location"]) == (303, "/console/")
        # signed in: a POST without the session's token is refused, with the token it works
        assert c.post("/console/find", data={"id_number": console_hub.golden_id}).status_code == 403
        assert c.post("/console/logout", data={"csrf": csrf_of(c.get("/console/").text)}).status_code == 303
        assert c.get("/console/").status_code == 303  # the cookie is gone


def test_the_id_number_becomes_a_pseudonym_and_every_page_view_is_an_audit_entry(console_hub: ConsoleHub) -> None:
    pseudonym = console_hub.app.state.hub.audit.pseudonym(console_hub.golden_id)  # type: ignore[attr-defined]
    with client(console_hub) as c:
        sign_in(c)
        before = newest(console_hub)
        csrf = csrf_of(c.get("/console/search").text)
        r = c.post("/console/find", data={"id_number": console_hub.golden_id, "csrf": csrf})
        assert (r.status_code, r.headers["location"]) == (303, f"/console/search?subject={pseudonym}")
        page = c.get(r.headers["location"])
        assert page.status_code == 200 and console_hub.golden_id not in page.text
        assert f'href="/console/entry/{console_hub.golden_seq}?subject={pseudonym}"' in page.text
        bad = c.post("/console/find", data={"id_number": "330113198001011234", "csrf": csrf})
        assert bad.status_code == 400 and "BAD_ID_NUMBER" in bad.text
    empty_search, search_view, bad_id = tail(console_hub, before)
    assert empty_search["subjects"] == [] and empty_search["console"] == {"filters": {}, "after": None}
    assert search_view["operation_name"] == "console.search" and search_view["route"] == "/console/search"
    assert (search_view["officer"], search_view["purpose"], search_view["client_id"]) == (OFFICER, "AUDIT", "console")
    assert search_view["subjects"] == [pseudonym] and search_view["console"] == {"filters": {}, "after": None}
    assert (bad_id["decision"], bad_id["console"], bad_id["subjects"]) == ("deny", {"reason": "BAD_ID_NUMBER"}, [])
    engine = console_hub.app.state.hub.engine  # type: ignore[attr-defined]
    with engine.connect() as conn:
        assert flags_for(conn, search_view) == []  # an officer's own lookup is not NO_CASE_REFERENCE
    # ...and the officer's look shows in the resident's own access report
    report = access_report(engine, pseudonym)
    assert [(r["seq"], r["officer"], r["purpose"]) for r in report if r["purpose"] == "AUDIT"][-1] == (
        search_view["seq"],
        OFFICER,
        "AUDIT",
    )


def test_exports_have_the_searched_entries_and_json_carries_checked_proofs(console_hub: ConsoleHub) -> None:
    state = console_hub.app.state.hub  # type: ignore[attr-defined]
    pseudonym = state.audit.pseudonym(console_hub.golden_id)
    state.audit.sign_head()
    with client(console_hub) as c:
        sign_in(c)
        r = c.get(f"/console/search.csv?subject={pseudonym}&decision=allow&purpose=CASE")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
        lines = r.text.splitlines()
        assert lines[0] == "seq,at,department,client_id,officer,purpose,case_ref,decision,fields,flags"
        assert [line.split(",")[0] for line in lines[1:]] == [str(console_hub.golden_seq)]
        assert ",civil_affairs,linping-ca,officer-wang,CASE,CASE-2026-0117,allow," in lines[1]
        doc = c.get(f"/console/search.json?subject={pseudonym}&decision=allow&purpose=CASE").json()
    assert doc["format"] == "hub-console-search/v1" and not doc["truncated"]
    (item,) = doc["entries"]
    proof, head = item["proof"], doc["head"]
    assert item["entry"]["seq"] == console_hub.golden_seq and proof["tree_size"] == head["tree_size"]
    verify_inclusion(
        bytes.fromhex(proof["leaf_hash"]),
        console_hub.golden_seq,
        head["tree_size"],
        [bytes.fromhex(p) for p in proof["path"]],
        bytes.fromhex(head["root_hash"]),
    )


def test_the_entry_page_checks_the_proof_on_the_server(console_hub: ConsoleHub) -> None:
    state = console_hub.app.state.hub  # type: ignore[attr-defined]
    state.audit.sign_head()
    with client(console_hub) as c:
        sign_in(c)
        page = c.get(f"/console/entry/{console_hub.golden_seq}")
        assert page.status_code == 200
        assert 'id="proof-status">已验证' in page.text and "CASE-2026-0117" in page.text
        assert "MedicalRecord.outOfPocket12mAtLeast" in page.text and "threshold = 20000" in page.text
        missing = c.get("/console/entry/999999")
        assert missing.status_code == 404 and "NOT_FOUND" in missing.text
