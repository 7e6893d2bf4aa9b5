"""The client registry: department clients allowed to obtain tokens (``hub clients ...``)."""

from __future__ import annotations

import base64
import builtins
import functools
import hashlib
import hmac
import json
import secrets
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import anyio
from sqlalchemy import Connection, Engine, Row, insert, select, update
from sqlalchemy.exc import IntegrityError

from hub.clock import Clock, system_clock
from hub.db import clients, from_row
from hub.departments import DEPARTMENTS
from hub.errors import RequestError
from hub.sources.sql import Inline, hub_inline, try_inline

SCRYPT_N = 2**14  # the default scrypt cost (HUB_CLIENT_SECRET_SCRYPT_N): ~16 MiB per check
_R, _P = 8, 1
CLIENT_COLUMNS = ("department", "area", "purposes", "roles", "status", "secret_hash")  # what ``Client`` holds


@dataclass(frozen=True)
class Client:
    client_id: str
    department: str
    area: str
    purposes: tuple[str, ...]
    roles: tuple[str, ...]
    status: str
    secret_hash: str = ""

    @property
    def active(self) -> bool:
        return self.status == "active"


def hash_secret(secret: str, n: int = SCRYPT_N) -> str:
    """``scrypt$<salt>$<digest>`` at the default cost; another cost ``n`` is named in the scheme
    (``scrypt:<n>$...``), so every hash is checked at the cost it was made with."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(secret.encode(), salt=salt, n=n, r=_R, p=_P, dklen=32)
    scheme = "scrypt" if n == SCRYPT_N else f"scrypt:{n}"
    return scheme + "$" + base64.b64encode(salt).decode() + "$" + base64.b64encode(digest).decode()


def check_secret(secret: str, stored: str) -> bool:
    try:
        scheme, salt_b64, digest_b64 = stored.split("$")
    except ValueError:
        return False
    name, _, cost = scheme.partition(":")
    if name != "scrypt" or (cost and not cost.isdigit()):
        return False
    n = int(cost) if cost else SCRYPT_N
    if n < 2 or n & (n - 1):  # scrypt's N is a power of two
        return False
    digest = hashlib.scrypt(secret.encode(), salt=base64.b64decode(salt_b64), n=n, r=_R, p=_P, dklen=32)
    return hmac.compare_digest(digest, base64.b64decode(digest_b64))


def _row_to_client(row: Row[Any]) -> Client:
    return from_row(Client, row, purposes=tuple(json.loads(row.purposes)), roles=tuple(json.loads(row.roles)))


@functools.lru_cache(maxsize=1024)
def _client_of(row: tuple[str, ...]) -> Client:
    """A ``Client`` from a row read inline (``CLIENT_COLUMNS``, after the id), built once per distinct row: the
    row is read on every request, the JSON columns decoded only when they changed."""
    client_id, department, area, purposes, roles, status, secret_hash = row
    return Client(
        client_id=client_id,
        department=department,
        area=area,
        purposes=tuple(json.loads(purposes)),
        roles=tuple(json.loads(roles)),
        status=status,
        secret_hash=secret_hash,
    )


class ClientStore:
    def __init__(self, engine: Engine, clock: Clock = system_clock, scrypt_n: int = SCRYPT_N) -> None:
        self.clock = clock
        self.scrypt_n = scrypt_n  # the cost of the hashes it makes; each stored hash names its own
        self._dummy = hash_secret(secrets.token_urlsafe(32), scrypt_n)
        self.engine = engine
        # on SQLite, the request path reads a client's row inline (``aget``); None: always in a worker thread
        self.inline: Inline | None = hub_inline(engine)

    def add(
        self,
        client_id: str,
        department: str,
        area: str,
        purposes: list[str],
        roles: list[str] | None = None,
        secret: str | None = None,
        known_purposes: set[str] | None = None,
    ) -> tuple[Client, str]:
        """Register a client; returns it with its secret (shown once, stored only as a scrypt hash)."""
        if department not in DEPARTMENTS:
            raise RequestError(f"unknown department {department!r}", code="BAD_ARGUMENT")
        if not area.isdigit() or not 2 <= len(area) <= 6:
            raise RequestError("area must be a 2- to 6-digit area-code prefix", code="BAD_ARGUMENT")
        if known_purposes is not None:
            unknown = [p for p in purposes if p not in known_purposes]
            if unknown:
                raise RequestError(f"unknown purpose {unknown[0]!r}", code="BAD_ARGUMENT")
        if not client_id or len(client_id) > 64:
            raise RequestError("client id must be 1 to 64 characters", code="BAD_ARGUMENT")
        if self.get(client_id) is not None:
            raise RequestError(f"client {client_id!r} already exists", code="BAD_ARGUMENT")
        secret = secret or secrets.token_urlsafe(32)
        now = self.clock()
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(clients).values(
                        client_id=client_id,
                        department=department,
                        area=area,
                        purposes=json.dumps(sorted(purposes)),
                        roles=json.dumps(sorted(roles or [])),
                        secret_hash=hash_secret(secret, self.scrypt_n),
                        status="active",
                        created_at=now,
                        updated_at=now,
                    )
                )
        except IntegrityError:  # another process registered the same id since the check above
            raise RequestError(f"client {client_id!r} already exists", code="BAD_ARGUMENT") from None
        client = self.get(client_id)
        assert client is not None
        return client, secret

    def get(self, client_id: str, conn: Connection | None = None) -> Client | None:
        """The client's row (on ``conn`` when given: the request path's reads taken together, hub/store/prefetch.py)."""
        with self.engine.connect() if conn is None else nullcontext(conn) as c:
            row = c.execute(select(clients).where(clients.c.client_id == client_id)).first()
        return _row_to_client(row) if row else None

    async def aget(self, client_id: str) -> Client | None:
        """``get`` for the request path: every request reads the client's row, so that a client disabled, a
        secret rotated or a purpose removed, by this process or another, counts from the next request on. On
        SQLite the row is read inline (a primary-key read of a local file: tens of microseconds, where a hand-off
        to a worker thread and SQLAlchemy's execution layer cost about ten times that); the database busy or
        anything unusual: in a worker thread, as ``get``."""
        rows = try_inline(self.inline, clients, "client_id", client_id, CLIENT_COLUMNS)
        if rows is not None:
            return _client_of(tuple(rows[0])) if rows else None
        return await anyio.to_thread.run_sync(self.get, client_id)

    def close(self) -> None:
        if self.inline is not None:
            self.inline.close()

    def list(self) -> builtins.list[Client]:
        with self.engine.connect() as conn:
            return [_row_to_client(r) for r in conn.execute(select(clients).order_by(clients.c.client_id))]

    def _set(self, client_id: str, **values: object) -> None:
        with self.engine.begin() as conn:
            n = conn.execute(
                update(clients).where(clients.c.client_id == client_id).values(updated_at=self.clock(), **values)
            ).rowcount
        if n == 0:
            raise RequestError(f"no client {client_id!r}", code="NOT_FOUND")

    def disable(self, client_id: str) -> None:
        self._set(client_id, status="disabled")

    def enable(self, client_id: str) -> None:
        self._set(client_id, status="active")

    def update(
        self,
        client_id: str,
        *,
        purposes: builtins.list[str] | None = None,
        roles: builtins.list[str] | None = None,
        known_purposes: set[str] | None = None,
    ) -> Client:
        values: dict[str, object] = {}
        if purposes is not None:
            unknown = [p for p in purposes if known_purposes is not None and p not in known_purposes]
            if unknown:
                raise RequestError(f"unknown purpose {unknown[0]!r}", code="BAD_ARGUMENT")
            values["purposes"] = json.dumps(sorted(purposes))
        if roles is not None:
            values["roles"] = json.dumps(sorted(roles))
        self._set(client_id, **values)
        client = self.get(client_id)
        assert client is not None
        return client

    def rotate_secret(self, client_id: str) -> str:
        secret = secrets.token_urlsafe(32)
        self._set(client_id, secret_hash=hash_secret(secret, self.scrypt_n))
        return secret

    def authenticate(self, client_id: str, secret: str) -> Client | None:
        client = self.get(client_id)
        if client is None:
            check_secret(secret, self._dummy)  # one scrypt whether or not the client exists: same time
            return None
        return client if check_secret(secret, client.secret_hash) else None
