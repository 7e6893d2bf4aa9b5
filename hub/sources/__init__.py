"""Department sources: live, read-only access to each department's own data.

Every source, whatever it reads (``SqlSource``: the department's database; ``SubgraphSource``: the
department's own GraphQL service), offers the interface below, and the rest of the hub sees only that.
Beside the two sources: ``contract`` (what a department subgraph must serve; the demo subgraph derives from it
too) and ``values`` (a subgraph's JSON values as Python values, and the in-memory evaluator of conditions).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import ColumnElement, Table

if TYPE_CHECKING:
    from hub.upstream.breaker import CircuitBreaker


class Source(Protocol):
    code: str  # the department
    url: str
    timeout: float  # seconds per call
    breaker: CircuitBreaker
    statements: int  # calls made to the department (SQL statements, or HTTP requests for a subgraph)

    async def rows_by(
        self,
        table: Table,
        key: str,
        keys: Sequence[str],
        where: ColumnElement[bool] | None = None,
        columns: Sequence[str] | None = None,
    ) -> list[list[Any]]:
        """Rows of ``table`` whose ``key`` is in ``keys`` (and which satisfy ``where``), grouped in the order
        of ``keys``; one call for the whole batch. With ``columns``, only those columns and ``key`` are read
        (the others are absent or None). ``UpstreamUnavailable`` if the department fails."""
        ...

    async def predicate(
        self, table: Table, key: str, keys: Sequence[str], condition: ColumnElement[bool]
    ) -> list[bool]:
        """Whether any row of each key satisfies ``condition``, in the order of ``keys``."""
        ...

    async def aggregate(self, stmt: Any) -> list[tuple[Any, ...]]:
        """An aggregate statement built by the hub (GROUP BY ... COUNT); only counts come back."""
        ...

    def close(self) -> None: ...
