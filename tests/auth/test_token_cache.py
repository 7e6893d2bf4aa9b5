"""Verified tokens are cached (``hub.auth.tokens.VerifiedTokens``) and client rows are read on every request
(inline on SQLite): a change made by another process, a client disabled, a purpose removed, a secret rotated,
keys rotated and pruned, counts from the very next request, even for a token whose signature was cached."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, event

from hub.auth.keys import KeyRing
from hub.auth.tokens import VerifiedTokens, issue_token, verify_token
from hub.db import hub_engine
from hub.errors import AuthenticationError
from hub.store.clients import ClientStore
from hub.store.operations import OperationStore
from tests.conftest import TEST_SCRYPT_N, Hub

QUERY = "{ catalog { coordinate } }"


@pytest.fixture
def other_process(hub: Hub) -> Iterator[Engine]:
    """An engine of its own on the hub's database, as `hub clients ...` in another process has."""
    engine = hub_engine(hub.settings.database_url)
    try:
        yield engine
    finally:
        engine.dispose()


async def _client(hub: Hub, client_id: str) -> str:
    _, secret = hub.app.state.hub.clients.add(client_id, "civil_affairs", "330113", ["CASE", "VER"])
    hub.secrets[client_id] = secret
    token = await hub.token(client_id)
    r = await hub.query(QUERY, token=token)
    assert r.status_code == 200, r.text
    assert hub.app.state.hub.verified_tokens.get(token) is not None  # its signature is cached
    return token


def _code(r: Any) -> tuple[int, str]:
    return r.status_code, r.json()["errors"][0]["extensions"]["code"]


async def test_a_client_disabled_by_another_process_is_refused_at_once(hub: Hub, other_process: Engine) -> None:
    token = await _client(hub, "cache-disabled")
    ClientStore(other_process, scrypt_n=TEST_SCRYPT_N).disable("cache-disabled")
    r = await hub.query(QUERY, token=token)
    assert _code(r) == (401, "CLIENT_DISABLED")
    ClientStore(other_process, scrypt_n=TEST_SCRYPT_N).enable("cache-disabled")
    assert (await hub.query(QUERY, token=token)).status_code == 200


async def test_a_purpose_removed_by_another_process_counts_at_once(hub: Hub, other_process: Engine) -> None:
    token = await _client(hub, "cache-purpose")
    ClientStore(other_process, scrypt_n=TEST_SCRYPT_N).update("cache-purpose", purposes=["VER"])
    r = await hub.query(QUERY, token=token)  # the hub's default purpose header is CASE
    assert _code(r) == (403, "PURPOSE_NOT_REGISTERED")


async def test_an_operations_mode_set_by_another_process_counts_at_once(hub: Hub, other_process: Engine) -> None:
    """The mode is read with the client's row (on PostgreSQL in the same hand-off, hub/store/prefetch.py), for
    that request alone: the next request reads it again."""
    token = await _client(hub, "cache-mode")
    OperationStore(other_process).set_mode("cache-mode", "require")
    try:
        r = await hub.query(QUERY, token=token)
        assert _code(r) == (403, "OPERATION_NOT_APPROVED")
    finally:
        OperationStore(other_process).set_mode("cache-mode", "off")
    assert (await hub.query(QUERY, token=token)).status_code == 200


async def test_the_request_path_reads_take_one_connection(hub: Hub) -> None:
    """The client's row, its operations mode and its lookup-miss budget: on SQLite read inline (no connection from
    the pool), on PostgreSQL together, in one worker-thread hand-off on one connection; the audit append takes
    one more. (Before issue 16's change, PostgreSQL took four: one per read.)"""
    engine = hub.app.state.hub.engine
    person = "query($id: String!) { person(idNumber: $id) { name } }"
    variables = {"id": hub.data.golden_id}
    assert (await hub.query(person, variables=variables)).status_code == 200  # the token, the validated document
    checkouts: list[int] = []

    def seen(*_: Any) -> None:
        checkouts.append(1)

    event.listen(engine, "checkout", seen)
    try:
        r = await hub.query(person, variables=variables)
    finally:
        event.remove(engine, "checkout", seen)
    assert r.status_code == 200 and r.json()["data"]["person"]["name"], r.text
    assert len(checkouts) == (1 if engine.dialect.name == "sqlite" else 2)


async def test_a_rotated_secret_is_refused_at_once(hub: Hub, other_process: Engine) -> None:
    await _client(hub, "cache-secret")
    old = hub.secrets["cache-secret"]
    new = ClientStore(other_process, scrypt_n=TEST_SCRYPT_N).rotate_secret("cache-secret")
    form = {"grant_type": "client_credentials"}
    r = await hub.client.post("/oauth/token", data=form, auth=("cache-secret", old))
    assert r.status_code == 401
    r = await hub.client.post("/oauth/token", data=form, auth=("cache-secret", new))
    assert r.status_code == 200


async def test_keys_pruned_by_another_process_refuse_a_cached_token_at_once(hub: Hub) -> None:
    token = await _client(hub, "cache-keys")
    cli = KeyRing(hub.settings.key_dir)  # `hub keys rotate` / `hub keys prune` in another process
    old_kid = cli.active().kid
    cli.rotate()
    try:
        assert (await hub.query(QUERY, token=token)).status_code == 200  # rotation keeps old tokens valid
        assert cli.prune(hub.settings.token_ttl, now=time.time() + hub.settings.token_ttl + 120) == [old_kid]
        r = await hub.query(QUERY, token=token)
        assert _code(r) == (401, "TOKEN_UNKNOWN_KEY")
    finally:
        hub.tokens.clear()


def test_a_cached_token_still_expires(tmp_path: Any) -> None:
    ring = KeyRing(tmp_path / "keys")
    ring.ensure()
    cache = VerifiedTokens()
    now = 1_900_000_000.0
    token, _ = issue_token(
        ring,
        issuer="iss",
        audience="aud",
        ttl=60,
        client_id="c",
        department="civil_affairs",
        area="3301",
        purposes=["CASE"],
        roles=[],
        now=now,
    )
    args: dict[str, Any] = {"issuer": "iss", "audience": "aud", "cache": cache}
    assert verify_token(ring, token, now=now, **args)["client_id"] == "c"
    assert cache.get(token) is not None and len(cache) == 1
    with pytest.raises(AuthenticationError) as expired:
        verify_token(ring, token, now=now + 60 + 31, **args)  # past exp and the 30 s leeway
    assert expired.value.code == "TOKEN_EXPIRED"
    with pytest.raises(AuthenticationError) as early:
        verify_token(ring, token, now=now - 31, **args)  # before iat/nbf, beyond the leeway
    assert early.value.code == "TOKEN_NOT_YET_VALID"
    with pytest.raises(AuthenticationError) as other:
        verify_token(ring, token, now=now, issuer="iss", audience="another", cache=cache)
    assert other.value.code == "TOKEN_WRONG_AUDIENCE"
    ring.rotate(now=now + 1)  # any change of the key set empties the cache
    verify_token(ring, token, now=now, **args)
    assert len(cache) == 1 and cache.kids == tuple(k.kid for k in ring.token_keys())
