"""Household authorizations (核对授权书) recorded in the hub's database."""

from __future__ import annotations

import builtins
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import anyio
from sqlalchemy import Engine, Row, insert, select, update

from hub.clock import Clock, system_clock
from hub.db import authorizations, from_row
from hub.errors import RequestError

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
MAX_VALIDITY = "one year"  # the longest a signed authorization (核对授权书) is accepted for; docs/policies.md


def one_year_after(d: date) -> date:
    """The same day a year later (28 February for 29 February)."""
    try:
        return d.replace(year=d.year + 1)
    except ValueError:
        return d.replace(year=d.year + 1, day=28)


def check_validity(valid_from: date, valid_to: date) -> None:
    """The validity rules every recorded authorization meets, however it is recorded (the GraphQL mutation or the
    operator's ``hub authorizations add``)."""
    if valid_from > valid_to:
        raise RequestError("validFrom is after validTo", code="BAD_ARGUMENT")
    latest = one_year_after(valid_from)
    if valid_to > latest:
        raise RequestError(
            f"an authorization is valid for at most {MAX_VALIDITY}: validTo may be {latest} at the latest",
            code="AUTHORIZATION_TOO_LONG",
        )


@dataclass(frozen=True)
class Authorization:
    id: int
    household_id: str
    department: str
    scope: tuple[str, ...]
    signer: str
    valid_from: date
    valid_to: date
    document_sha256: str
    recorded_by: str
    revoked: bool


def _to(row: Row[Any]) -> Authorization:
    return from_row(Authorization, row, scope=tuple(json.loads(row.scope)), revoked=row.revoked_at is not None)


class AuthorizationStore:
    def __init__(self, engine: Engine, clock: Clock = system_clock) -> None:
        self.clock = clock
        self.engine = engine

    def record(
        self,
        household_id: str,
        department: str,
        signer: str,
        valid_from: date,
        valid_to: date,
        document_sha256: str,
        recorded_by: str,
        scope: Sequence[str] = ("*",),
    ) -> Authorization:
        if not household_id or len(household_id) > 20 or not household_id.isalnum():
            raise RequestError("householdId: 1 to 20 letters or digits", code="BAD_ARGUMENT")
        check_validity(valid_from, valid_to)
        if not _SHA256.match(document_sha256):
            raise RequestError("documentSha256 must be 64 lowercase hex digits", code="BAD_ARGUMENT")
        if not signer.strip():
            raise RequestError("signer must be named", code="BAD_ARGUMENT")
        with self.engine.begin() as conn:
            new_id = conn.execute(
                insert(authorizations).values(
                    household_id=household_id,
                    department=department,
                    scope=json.dumps(list(scope)),
                    signer=signer,
                    valid_from=valid_from,
                    valid_to=valid_to,
                    document_sha256=document_sha256,
                    recorded_by=recorded_by,
                    recorded_at=self.clock(),
                )
            ).inserted_primary_key
            assert new_id is not None
            row = conn.execute(select(authorizations).where(authorizations.c.id == new_id[0])).one()
        return _to(row)

    def revoke(self, auth_id: int) -> Authorization:
        with self.engine.begin() as conn:
            n = conn.execute(
                update(authorizations)
                .where(authorizations.c.id == auth_id, authorizations.c.revoked_at.is_(None))
                .values(revoked_at=self.clock())
            ).rowcount
            row = conn.execute(select(authorizations).where(authorizations.c.id == auth_id)).first()
        if row is None:
            raise RequestError(f"no authorization {auth_id}", code="NOT_FOUND")
        if n == 0:
            raise RequestError(f"authorization {auth_id} is already revoked", code="BAD_ARGUMENT")
        return _to(row)

    def list(self, household_id: str | None = None) -> builtins.list[Authorization]:
        stmt = select(authorizations).order_by(authorizations.c.id)
        if household_id:
            stmt = stmt.where(authorizations.c.household_id == household_id)
        with self.engine.connect() as conn:
            return [_to(r) for r in conn.execute(stmt)]

    def _covered(self, household_ids: Sequence[str], department: str, today: date) -> dict[str, set[str]]:
        stmt = select(authorizations.c.household_id, authorizations.c.scope).where(
            authorizations.c.household_id.in_(list(set(household_ids))),
            authorizations.c.department == department,
            authorizations.c.revoked_at.is_(None),
            authorizations.c.valid_from <= today,
            authorizations.c.valid_to >= today,
        )
        scopes: dict[str, set[str]] = {}
        with self.engine.connect() as conn:
            for household, scope in conn.execute(stmt):
                scopes.setdefault(household, set()).update(json.loads(scope))
        return scopes

    async def covered(
        self, household_ids: Sequence[str], department: str, today: date
    ) -> builtins.list[frozenset[str]]:
        """For each household, the provider departments its valid, unrevoked authorizations for ``department``
        cover (``"*"`` for all); empty when there is none."""
        found = await anyio.to_thread.run_sync(self._covered, household_ids, department, today)
        return [frozenset(found.get(h, ())) for h in household_ids]
