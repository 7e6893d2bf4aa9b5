"""Tokens from an external identity provider, its JWKS served by a small real server on 127.0.0.1."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc import jwt
from joserfc.jwk import RSAKey
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from hub.app import create_app
from hub.demo.generate import GenerateResult
from tests.conftest import Hub, make_settings, serve, working_clock

IDP_ISSUER = "https://idp.zj.example"


def rsa_key(kid: str) -> RSAKey:
    pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return RSAKey.import_key(pem, parameters={"kid": kid, "use": "sig", "alg": "RS256"})


class IdP:
    def __init__(self) -> None:
        self.keys = [rsa_key("idp-1")]
        self.fetches = 0

    def app(self) -> Starlette:
        async def jwks(_: Any) -> JSONResponse:
            self.fetches += 1
            return JSONResponse({"keys": [k.as_dict(private=False) for k in self.keys]})

        return Starlette(routes=[Route("/jwks", jwks)])

    def token(self, client_id: str = "ext-ca", iss: str = IDP_ISSUER, key: int = 0) -> str:
        now = int(time.time())
        claims = {
            "iss": iss,
            "aud": "hub",
            "client_id": client_id,
            "sub": client_id,
            "iat": now,
            "exp": now + 120,
            "jti": f"idp-{time.monotonic_ns()}",
        }
        k = self.keys[key]
        return jwt.encode({"alg": "RS256", "typ": "at+jwt", "kid": k.kid}, claims, k, algorithms=["RS256"])


@pytest.fixture(scope="module")
async def ext(
    dept_data: tuple[Path, GenerateResult], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[Hub, IdP]]:
    idp = IdP()
    with serve(idp.app()) as idp_url:
        root = tmp_path_factory.mktemp("ext")
        (root / "departments").symlink_to(dept_data[0] / "departments")
        settings = make_settings(root, external_jwks_url=f"{idp_url}/jwks", external_issuer=IDP_ISSUER)
        app = create_app(settings, sign_interval=3600, clock=working_clock())
        app.state.hub.clients.add("ext-ca", "civil_affairs", "330113", ["CASE"])
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as client:
                yield Hub(app, client, settings, {}, dept_data[1], {}), idp


QUERY = "query($id: String!) { person(idNumber: $id) { name } }"


async def test_external_token_accepted(ext: tuple[Hub, IdP]) -> None:
    hub, idp = ext
    r = await hub.query(QUERY, token=idp.token(), variables={"id": hub.data.golden_id})
    assert r.status_code == 200 and r.json()["data"]["person"]["name"] == "钱国良"


async def test_external_token_for_unregistered_client(ext: tuple[Hub, IdP]) -> None:
    hub, idp = ext
    r = await hub.query(QUERY, token=idp.token(client_id="stranger"), variables={"id": hub.data.golden_id})
    assert r.status_code == 401 and r.json()["errors"][0]["extensions"]["code"] == "CLIENT_UNKNOWN"


async def test_external_key_claiming_another_issuer(ext: tuple[Hub, IdP]) -> None:
    hub, idp = ext
    r = await hub.query(QUERY, token=idp.token(iss="https://hub.local"), variables={"id": hub.data.golden_id})
    assert r.status_code == 401 and r.json()["errors"][0]["extensions"]["code"] == "TOKEN_WRONG_ISSUER"


async def test_idp_key_rotation_picked_up(ext: tuple[Hub, IdP]) -> None:
    hub, idp = ext
    idp.keys.append(rsa_key("idp-2"))
    token = idp.token(key=1)
    hub.app.state.hub.external.fetched_at -= 11  # an unknown key refreshes, at most every 10 s
    before = idp.fetches
    r = await hub.query(QUERY, token=token, variables={"id": hub.data.golden_id})
    assert r.status_code == 200 and idp.fetches == before + 1
