"""``SqlSource``: a department database reached through a read-only SQLAlchemy engine.

Only bound parameters are used; every call is one statement for a whole batch of keys,
so a request issues O(departments x levels) statements, never one per resident.

A small batch (at most ``INLINE_MAX_KEYS`` keys) from a SQLite file is read inline, on the event loop, with
``sqlite3`` and a statement compiled once per shape (``Inline``): reading a few rows of a local file takes tens of
microseconds, handing it to a worker thread and back costs several times that, and SQLAlchemy's Python layer
about as much again (issue 16). The answers are the same rows (a named tuple per row, the column types' own result
processing applied). A file that is locked by a writer is read in a worker thread as before (the inline
connection never waits for a lock), and a deadline (the source's timeout) interrupts an inline statement. Large
batches are read in a worker thread with the same ``sqlite3`` statements (``IN`` lists of at most ``CHUNK`` keys, as
SQLAlchemy's): a batch of thousands of residents spent most of its loading in SQLAlchemy's row objects and
parameter expansion (issue 16). A file locked by a writer, aggregates and PostgreSQL departments keep SQLAlchemy.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections import defaultdict, namedtuple
from collections.abc import Callable, Sequence
from typing import Any

import anyio
from sqlalchemy import ColumnElement, Engine, Row, Table, create_engine, event, select
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.sql.compiler import SQLCompiler

from hub.upstream.breaker import CircuitBreaker
from hub.upstream.guard import guarded, outcome

log = logging.getLogger("hub.sources")

CHUNK = 5000  # keys per IN (...) list; under SQLite's (32,766) and PostgreSQL's (65,535) parameter limits
INLINE_MAX_KEYS = 64  # a batch this small from a SQLite file is read on the event loop (``Inline``)
MAX_SHAPES = 4096  # statements kept per source (the shapes are the code's, times the batch sizes up to 64)
_DIALECT = sqlite.dialect(paramstyle="qmark")


class Busy(Exception):
    """The file is locked by a writer: read it in a worker thread instead (which waits, as it always did)."""


class Inline:
    """Reads of a few rows from a SQLite department file, on the calling thread, without SQLAlchemy's execution
    layer: the statement text for each shape (table, key, columns, condition's structure, number of keys) is
    compiled once by SQLAlchemy's SQLite compiler and kept; the condition's values are taken from the condition
    itself each time (its cache key), so a cached statement never carries another request's values."""

    def __init__(self, path: str, engine: Engine | None, *, readonly: bool = True) -> None:
        self.path = path
        self.mode = "?mode=ro" if readonly else ""
        # the engine's cursor events fire for inline statements too (the statement counter, tests' observers);
        # the connection and execution context they are given are None
        self.events = engine.dispatch if engine is not None else None
        self._local = threading.local()  # one connection per thread (sqlite3 connections stay on their thread)
        self._opened: list[sqlite3.Connection] = []  # every thread's, for ``close``
        self._statements: dict[Any, tuple[str, str, Callable[[list[Any]], list[Any]]]] = {}
        self._conditions: dict[Any, SQLCompiler] = {}
        # by the condition object itself (kept alive here, so its id is not reused): a condition kept across
        # requests (hub.schema.people) gives the same shape, text and values every time
        self._bound: dict[int, tuple[ColumnElement[bool], tuple[Any, str, list[Any]]]] = {}

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            # timeout=0: never wait for a writer's lock on the event loop (Busy sends the read to a thread)
            # (check_same_thread off only so that ``close`` can close a worker thread's; each is used by its own)
            conn = sqlite3.connect(
                f"file:{self.path}{self.mode}", uri=True, timeout=0, isolation_level=None, check_same_thread=False
            )
            self._local.conn = conn
            self._opened.append(conn)
        return conn

    def close(self) -> None:
        opened, self._opened = self._opened, []
        for conn in opened:
            conn.close()
        self._local = threading.local()

    def _condition(self, where: ColumnElement[bool] | None) -> tuple[Any, str, list[Any]]:
        """The condition's shape (its SQLAlchemy cache key without values), its SQL and its values."""
        if where is None:
            return None, "", []
        bound = self._bound.get(id(where))
        if bound is not None and bound[0] is where:
            return bound[1]
        key = where._generate_cache_key()
        if key is None:  # a condition SQLAlchemy cannot cache: read it the ordinary way
            raise Busy
        found = self._conditions.get(key.key)
        if found is None:
            if len(self._conditions) >= MAX_SHAPES:
                self._conditions.clear()
            found = self._conditions[key.key] = where.compile(dialect=_DIALECT, cache_key=key)
        values = found.construct_params(extracted_parameters=key.bindparams, _check=False)
        processors = found._bind_processors
        result = key.key, found.string, [_bind(processors, n, values[n]) for n in found.positiontup or ()]
        if len(self._bound) >= MAX_SHAPES:
            self._bound.clear()
        self._bound[id(where)] = (where, result)
        return result

    def _statement(
        self, table: Table, key: str, columns: Sequence[str] | None, where: Any, where_sql: str, n: int, distinct: bool
    ) -> tuple[str, Callable[[list[Any]], list[Any]]]:
        """(SQL for ``n`` keys, the function making its rows); the text around the ``IN`` list is kept per shape."""
        shape = (table, key, None if columns is None else tuple(columns), where, distinct)
        found = self._statements.get(shape)
        if found is None:
            if len(self._statements) >= MAX_SHAPES:
                self._statements.clear()
            col = table.c[key]
            cols = (
                [col]
                if distinct
                else list(table.c)
                if columns is None
                else [col, *(table.c[c] for c in columns if c != key)]
            )
            quote = _DIALECT.identifier_preparer.quote
            names = ", ".join(quote(c.name) for c in cols)
            head = f"SELECT {'DISTINCT ' if distinct else ''}{names} FROM {quote(table.name)} "
            head += f"WHERE {quote(col.name)} IN ("
            tail = f") AND ({where_sql})" if where_sql else ")"
            row = namedtuple("Row", [c.name for c in cols], rename=True)  # type: ignore[misc]
            processors: list[Any] = [c.type._cached_result_processor(_DIALECT, None) for c in cols]
            found = self._statements[shape] = (head, tail, _row_builder(row, processors))
        head, tail, build = found
        return head + ", ".join("?" * n) + tail, build

    def rows(
        self,
        table: Table,
        key: str,
        keys: Sequence[str],
        where: ColumnElement[bool] | None,
        columns: Sequence[str] | None,
        deadline: float,
        distinct: bool = False,
    ) -> list[Any]:
        shape, where_sql, values = self._condition(where)
        sql, build = self._statement(table, key, columns, shape, where_sql, len(keys), distinct)
        return build(self.query(sql, (*keys, *values), deadline))

    def query(self, sql: str, params: Sequence[Any], deadline: float) -> list[Any]:
        """``sql`` (a read) with ``params``, as plain tuples; ``Busy`` or ``TimeoutError`` as ``rows``."""
        conn = self._conn()
        cursor = conn.cursor()
        conn.set_progress_handler(lambda: time.monotonic() > deadline, 1000)
        try:
            if self.events is not None:
                self.events.before_cursor_execute(None, cursor, sql, params, None, False)
            cursor.execute(sql, params)
            found = cursor.fetchall()
            if self.events is not None:
                self.events.after_cursor_execute(None, cursor, sql, params, None, False)
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise Busy from None
            if "interrupted" in str(exc):
                raise TimeoutError from None
            raise
        finally:
            conn.set_progress_handler(None, 0)
        return found


def _row_builder(row: type, processors: list[Any]) -> Callable[[list[Any]], list[Any]]:
    """A function making ``row`` named tuples of plain ones, each column through its type's result processor (if
    any): generated per statement shape, as a batch of thousands of rows spent as long building them as reading."""
    values = ", ".join(f"p{i}(r[{i}])" if f is not None else f"r[{i}]" for i, f in enumerate(processors))
    ns: dict[str, Any] = {"new": tuple.__new__, "row": row}
    ns.update((f"p{i}", f) for i, f in enumerate(processors) if f is not None)
    body = "[new(row, r) for r in found]" if not any(processors) else f"[new(row, ({values},)) for r in found]"
    exec(f"def build(found):\n    return {body}", ns)  # noqa: S102 (made from column positions, never from a request)
    made: Callable[[list[Any]], list[Any]] = ns["build"]
    return made


def hub_inline(engine: Engine) -> Inline | None:
    """Inline reads of the hub's own database, when it is a SQLite file (None otherwise: PostgreSQL is read in
    worker threads). For the request path's small reads by primary key (the client's row, its operations mode,
    its lookup misses); the connection never waits for a lock (``Busy``) and never writes."""
    database = engine.url.database
    if engine.dialect.name == "sqlite" and database and database != ":memory:":
        return Inline(database, None, readonly=False)
    return None


def try_inline(
    inline: Inline | None,
    table: Table,
    key: str,
    value: str,
    columns: Sequence[str] | None,
    where: ColumnElement[bool] | None = None,
) -> list[Any] | None:
    """The rows of ``table`` whose ``key`` is ``value``, read inline; None when they must be read the ordinary way
    (no inline reader, the file busy, or anything unusual: the ordinary read then says what is wrong)."""
    if inline is None:
        return None
    try:
        return inline.rows(table, key, [value], where, columns, time.monotonic() + 1.0)
    except (Busy, TimeoutError, sqlite3.Error):
        return None


def try_query(inline: Inline | None, sql: str, params: Sequence[Any]) -> list[Any] | None:
    """``Inline.query`` for the hub's database, or None as ``try_inline``."""
    if inline is None:
        return None
    try:
        return inline.query(sql, params, time.monotonic() + 1.0)
    except (Busy, TimeoutError, sqlite3.Error):
        return None


def bind_value(column: Any, value: Any) -> Any:
    """``value`` as SQLAlchemy's SQLite dialect sends it for ``column`` (e.g. a datetime as its text form)."""
    fn = column.type._cached_bind_processor(_DIALECT)
    return value if fn is None else fn(value)


def _bind(processors: Any, name: str, value: Any) -> Any:
    fn = processors.get(name)
    return value if fn is None else fn(value)


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
        u = make_url(url)
        # small batches read inline (see the module's docstring); off when the engine is traced (hub/tracing.py):
        # the spans come from SQLAlchemy's events
        self.inline: Inline | None = None
        if u.get_backend_name() == "sqlite" and u.database and u.database != ":memory:":
            self.inline = Inline(u.database, self.engine)

        @event.listens_for(self.engine, "before_cursor_execute")
        def _count(*_: Any) -> None:
            self.statements += 1

    def close(self) -> None:
        if self.inline is not None:
            self.inline.close()
        self.engine.dispose()

    async def _run(self, fn: Any, *args: Any) -> Any:
        # any database error counts; only its class is logged (its text can hold the statement's parameters)
        async with guarded(self.breaker, self.timeout, f"department {self.code}", detail=False):
            return await anyio.to_thread.run_sync(fn, *args, abandon_on_cancel=True)

    def _inline(self, keys: Sequence[str], read: Callable[[Inline, float], Any]) -> Any:
        """``read`` on the event loop when the batch is small, the file local and the breaker closed; ``Busy``
        when it must go to a worker thread instead. The breaker and the metrics see it as ``guarded`` would."""
        inline = self.inline
        if inline is None or len(keys) > INLINE_MAX_KEYS or self.breaker.state != "closed":
            raise Busy
        started = time.perf_counter()
        with outcome(self.breaker, self.timeout, f"department {self.code}", started, detail=False, passes=(Busy,)):
            return read(inline, time.monotonic() + self.timeout)

    def _raw_rows(
        self,
        table: Table,
        key: str,
        keys: Sequence[str],
        where: ColumnElement[bool] | None,
        columns: Sequence[str] | None,
        distinct: bool = False,
    ) -> list[Any] | None:
        """In a worker thread: the rows of a large batch read with ``sqlite3`` (``Inline``'s statements, one per
        ``CHUNK`` keys, as SQLAlchemy sends them); None when SQLAlchemy must read them (no SQLite file, traced, or
        the file locked by a writer: SQLAlchemy's connection waits for the lock)."""
        inline = self.inline
        if inline is None:
            return None
        deadline = time.monotonic() + self.timeout
        found: list[Any] = []
        try:
            for i in range(0, len(keys), CHUNK):
                found += inline.rows(table, key, keys[i : i + CHUNK], where, columns, deadline, distinct)
        except Busy:
            return None
        return found

    def _select_rows(
        self,
        table: Table,
        key: str,
        keys: Sequence[str],
        where: ColumnElement[bool] | None,
        columns: Sequence[str] | None,
    ) -> defaultdict[str, list[Row[Any]]]:
        out: defaultdict[str, list[Row[Any]]] = defaultdict(list)
        raw = self._raw_rows(table, key, keys, where, columns)
        if raw is not None:
            at = 0 if columns is not None else list(table.c).index(table.c[key])  # where the key column is
            for row in raw:
                out[row[at]].append(row)
            return out
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
        unique = list(dict.fromkeys(keys))
        try:
            rows = self._inline(
                unique, lambda inline, deadline: inline.rows(table, key, unique, where, columns, deadline)
            )
        except Busy:
            found = await self._run(self._select_rows, table, key, unique, where, columns)
        else:
            found = defaultdict(list)
            at = 0 if columns is not None else list(table.c).index(table.c[key])  # where the key column is
            for row in rows:
                found[row[at]].append(row)
        return list(map(found.__getitem__, keys))  # (a key with no rows gets an empty list of its own)

    def _select_predicate(
        self, table: Table, key: str, keys: Sequence[str], condition: ColumnElement[bool]
    ) -> set[str]:
        raw = self._raw_rows(table, key, keys, condition, None, True)
        if raw is not None:
            return {r[0] for r in raw}
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
        unique = list(dict.fromkeys(keys))
        try:
            rows = self._inline(
                unique, lambda inline, deadline: inline.rows(table, key, unique, condition, None, deadline, True)
            )
        except Busy:
            hits = await self._run(self._select_predicate, table, key, unique, condition)
        else:
            hits = {r[0] for r in rows}
        return [k in hits for k in keys]

    def _select_all(self, stmt: Any) -> list[tuple[Any, ...]]:
        with self.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(stmt)]

    async def aggregate(self, stmt: Any) -> list[tuple[Any, ...]]:
        """Run an aggregate statement (GROUP BY ... COUNT) built by the hub; only counts come back."""
        result: list[tuple[Any, ...]] = await self._run(self._select_all, stmt)
        return result
