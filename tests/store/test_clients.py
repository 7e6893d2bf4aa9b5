"""Client secrets: scrypt hashes that name their cost unless it is the default (HUB_CLIENT_SECRET_SCRYPT_N)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine

from hub.db import open_hub_db
from hub.errors import ConfigError
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
