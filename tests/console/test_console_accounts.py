"""Officer accounts in the hub database: `hub officers ...`, the officers.json import, TOTP sign-in with real
computed codes at the hub's (injected) clock, and the session cookie, CSRF and CSP on every console page."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import select, update

from hub.cli import main
from hub.clock import CHINA
from hub.console.web import CSP
from hub.db import officers
from hub.errors import ConfigError
from hub.store.clients import hash_secret
from hub.store.officers import OfficerStore, totp_code
from tests.conftest import POLICIES, WORKING_HOUR
from tests.console.conftest import OFFICER, PASSWORD, ConsoleHub, csrf_of, sign_in
from tests.console.test_console_http import PAGES, client, tail

# 10:00:05 China time = 02:00:05 UTC: five seconds into a 30-second TOTP step
T0 = datetime.combine(date.today(), time(10, 0, 5), CHINA)


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Any:
    monkeypatch.setenv("HUB_POLICY_DIR", str(POLICIES))
    monkeypatch.setenv("HUB_CLIENT_SECRET_SCRYPT_N", "16")

    def run(*args: str, stdin: str = "") -> tuple[int, str, str]:
        monkeypatch.setattr("sys.stdin", __import__("io").StringIO(stdin))
        status = main(["--data-dir", str(tmp_path), *args])
        out = capsys.readouterr()
        return status, out.out, out.err

    return run


@pytest.fixture
def clock_at_t0(console_hub: ConsoleHub) -> Iterator[Any]:
    clock = console_hub.app.state.hub.clock  # type: ignore[attr-defined]
    clock.set(T0)
    yield clock
    clock.set(datetime.combine(date.today(), WORKING_HOUR, CHINA))


def test_hub_officers_commands_and_the_otpauth_uri_printed_once(cli: Any, tmp_path: Path) -> None:
    status, out, err = cli("officers", "add", "officer-chen", "--password-stdin", "--totp", stdin=PASSWORD + "\n")
    assert status == 0, err
    lines = out.splitlines()
    assert lines[0] == "added officer-chen (audit_office; roles officer)"
    (uri,) = [line for line in lines if line.startswith("otpauth://")]
    q = parse_qs(urlparse(uri).query)
    assert urlparse(uri).path == "/hub%20console:officer-chen" and q["issuer"] == ["hub console"]
    assert len(q["secret"][0]) == 32 and PASSWORD not in out
    status, out, _ = cli("officers", "list")
    assert re.fullmatch(r"officer-chen +audit_office +officer +active +password,totp\n", out)
    assert cli("officers", "add", "officer-chen", "--password-stdin", stdin=PASSWORD + "\n")[0] == 2
    assert cli("officers", "add", "short", "--password-stdin", stdin="too short\n")[2] == (
        "error [BAD_ARGUMENT]: password: at least 12 characters\n"
    )
    assert cli("officers", "disable", "officer-chen")[1] == "disabled officer-chen\n"
    assert cli("officers", "set-password", "officer-chen", "--password-stdin", stdin="another long password\n")[0] == 0
    assert (
        cli("console", "add-officer", "li-si", "--roles", "caseworker", "--password-stdin", stdin=PASSWORD + "\n")[0]
        == 0
    )  # the old name still works
    _, out, _ = cli("officers", "list")
    assert [line.split()[:4] for line in out.splitlines()] == [
        ["li-si", "audit_office", "caseworker", "active"],
        ["officer-chen", "audit_office", "officer", "disabled"],
    ]
    assert cli("officers", "disable", "nobody")[2] == "error [NOT_FOUND]: no officer 'nobody'\n"


def test_an_old_officers_json_is_imported_into_the_hub_database_once(cli: Any, tmp_path: Path) -> None:
    legacy = tmp_path / "console" / "officers.json"
    legacy.parent.mkdir()
    legacy.write_text(
        json.dumps(
            {
                "officer-old": {
                    "hash": hash_secret(PASSWORD, 16),
                    "department": "audit_office",
                    "roles": ["officer"],
                    "status": "active",
                },
                "gone": {
                    "hash": hash_secret(PASSWORD, 16),
                    "department": "civil_affairs",
                    "roles": ["officer"],
                    "status": "disabled",
                },
            }  # fmt: skip
        )
    )
    status, out, err = cli("officers", "list")
    assert status == 0
    assert err == f"imported gone from {legacy}\nimported officer-old from {legacy}\n"
    assert [line.split()[:4] for line in out.splitlines()] == [
        ["gone", "civil_affairs", "officer", "disabled"],
        ["officer-old", "audit_office", "officer", "active"],
    ]
    assert not legacy.exists() and legacy.with_name("officers.json.imported").exists()
    from hub.db import open_hub_db

    store = OfficerStore(open_hub_db(f"sqlite:///{tmp_path / 'hub.sqlite'}"))
    assert store.authenticate("officer-old", PASSWORD) is not None  # the old hash still checks
    assert store.authenticate("officer-old", "not the password at all") is None
    assert cli("officers", "list")[2] == ""  # once


def test_totp_sign_in_with_a_real_code_and_refused_with_a_wrong_replayed_or_old_one(
    console_hub: ConsoleHub, clock_at_t0: Any
) -> None:
    state = console_hub.app.state.hub  # type: ignore[attr-defined]
    store = OfficerStore(state.engine, state.clock, state.settings.client_secret_scrypt_n, state.keys.totp_seal_key())
    store.add("officer-totp", PASSWORD)
    uri = store.enrol_totp("officer-totp")
    secret = parse_qs(urlparse(uri).query)["secret"][0]
    with state.engine.connect() as conn:  # the database holds the secret sealed, not in the clear
        stored = conn.execute(select(officers.c.totp_secret).where(officers.c.login == "officer-totp")).scalar()
    assert stored.startswith("sealed:v1:") and secret not in stored
    now_code = totp_code(secret, T0)

    def attempt(code: str) -> int:
        with client(console_hub) as c:
            page = c.get("/console/login")
            data = {"name": "officer-totp", "password": PASSWORD, "code": code, "csrf": csrf_of(page.text)}
            r = c.post("/console/login", data=data)
            if r.status_code == 303:
                assert c.get("/console/").status_code == 200
            return r.status_code

    wrong = f"{(int(now_code) + 1) % 1_000_000:06d}"
    assert attempt("") == 401  # the password alone is not enough
    assert attempt(wrong) == 401
    assert attempt(now_code) == 303
    assert attempt(now_code) == 401  # the same code again: replayed
    clock_at_t0.set(T0 + timedelta(seconds=90))  # three steps later
    assert attempt(totp_code(secret, T0 + timedelta(seconds=30))) == 401  # a minute old
    assert attempt(totp_code(secret, T0 + timedelta(seconds=60))) == 303  # the step before: clock drift allowed
    assert attempt(totp_code(secret, T0 + timedelta(seconds=90))) == 303


def test_a_forged_or_tampered_session_cookie_opens_nothing(console_hub: ConsoleHub) -> None:
    with client(console_hub) as c:
        sign_in(c)
        good = c.cookies["hub_console"]
    forged = URLSafeTimedSerializer(b"x" * 32, salt="hub-console-session").dumps({"o": OFFICER, "c": "abc"})
    for value in (forged, good[:-2] + ("AA" if not good.endswith("AA") else "BB")):
        with client(console_hub, cookies={"hub_console": value}) as c:
            r = c.get("/console/")
            assert (r.status_code, r.headers["location"]) == (303, "/console/login")
    with client(console_hub, cookies={"hub_console": good}) as c:
        assert c.get("/console/").status_code == 200


NEW_PAGES = ["/console/alerts", "/console/operations", "/console/operations?status=all"]
POSTS = ["/console/find", "/console/sign", "/console/logout", "/console/operations/approve",
         "/console/operations/retire"]  # fmt: skip


def test_every_page_has_the_security_headers_and_every_post_form_a_csrf_token(console_hub: ConsoleHub) -> None:
    with client(console_hub) as c:
        sign_in(c)
        for path in ["/console/login", *PAGES, *NEW_PAGES]:
            r = c.get(path)
            assert r.status_code in (200, 404), path
            assert r.headers["content-security-policy"] == CSP, path
            assert "script-src" not in CSP and "'unsafe-inline'" not in CSP
            assert (r.headers["x-frame-options"], r.headers["referrer-policy"]) == ("DENY", "no-referrer"), path
            if r.headers["content-type"].startswith("text/html"):
                assert "<script" not in r.text, path
                for form in re.findall(r"<form[^>]*>.*?</form>", r.text, re.S):
                    if 'method="post"' in form:
                        assert re.search(r'name="csrf" value="[^"]{20,}"', form), (path, form[:120])
        csrf = csrf_of(c.get("/console/").text)
        for path in POSTS:  # without the session's token: refused, nothing done
            r = c.post(path, data={"csrf": "not-the-token"})
            assert (r.status_code, "FORM_EXPIRED" in r.text) == (403, True), path
        assert c.get("/console/").status_code == 200  # still signed in: the logout was refused
        assert csrf


def test_the_login_audit_names_the_totp_failure_like_a_wrong_password(console_hub: ConsoleHub) -> None:
    before = int(console_hub.app.state.hub.audit.size()) - 1  # type: ignore[attr-defined]
    with client(console_hub) as c:
        sign_in(c, OFFICER, "a wrong password, long")
    (entry,) = tail(console_hub, before)
    assert (entry["officer"], entry["decision"], entry["console"]) == (
        OFFICER,
        "deny",
        {"reason": "OFFICER_AUTH_FAILED"},
    )
    with httpx.Client(base_url=console_hub.url) as c:
        assert sign_in(c).status_code == 303


def test_a_totp_secret_is_sealed_to_its_account_and_a_clear_one_is_sealed_at_its_next_check(
    console_hub: ConsoleHub, clock_at_t0: Any, caplog: pytest.LogCaptureFixture
) -> None:
    state = console_hub.app.state.hub  # type: ignore[attr-defined]
    store = OfficerStore(state.engine, state.clock, state.settings.client_secret_scrypt_n, state.keys.totp_seal_key())
    for login in ("officer-a", "officer-b"):
        store.add(login, PASSWORD)
    secret_a = parse_qs(urlparse(store.enrol_totp("officer-a")).query)["secret"][0]
    store.enrol_totp("officer-b")

    def stored(login: str) -> str:
        with state.engine.connect() as conn:
            return str(conn.execute(select(officers.c.totp_secret).where(officers.c.login == login)).scalar())

    # a's sealed secret copied into b's row does not open for b: b's sign-in is refused, the operator told why
    with state.engine.begin() as conn:
        conn.execute(update(officers).where(officers.c.login == "officer-b").values(totp_secret=stored("officer-a")))
    with caplog.at_level(logging.ERROR, logger="hub.console"):
        assert store.authenticate("officer-b", PASSWORD, totp_code(secret_a, T0)) is None
    assert "officer-b's TOTP secret does not open" in caplog.text and secret_a not in caplog.text
    # another key folder's key does not open a's secret either
    other = OfficerStore(state.engine, state.clock, state.settings.client_secret_scrypt_n, b"k" * 32)
    assert other.authenticate("officer-a", PASSWORD, totp_code(secret_a, T0)) is None
    # a secret left in the clear by an earlier hub still signs in, and is sealed by that check
    with state.engine.begin() as conn:
        conn.execute(update(officers).where(officers.c.login == "officer-a").values(totp_secret=secret_a))
    assert store.authenticate("officer-a", PASSWORD, totp_code(secret_a, T0)) is not None
    assert stored("officer-a").startswith("sealed:v1:") and secret_a not in stored("officer-a")
    # without the key, the store cannot enrol
    with pytest.raises(ConfigError, match="totp-seal.key"):
        OfficerStore(state.engine).enrol_totp("officer-a")
