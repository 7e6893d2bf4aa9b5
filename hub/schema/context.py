"""Per-request context: the actor, purpose, row scope, batched loaders and what was touched (for audit)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, Row, Table
from strawberry.dataloader import DataLoader
from strawberry.types import Info

from hub.auth.actor import Actor
from hub.errors import HubError, UpstreamUnavailable
from hub.policy.model import Purpose
from hub.sources.sql import SqlSource

if TYPE_CHECKING:
    from hub.store.authorizations import AuthorizationStore


@dataclass
class HubContext:
    actor: Actor
    purpose: Purpose
    case_ref: str
    officer: str
    area_prefix: str | None  # row scope: None means every resident the provider holds
    sources: dict[str, SqlSource]
    today: date
    authorizations: AuthorizationStore | None = None
    max_batch: int = 1000
    catalog: dict[str, Any] = field(default_factory=dict)
    audit: Any = None  # hub.audit.log.AuditLog, for the officers' API
    subjects: set[str] = field(default_factory=set)  # ID numbers of residents whose data was resolved
    upstream_failures: set[str] = field(default_factory=set)
    not_found: set[str] = field(default_factory=set)  # ID numbers asked for that resolved to nothing
    loaders: dict[Any, DataLoader[Any, Any]] = field(default_factory=dict)

    def source(self, dept: str) -> SqlSource:
        try:
            return self.sources[dept]
        except KeyError:
            self.upstream_failures.add(dept)
            raise UpstreamUnavailable(f"department {dept} is not configured") from None

    def _loader(self, key: Any, fn: Callable[[list[Any]], Awaitable[Sequence[Any]]]) -> DataLoader[Any, Any]:
        loader = self.loaders.get(key)
        if loader is None:
            loader = DataLoader(load_fn=fn, cache=True)
            self.loaders[key] = loader
        return loader

    async def rows(
        self,
        dept: str,
        table: Table,
        key: str,
        value: str,
        where: ColumnElement[bool] | None = None,
        where_name: str = "",
    ) -> list[Row[Any]]:
        """All rows of ``table`` in department ``dept`` whose ``key`` equals ``value``, batched per request."""

        async def load(keys: list[str]) -> Sequence[list[Row[Any]]]:
            try:
                return await self.source(dept).rows_by(table, key, keys, where)
            except UpstreamUnavailable:
                self.upstream_failures.add(dept)
                raise

        result: list[Row[Any]] = await self._loader((dept, table.name, key, where_name), load).load(value)
        return result

    async def first(self, dept: str, table: Table, value: str) -> Row[Any] | None:
        rows = await self.rows(dept, table, "id_number", value)
        return rows[0] if rows else None

    async def predicate(self, dept: str, table: Table, name: str, condition: ColumnElement[bool], value: str) -> bool:
        """A yes/no answer computed inside the department's own query."""

        async def load(keys: list[str]) -> Sequence[bool]:
            try:
                return await self.source(dept).predicate(table, "id_number", keys, condition)
            except UpstreamUnavailable:
                self.upstream_failures.add(dept)
                raise

        answer: bool = await self._loader((dept, table.name, "pred", name), load).load(value)
        return answer

    async def require_authorization(self, household_id: str, provider: str) -> None:
        """Where the purpose needs a household authorization (核对授权书), refuse residents without a valid one
        covering ``provider``."""
        if not self.purpose.requires_authorization:
            return
        store = self.authorizations
        if store is None:
            raise HubError("no authorization store is configured", code="AUTHORIZATION_REQUIRED")

        async def load(keys: list[str]) -> Sequence[frozenset[str]]:
            return await store.covered(keys, self.actor.department, self.today)

        scopes: frozenset[str] = await self._loader(("authz",), load).load(household_id)
        if not scopes:
            raise HubError(
                f"no valid household authorization on record for purpose {self.purpose.id}",
                code="AUTHORIZATION_REQUIRED",
            )
        if "*" not in scopes and provider not in scopes:
            raise HubError(f"the household's authorization does not cover {provider}", code="AUTHORIZATION_REQUIRED")


async def count_out_of_area(c: HubContext) -> int:
    """How many not-found residents exist outside the caller's jurisdiction (for the audit entry only)."""
    if not c.not_found or c.area_prefix is None or "public_security" not in c.sources:
        return 0
    from hub.departments import residents

    try:
        found = await c.sources["public_security"].rows_by(residents, "id_number", sorted(c.not_found))
    except UpstreamUnavailable:
        return 0
    return sum(1 for rows in found if rows)


def ctx(info: Info[Any, Any]) -> HubContext:
    context: HubContext = info.context
    return context
