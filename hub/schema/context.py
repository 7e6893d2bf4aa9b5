"""Per-request context: the actor, purpose, row scope, batched loaders and what was touched (for audit)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from graphql import GraphQLResolveInfo
from sqlalchemy import ColumnElement, Row, Table
from strawberry.types import Info

from hub.auth.actor import Actor
from hub.errors import AuditUnavailable, HubError, UpstreamUnavailable
from hub.policy.model import Purpose
from hub.schema.loader import BulkLoader
from hub.sources import Source

if TYPE_CHECKING:
    from hub.audit.log import AuditLog
    from hub.monitor.alerts import Alert, AlertStore
    from hub.policy.loader import CatalogEntry
    from hub.store.authorizations import AuthorizationStore


class AlertFollowing(Protocol):
    """What the ``alertCreated`` resolver reads (``hub.monitor.ws.AlertFollower`` implements it): the caller's
    current area and the feed of new alerts, the caller re-checked before each."""

    area: str

    def alerts(self, after: str | None) -> AsyncIterator[Alert]: ...


@dataclass
class HubContext:
    actor: Actor
    purpose: Purpose
    case_ref: str
    officer: str
    area_prefix: str | None  # row scope: None means every resident the provider holds
    sources: dict[str, Source]
    today: date
    authorizations: AuthorizationStore | None = None
    max_batch: int = 1000
    catalog: dict[str, CatalogEntry] = field(default_factory=dict)
    audit: AuditLog | None = None  # for the officers' API (hub/schema/oversight.py)
    data_dir: Path | None = None  # where archived audit files are looked up (officers' access reports)
    perturbation_key: bytes = b""  # keys the cell-key perturbation of statistics (hub/schema/statistics.py)
    alerts: AlertStore | None = None  # alerts queries and the caseworker's mutations
    alert_feed: AlertFollowing | None = None  # the alertCreated subscription (hub/monitor/ws.py)
    subjects: set[str] = field(default_factory=set)  # ID numbers of residents whose data was resolved
    upstream_failures: set[str] = field(default_factory=set)
    not_found: set[str] = field(default_factory=set)  # ID numbers asked for that resolved to nothing
    out_of_area_ids: set[str] = field(default_factory=set)  # of those, residents outside the caller's area
    loaders: dict[Any, BulkLoader[Any, Any]] = field(default_factory=dict)
    selections: dict[Any, Any] = field(default_factory=dict)  # per field node: what is selected below it

    @contextmanager
    def calling(self, dept: str) -> Iterator[None]:
        """Around a call to department ``dept``: the one place that records its failure (``UpstreamUnavailable``,
        re-raised) for the audit entry's ``upstream_failures``."""
        try:
            yield
        except UpstreamUnavailable:
            self.upstream_failures.add(dept)
            raise

    def audit_log(self) -> AuditLog:
        """The audit log, for the officers' API; a request without one (an alert subscription) is refused."""
        if self.audit is None:
            raise AuditUnavailable("the audit log is not available to this request")
        return self.audit

    def source(self, dept: str) -> Source:
        with self.calling(dept):
            try:
                return self.sources[dept]
            except KeyError:
                raise UpstreamUnavailable(f"department {dept} is not configured") from None

    def _loader(self, key: Any, fn: Callable[[list[Any]], Awaitable[Sequence[Any]]]) -> BulkLoader[Any, Any]:
        loader = self.loaders.get(key)
        if loader is None:
            loader = self.loaders[key] = BulkLoader(fn)
        return loader

    def _rows_loader(
        self,
        dept: str,
        table: Table,
        key: str,
        where: ColumnElement[bool] | None,
        where_name: str,
        columns: tuple[str, ...] | None = None,
    ) -> BulkLoader[Any, Any]:
        async def load(keys: list[str]) -> Sequence[list[Row[Any]]]:
            with self.calling(dept):
                return await self.source(dept).rows_by(table, key, keys, where, columns)

        return self._loader((dept, table.name, key, where_name, columns), load)

    def rows_many(
        self,
        dept: str,
        table: Table,
        key: str,
        values: Sequence[str],
        where: ColumnElement[bool] | None = None,
        where_name: str = "",
        columns: tuple[str, ...] | None = None,
    ) -> Awaitable[list[list[Row[Any]]]]:
        """For each of ``values``, the rows of ``table`` in department ``dept`` whose ``key`` equals it (and which
        satisfy the row scope ``where``, named ``where_name``). One future (no task), batched and cached per
        request: the load is registered now, so several of these awaited one after the other still go out in
        one batch each. With ``columns``, only those columns (and ``key``) are read from the department."""
        return self._rows_loader(dept, table, key, where, where_name, columns).load_many(values)

    def predicates(
        self, dept: str, table: Table, name: str, condition: ColumnElement[bool], values: Sequence[str]
    ) -> Awaitable[list[bool]]:
        """Yes/no answers computed inside the department's own query, batched per request (one future, as
        ``rows_many``); ``name`` must identify ``condition`` (it keys the batch)."""

        async def load(keys: list[str]) -> Sequence[bool]:
            with self.calling(dept):
                return await self.source(dept).predicate(table, "id_number", keys, condition)

        return self._loader((dept, table.name, "pred", name), load).load_many(values)

    async def authorization_scopes(self, household_ids: Sequence[str]) -> list[frozenset[str]] | HubError | None:
        """Where the purpose needs a household authorization (核对授权书): the departments each household's valid
        authorizations cover ("*" for all). None when the purpose needs none."""
        if not self.purpose.requires_authorization:
            return None
        store = self.authorizations
        if store is None:
            return HubError("no authorization store is configured", code="AUTHORIZATION_REQUIRED")

        async def load(keys: list[str]) -> Sequence[frozenset[str]]:
            return await store.covered(keys, self.actor.department, self.today)

        scopes: list[frozenset[str]] = await self._loader(("authz",), load).load_many(household_ids)
        return scopes

    def refusals(self, scopes: list[frozenset[str]] | HubError | None, provider: str, n: int) -> list[HubError | None]:
        """For each of ``n`` households, the refusal to disclose ``provider``'s data (None: allowed)."""
        if scopes is None:
            return [None] * n
        if isinstance(scopes, HubError):
            return [scopes] * n
        missing = HubError(
            f"no valid household authorization on record for purpose {self.purpose.id}", code="AUTHORIZATION_REQUIRED"
        )
        uncovered = HubError(f"the household's authorization does not cover {provider}", code="AUTHORIZATION_REQUIRED")
        return [missing if not s else None if "*" in s or provider in s else uncovered for s in scopes]


async def count_out_of_area(c: HubContext) -> int:
    """How many not-found residents exist outside the caller's jurisdiction (for the audit entry only)."""
    if not c.not_found or c.area_prefix is None or "public_security" not in c.sources:
        return 0
    from hub.departments import residents

    try:
        found = await c.sources["public_security"].rows_by(
            residents, "id_number", sorted(c.not_found), None, ("id_number",)
        )
    except UpstreamUnavailable:
        return 0
    c.out_of_area_ids = {i for i, rows in zip(sorted(c.not_found), found, strict=True) if rows}
    return len(c.out_of_area_ids)


def ctx(info: Info[Any, Any]) -> HubContext:
    context: HubContext = info.context
    return context


def resolve_info(info: Info[Any, Any]) -> GraphQLResolveInfo[Any]:
    """graphql-core's resolve info under strawberry's ``Info`` (the field nodes, the document's fragments, the
    coerced variables, the graphql-core schema). Strawberry keeps it as ``_raw_info``, with no public name: this
    is the one place that reads it."""
    return info._raw_info
