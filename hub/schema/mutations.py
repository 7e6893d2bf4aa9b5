"""Restricted mutations: recording and revoking household authorizations (核对授权书).

Only clients with the ``authorization_clerk`` role, under purpose VER, may call them (checked by the planner
before execution; the role again here). The authorization is recorded for the caller's own department, only for
a household registered in the caller's area, for at most one year, and the audit entry names its residents.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

import strawberry
from strawberry.types import Info

from hub.departments import SOURCE_DEPARTMENTS
from hub.errors import ForbiddenError, HubError, RequestError
from hub.schema.alerts import AlertMutations
from hub.schema.context import HubContext, ctx
from hub.store.authorizations import Authorization, check_validity

CLERK = "authorization_clerk"
PS = "public_security"  # household registration: where a household is registered, and who belongs to it


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


async def household_in_area(c: HubContext, household_id: str) -> None:
    """Refuse a household not registered (public security household registration) in the caller's area; an
    unknown household gets the same answer. Its residents become the request's subjects, so the audit entry
    (and each resident's access report) names them."""
    from hub.departments import households, residents

    refused = ForbiddenError(
        f"household {household_id[:20]!r} is not registered in your area ({c.actor.area})",
        code="HOUSEHOLD_NOT_IN_AREA",
    )
    if not household_id or len(household_id) > 20 or not household_id.isalnum():
        raise RequestError("householdId: 1 to 20 letters or digits", code="BAD_ARGUMENT")
    with c.calling(PS):
        source = c.source(PS)
        [found] = await source.rows_by(households, "household_id", [household_id], None, ("area_code",))
        if not found or not str(found[0].area_code).startswith(c.actor.area):
            raise refused
        [members] = await source.rows_by(residents, "household_id", [household_id], None, ("id_number",))
    c.subjects.update(str(m.id_number) for m in members)


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
        check_validity(valid_from, valid_to)
        await household_in_area(c, household_id)  # and its residents are named in the audit entry
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
