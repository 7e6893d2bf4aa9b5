"""Client secrets: scrypt hashes that name their cost unless it is the default (HUB_CLIENT_SECRET_SCRYPT_N)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event

from hub.db import open_hub_db
from hub.errors import ConfigError, RequestError
from hub.settings import Settings
from hub.store.clients import SCRYPT_N, ClientStore, check_secret, hash_secret


def test_the_default_cost_is_the_production_one_and_keeps_its_format() -> None:
    assert SCRYPT_N == Settings().client_secret_scrypt_n == 2**14
    stored = hash_secret("s3cret")
    assert stored.startswith("scrypt$") and stored.count("$") == 2
    assert check_secret("s3cret", stored) and not check_secret("other", stored)


def test_another_cost_is_named_in_the_hash_and_checked_at_that_cost() -> None:
    stored = hash_secret("s3cret", 2**10)
    assert stored.startswith("scrypt:1024$")
    assert check_secret("s3cret", stored) and not check_secret("other", stored)
    assert not check_secret("s3cret", stored.replace("scrypt:1024$", "scrypt$", 1))  # the cost is part of the hash
    for scheme in ("scrypt:1000", "scrypt:x", "scrypt:0", "bcrypt"):
        assert not check_secret("s3cret", stored.replace("scrypt:1024", scheme, 1)), scheme


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    return open_hub_db(f"sqlite:///{tmp_path}/hub.sqlite")


def test_a_store_hashes_at_its_cost_and_checks_any_stored_cost(engine: Engine) -> None:
    cheap, default = ClientStore(engine, scrypt_n=2**10), ClientStore(engine)
    _, secret = cheap.add("c1", "civil_affairs", "330113", ["CASE"])
    stored = cheap.get("c1")
    assert stored is not None and stored.secret_hash.startswith("scrypt:1024$")
    assert default.authenticate("c1", secret) is not None and default.authenticate("c1", "wrong") is None


def test_a_cost_that_is_not_a_power_of_two_is_refused() -> None:
    with pytest.raises(ConfigError, match="power of two"):
        Settings(client_secret_scrypt_n=1000)
    assert Settings.from_env({"HUB_CLIENT_SECRET_SCRYPT_N": "1024"}).client_secret_scrypt_n == 1024


def test_a_client_registered_by_another_process_between_check_and_insert_is_a_clear_error(tmp_path: Path) -> None:
    """Two hub processes starting on one database both register the monitoring client: the one that loses the race
    gets ``already exists`` (which the monitor takes as done), not a database error that ends its reader."""
    url = f"sqlite:///{tmp_path}/hub.sqlite"
    mine, theirs = open_hub_db(url), open_hub_db(url)
    store, other = ClientStore(mine, scrypt_n=2**10), ClientStore(theirs, scrypt_n=2**10)

    raced: list[str] = []

    def the_other_process_first(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.startswith("INSERT INTO clients") and not raced:
            raced.append(statement)
            other.add("hub-monitor", "civil_affairs", "33", ["MON"])

    event.listen(mine, "before_cursor_execute", the_other_process_first)
    with pytest.raises(RequestError, match="^client 'hub-monitor' already exists$"):
        store.add("hub-monitor", "civil_affairs", "33", ["MON"])
    assert [c.client_id for c in store.list()] == ["hub-monitor"]
