"""Console sign-in through an OpenID Connect provider: a small real provider (discovery, JWKS, an authorize
endpoint that approves at once, a token endpoint signing id_tokens with a freshly generated RSA key) on
127.0.0.1, and a hub configured with HUB_OIDC_*; the client follows the redirects for real. Attacks: a forged or
foreign state, a wrong nonce, an id_token for another audience, an expired id_token, an unknown identity."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from hub.app import create_app
from hub.demo.generate import GenerateResult
from hub.store.officers import OfficerStore
from tests.conftest import make_settings, serve, working_clock

CLIENT_ID, CLIENT_SECRET = "hub-console", "provider-side secret of the console"


@dataclass
class Provider:
    """An OpenID Connect provider that signs in whoever ``user`` is, with id_tokens bent by ``mode``."""

    url: str = ""
    key: RSAKey = field(default_factory=lambda: RSAKey.generate_key(2048, parameters={"kid": "k1", "use": "sig"}))
    user: dict[str, str] = field(default_factory=lambda: {"sub": "u-1001", "preferred_username": "zhao.min"})
    mode: str = "ok"  # ok | nonce | aud | aud+azp | expired
    codes: dict[str, dict[str, str]] = field(default_factory=dict)
    seen: list[dict[str, str]] = field(default_factory=list)

    def app(self) -> Starlette:
        async def discovery(request: Request) -> Response:
            return JSONResponse(
                {
                    "issuer": self.url,
                    "authorization_endpoint": f"{self.url}/authorize",
                    "token_endpoint": f"{self.url}/token",
                    "jwks_uri": f"{self.url}/jwks",
                    "response_types_supported": ["code"],
                    "subject_types_supported": ["public"],
                    "id_token_signing_alg_values_supported": ["RS256"],
                    "code_challenge_methods_supported": ["S256"],
                }
            )

        async def jwks(request: Request) -> Response:
            return JSONResponse({"keys": [self.key.as_dict(private=False)]})

        async def authorize(request: Request) -> Response:
            q = dict(request.query_params)
            self.seen.append(q)
            if q.get("client_id") != CLIENT_ID or q.get("response_type") != "code":
                return JSONResponse({"error": "invalid_request"}, status_code=400)
            code = secrets.token_urlsafe(16)
            self.codes[code] = q
            return RedirectResponse(f"{q['redirect_uri']}?{urlencode({'code': code, 'state': q['state']})}", 302)

        async def token(request: Request) -> Response:
            form = await request.form()
            basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
            if request.headers.get("authorization") != f"Basic {basic}":
                return JSONResponse({"error": "invalid_client"}, status_code=401)
            asked = self.codes.pop(str(form.get("code")), None)  # single use
            if asked is None or form.get("redirect_uri") != asked["redirect_uri"]:
                return JSONResponse({"error": "invalid_grant"}, status_code=400)
            verifier = str(form.get("code_verifier", ""))
            challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
            if asked.get("code_challenge_method") != "S256" or challenge != asked.get("code_challenge"):
                return JSONResponse({"error": "invalid_grant", "error_description": "PKCE"}, status_code=400)
            now = int(time.time())  # the provider's own clock (authlib checks exp against the real time)
            claims = {
                "iss": self.url,
                "aud": "another-client" if self.mode.startswith("aud") else CLIENT_ID,
                "iat": now - 1200 if self.mode == "expired" else now,
                "exp": now - 600 if self.mode == "expired" else now + 300,
                "nonce": "not-the-nonce" if self.mode == "nonce" else asked["nonce"],
                "name": "赵敏",
                **self.user,
            }
            if self.mode == "aud+azp":  # another client's token, naming this one as authorized party
                claims["azp"] = CLIENT_ID
            id_token = jwt.encode({"alg": "RS256", "kid": "k1"}, claims, self.key)
            return JSONResponse({"access_token": secrets.token_urlsafe(16), "token_type": "Bearer",
                                 "expires_in": 300, "id_token": id_token})  # fmt: skip

        return Starlette(
            routes=[
                Route("/.well-known/openid-configuration", discovery),
                Route("/jwks", jwks),
                Route("/authorize", authorize),
                Route("/token", token, methods=["POST"]),
            ]
        )


@dataclass
class OidcHub:
    url: str
    app: Any
    provider: Provider

    def entries(self, after: int) -> list[dict[str, Any]]:
        import json

        from sqlalchemy import select

        from hub.db import audit_entries

        with self.app.state.hub.engine.connect() as conn:
            rows = conn.execute(select(audit_entries.c.entry).where(audit_entries.c.seq > after).order_by("seq"))
            return [json.loads(r[0]) for r in rows]

    def size(self) -> int:
        return int(self.app.state.hub.audit.size())


@pytest.fixture(scope="module")
def oidc_hub(dept_data: tuple[Path, GenerateResult], tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcHub]:
    provider = Provider()
    with serve(provider.app()) as idp:
        provider.url = idp
        root = tmp_path_factory.mktemp("oidc")
        (root / "departments").symlink_to(dept_data[0] / "departments")
        settings = make_settings(root, oidc_issuer=idp, oidc_client_id=CLIENT_ID, oidc_client_secret=CLIENT_SECRET)
        app = create_app(settings, sign_interval=3600, clock=working_clock())
        state = app.state.hub
        officers = OfficerStore(state.engine, state.clock, settings.client_secret_scrypt_n)
        officers.add("zhao-min", None, display_name="赵敏", oidc_subject="u-1001")
        officers.add("qian-caseworker", None, roles=("caseworker",), oidc_subject="u-2002")
        with serve(app) as url:
            yield OidcHub(url, app, provider)


@pytest.fixture
def provider(oidc_hub: OidcHub) -> Iterator[Provider]:
    p = oidc_hub.provider
    yield p
    p.mode, p.user = "ok", {"sub": "u-1001", "preferred_username": "zhao.min"}


def start(c: httpx.Client) -> str:
    """Follow the console's redirect to the provider and the provider's back; the callback URL (not opened)."""
    r = c.get("/console/oidc/login")
    assert r.status_code == 302, r.text
    to_idp = r.headers["location"]
    r = c.get(to_idp)
    assert r.status_code == 302, r.text
    return str(r.headers["location"])


def test_an_officer_signs_in_through_the_provider(oidc_hub: OidcHub, provider: Provider) -> None:
    before = oidc_hub.size() - 1
    with httpx.Client(base_url=oidc_hub.url, follow_redirects=True) as c:
        login = c.get("/console/login")
        assert 'href="/console/oidc/login"' in login.text
        r = c.get("/console/oidc/login")  # console → provider → console callback, all followed
        assert r.status_code == 200 and r.url.path == "/console/oidc/callback", r.text
        assert 'http-equiv="refresh" content="0;url=/console/"' in r.text and "zhao-min" in r.text
        cookies = [h.lower() for h in r.history[-1].headers.get_list("set-cookie") + r.headers.get_list("set-cookie")]
        session = next(h for h in cookies if h.startswith("hub_console="))
        assert "httponly" in session and "samesite=strict" in session
        overview = c.get("/console/")
        assert overview.status_code == 200 and "zhao-min" in overview.text
    asked = provider.seen[-1]
    assert asked["code_challenge_method"] == "S256" and len(asked["code_challenge"]) == 43
    assert asked["scope"] == "openid profile" and len(asked["nonce"]) >= 20 and len(asked["state"]) >= 20
    login_entry = next(e for e in oidc_hub.entries(before) if e["operation_name"] == "console.login")
    assert (login_entry["officer"], login_entry["decision"], login_entry["console"]) == (
        "zhao-min",
        "allow",
        {"via": "oidc"},
    )


def test_the_state_cookie_is_lax_short_lived_and_scoped_to_the_callback(oidc_hub: OidcHub) -> None:
    with httpx.Client(base_url=oidc_hub.url) as c:
        r = c.get("/console/oidc/login")
        cookie = r.headers["set-cookie"].lower()
        assert cookie.startswith("hub_console_oidc=") and "path=/console/oidc" in cookie
        assert "samesite=lax" in cookie and "httponly" in cookie and "max-age=600" in cookie


def refused(oidc_hub: OidcHub, r: httpx.Response, status: int, reason: str, before: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert "hub_console=" not in "".join(r.headers.get_list("set-cookie"))
    (entry,) = [e for e in oidc_hub.entries(before) if e["operation_name"] == "console.login"]
    assert (entry["decision"], entry["console"]["reason"]) == ("deny", reason)
    return entry


def test_a_forged_state_or_a_callback_from_another_browser_is_refused(oidc_hub: OidcHub, provider: Provider) -> None:
    with httpx.Client(base_url=oidc_hub.url) as victim, httpx.Client(base_url=oidc_hub.url) as attacker:
        callback = start(attacker)
        before = oidc_hub.size() - 1
        # login CSRF: the attacker's own code and state, opened in the victim's browser
        r = victim.get(callback)
        refused(oidc_hub, r, 401, "OIDC_BAD_STATE", before)
        assert 'id="oidc-reason">OIDC_BAD_STATE' in r.text
        # the attacker's browser with the state changed
        q = parse_qs(urlparse(callback).query)
        before = oidc_hub.size() - 1
        r = attacker.get(f"/console/oidc/callback?code={q['code'][0]}&state=forged-{q['state'][0]}")
        refused(oidc_hub, r, 401, "OIDC_BAD_STATE", before)
        assert attacker.get("/console/").status_code == 303


@pytest.mark.parametrize(
    ("mode", "claim"),
    [("nonce", "nonce"), ("aud", "aud"), ("aud+azp", "aud"), ("expired", "expired")],
    ids=["nonce", "aud", "aud+azp", "expired"],
)
def test_a_bent_id_token_is_refused(oidc_hub: OidcHub, provider: Provider, mode: str, claim: str) -> None:
    provider.mode = mode
    with httpx.Client(base_url=oidc_hub.url) as c:
        callback = start(c)
        before = oidc_hub.size() - 1
        r = c.get(callback)
        entry = refused(oidc_hub, r, 401, "OIDC_BAD_ID_TOKEN", before)
        assert claim in entry["console"]["detail"].lower(), entry["console"]
        assert c.get("/console/").status_code == 303


def test_an_unknown_identity_is_refused_with_a_clear_page_and_no_account_made(
    oidc_hub: OidcHub, provider: Provider
) -> None:
    provider.user = {"sub": "u-9999", "preferred_username": "stranger"}
    with httpx.Client(base_url=oidc_hub.url, follow_redirects=True) as c:
        before = oidc_hub.size() - 1
        r = c.get("/console/oidc/login")
        refused(oidc_hub, r, 403, "OIDC_UNKNOWN_IDENTITY", before)
        assert 'id="oidc-subject">u-9999<' in r.text and "no officer account" in r.text
    store = OfficerStore(oidc_hub.app.state.hub.engine)
    assert store.by_subject("u-9999") is None and store.get("stranger") is None
    provider.user = {"sub": "u-2002"}  # a caseworker's account: not an officer
    with httpx.Client(base_url=oidc_hub.url, follow_redirects=True) as c:
        before = oidc_hub.size() - 1
        r = c.get("/console/oidc/login")
        entry = refused(oidc_hub, r, 403, "NOT_AN_OFFICER", before)
        assert entry["officer"] == "qian-caseworker"


def test_with_hub_oidc_create_officers_an_unknown_identity_gets_an_officer_account(
    oidc_hub: OidcHub, provider: Provider
) -> None:
    state = oidc_hub.app.state.hub
    provider.user = {"sub": "u-3003", "preferred_username": "sun.li"}
    settings = state.settings
    state.settings = settings.replace(oidc_create_officers=True)
    try:
        with httpx.Client(base_url=oidc_hub.url, follow_redirects=True) as c:
            r = c.get("/console/oidc/login")
            assert r.status_code == 200 and "sun.li" in r.text
            assert c.get("/console/").status_code == 200
    finally:
        state.settings = settings
    made = OfficerStore(state.engine).by_subject("u-3003")
    assert made is not None and (made.login, made.roles, made.has_password) == ("sun.li", ("officer",), False)
