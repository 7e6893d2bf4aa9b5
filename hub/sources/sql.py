"""``SqlSource``: a department database reached through a read-only SQLAlchemy engine.

Only bound parameters are used; every call is one statement for a whole batch of keys,
so a request issues O(departments x levels) statements, never one per resident.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import anyio
from sqlalchemy import ColumnElement, Engine, Row, Table, create_engine, event, select
from sqlalchemy.engine import make_url

from hub.upstream.breaker import CircuitBreaker
from hub.upstream.guard import guarded

log = logging.getLogger("hub.sources")

CHUNK = 5000  # keys per IN (...) list; under SQLite's (32,766) and PostgreSQL's (65,535) parameter limits


def readonly_engine(url: str) -> Engine:
    """An engine that cannot write: SQLite opened with ``mode=ro``; PostgreSQL read-only transactions."""
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        path = u.database or ""
        engine = create_engine(
            f"sqlite:///file:{path}?mode=ro&uri=true",
            connect_args={"check_same_thread": False},
        )
    else:
        engine = create_engine(
            u,
            pool_pre_ping=True,
            connect_args={"options": "-c default_transaction_read_only=on"},
        )
    return engine


class SqlSource:
    """One department's database."""

    def __init__(self, code: str, url: str, *, timeout: float = 5.0, breaker: CircuitBreaker | None = None) -> None:
        self.code = code
        self.url = url
        self.timeout = timeout
        self.breaker = breaker or CircuitBreaker()
        self.engine = readonly_engine(url)
        self.statements = 0

        @event.listens_for(self.engine, "before_cursor_execute")
        def _count(*_: Any) -> None:
            self.statements += 1

    def close(self) -> None:
        self.engine.dispose()

    async def _run(self, fn: Any, *args: Any) -> Any:
        # any database error counts; only its class is logged (its text can hold the statement's parameters)
        async with guarded(self.breaker, self.timeout, f"department {self.code}", detail=False):
            return await anyio.to_thread.run_sync(fn, *args, abandon_on_cancel=True)

    def _select_rows(
        self,
        table: Table,
        key: str,
        keys: Sequence[str],
        where: ColumnElement[bool] | None,
        columns: Sequence[str] | None,
    ) -> dict[str, list[Row[Any]]]:
        out: dict[str, list[Row[Any]]] = defaultdict(list)
        col = table.c[key]
        what = [table] if columns is None else [col, *(table.c[c] for c in columns if c != key)]
        with self.engine.connect() as conn:
            for i in range(0, len(keys), CHUNK):
                stmt = select(*what).where(col.in_(keys[i : i + CHUNK]))
                if where is not None:
                    stmt = stmt.where(where)
                for row in conn.execute(stmt):
                    out[row._mapping[key]].append(row)
        return out

    async def rows_by(
        self,
        table: Table,
        key: str,
        keys: Sequence[str],
        where: ColumnElement[bool] | None = None,
        columns: Sequence[str] | None = None,
    ) -> list[list[Row[Any]]]:
        """Rows of ``table`` whose ``key`` column is in ``keys``, grouped in the order of ``keys``; with
        ``columns``, only those columns (and ``key``) are selected."""
        found = await self._run(self._select_rows, table, key, list(dict.fromkeys(keys)), where, columns)
        return [found.get(k, []) for k in keys]

    def _select_predicate(
        self, table: Table, key: str, keys: Sequence[str], condition: ColumnElement[bool]
    ) -> set[str]:
        col = table.c[key]
        hits: set[str] = set()
        with self.engine.connect() as conn:
            for i in range(0, len(keys), CHUNK):
                stmt = select(col).where(col.in_(keys[i : i + CHUNK])).where(condition).distinct()
                hits.update(r[0] for r in conn.execute(stmt))
        return hits

    async def predicate(
        self, table: Table, key: str, keys: Sequence[str], condition: ColumnElement[bool]
    ) -> list[bool]:
        """Whether any row of each key satisfies ``condition``, computed in the source's own query.

        Only key values travel back: the compared value never leaves the department's database.
        """
        hits = await self._run(self._select_predicate, table, key, list(dict.fromkeys(keys)), condition)
        return [k in hits for k in keys]

    def _select_all(self, stmt: Any) -> list[tuple[Any, ...]]:
        with self.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(stmt)]

    async def aggregate(self, stmt: Any) -> list[tuple[Any, ...]]:
        """Run an aggregate statement (GROUP BY ... COUNT) built by the hub; only counts come back."""
        result: list[tuple[Any, ...]] = await self._run(self._select_all, stmt)
        return result
