"""Restricted mutations: recording and revoking household authorizations (核对授权书).

Only clients with the ``authorization_clerk`` role may call them (checked by the planner before execution,
and again here); the authorization is recorded for the caller's own department.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

import strawberry
from strawberry.types import Info

from hub.departments import SOURCE_DEPARTMENTS
from hub.errors import ForbiddenError, HubError, RequestError
from hub.schema.alerts import AlertMutations
from hub.schema.context import ctx
from hub.store.authorizations import Authorization

CLERK = "authorization_clerk"


@strawberry.type(name="HouseholdAuthorization", description="A recorded household authorization (核对授权书).")
class AuthorizationRecord:
    id: int
    household_id: str
    department: str = strawberry.field(description="The verification body the household authorized.")
    signer: str
    valid_from: date
    valid_to: date
    document_sha256: str = strawberry.field(description="SHA-256 of the scanned signed form.")
    scope: list[str] = strawberry.field(description='Provider departments covered; ["*"] for all.')
    revoked: bool

    @classmethod
    def of(cls, a: Authorization) -> AuthorizationRecord:
        return cls(
            id=a.id,
            household_id=a.household_id,
            department=a.department,
            signer=a.signer,
            valid_from=a.valid_from,
            valid_to=a.valid_to,
            document_sha256=a.document_sha256,
            scope=list(a.scope),
            revoked=a.revoked,
        )


def _store(info: Info):  # type: ignore[no-untyped-def]
    c = ctx(info)
    if not c.actor.has_role(CLERK):
        raise ForbiddenError("only authorization clerks may record authorizations", code="ROLE_REQUIRED")
    if c.authorizations is None:
        raise HubError("no authorization store is configured", code="INTERNAL_ERROR")
    return c, c.authorizations


@strawberry.type(description="Restricted operations on the hub's own records (never department data).")
class Mutation(AlertMutations):  # alerts: docs/monitoring.md
    @strawberry.mutation(description="Record a household's signed authorization for your department.")
    async def record_authorization(
        self,
        info: Info,
        household_id: str,
        signer: str,
        valid_from: date,
        valid_to: date,
        document_sha256: str,
        scope: Annotated[
            list[str] | None,
            strawberry.argument(description="Provider departments the signed form covers; omitted: all of them."),
        ] = None,
    ) -> AuthorizationRecord:
        c, store = _store(info)
        scope = scope or ["*"]
        unknown = [d for d in scope if d != "*" and d not in SOURCE_DEPARTMENTS]
        if unknown:
            raise RequestError(f"scope: unknown provider department {unknown[0]!r}", code="BAD_ARGUMENT")
        a = store.record(
            household_id,
            c.actor.department,
            signer,
            valid_from,
            valid_to,
            document_sha256,
            f"{c.actor.client_id}/{c.officer}",
            scope,
        )
        return AuthorizationRecord.of(a)

    @strawberry.mutation(description="Revoke a recorded authorization (for example, withdrawn by the household).")
    async def revoke_authorization(self, info: Info, id: int) -> AuthorizationRecord:
        c, store = _store(info)
        existing = [a for a in store.list() if a.id == id]
        if not existing or existing[0].department != c.actor.department:
            raise HubError(f"no authorization {id} recorded by your department", code="NOT_FOUND")
        return AuthorizationRecord.of(store.revoke(id))
