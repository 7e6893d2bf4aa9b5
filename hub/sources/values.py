"""Rows from a subgraph's JSON, and the in-memory evaluator of conditions on them.

A SQL department evaluates predicates and row-scope filters in its own query, so only matching keys come back.
A subgraph department (with ``HUB_PREDICATES_IN_HUB``, or for the row scope) sends the rows, and the hub
evaluates the condition here: a prefix test in Python, anything else in a transient in-memory SQLite table
built from the same ``Table``, so the semantics are the SQL ones. Nothing is kept after the call.
"""

from __future__ import annotations

import threading
from collections import namedtuple
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

import anyio
from sqlalchemy import (
    Column,
    ColumnElement,
    Engine,
    Integer,
    MetaData,
    Select,
    Table,
    create_engine,
    insert,
    literal_column,
    select,
)
from sqlalchemy.pool import StaticPool
from sqlalchemy.sql import operators, visitors
from sqlalchemy.sql.elements import BinaryExpression, BindParameter

from hub.sources.contract import column_type, row_type_name


def value_from_json(column: Column[Any], value: Any) -> Any:
    """A JSON value as the SQL source would give it (``date``, ``Decimal``, ``int``, ``bool``, ``str``, by the
    contract's column types); ``ValueError`` if it is not of the column's type, or null in a ``NOT NULL`` column."""
    if value is None:
        if not column.nullable:
            raise ValueError(f"{column.name}: null in a non-null column")
        return None
    kind = column_type(column).python
    if kind is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{column.name}: expected a boolean")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{column.name}: expected an integer")
        return value
    if kind is Decimal:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ValueError(f"{column.name}: expected a decimal")
        try:
            return Decimal(str(value))
        except InvalidOperation:
            raise ValueError(f"{column.name}: expected a decimal") from None
    if not isinstance(value, str):
        raise ValueError(f"{column.name}: expected a string")
    if kind is date:
        return date.fromisoformat(value)
    return value


_ROW_TYPES: dict[str, Any] = {}


def row_type(table: Table) -> Any:
    """A named tuple per table: attribute access by column name, and equal to the SQL source's row tuples."""
    key = f"{id(table)}.{table.name}"
    cls = _ROW_TYPES.get(key)
    if cls is None:
        cls = _ROW_TYPES[key] = namedtuple(row_type_name(table), [c.name for c in table.columns])
    return cls


_EVALUATORS: dict[str, tuple[Engine, Table, threading.Lock]] = {}
_EVALUATORS_LOCK = threading.Lock()


def _evaluator(table: Table) -> tuple[Engine, Table, threading.Lock]:
    """A private in-memory SQLite copy of ``table``'s shape, made once per table (not per call)."""
    with _EVALUATORS_LOCK:
        return _EVALUATORS.get(table.name) or _make_evaluator(table)


def _make_evaluator(table: Table) -> tuple[Engine, Table, threading.Lock]:
    md = MetaData()
    copy = Table(
        table.name,
        md,
        Column("_hub_row", Integer, primary_key=True),
        *[Column(c.name, c.type, nullable=True) for c in table.columns],
    )
    engine = create_engine("sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False})
    md.create_all(engine)
    found = _EVALUATORS[table.name] = (engine, copy, threading.Lock())
    return found


def matching(table: Table, records: list[dict[str, Any]], condition: ColumnElement[bool]) -> set[int]:
    """Indexes of ``records`` satisfying ``condition``, evaluated by SQLite on a transient in-memory copy.

    Calls may come from several worker threads at once: one lock per table serialises them on the shared
    connection, and the rows are deleted again before the lock is released (nothing is kept, nothing mixes).
    """
    engine, copy, lock = _evaluator(table)
    with lock, engine.begin() as conn:
        try:
            if records:
                conn.execute(insert(copy), [{"_hub_row": i, **r} for i, r in enumerate(records)])
            stmt: Select[Any] = select(literal_column("_hub_row")).select_from(table).where(condition)
            return {int(r[0]) for r in conn.execute(stmt)}
        finally:
            conn.execute(copy.delete())


def prefix_test(table: Table, condition: ColumnElement[bool]) -> tuple[str, str] | None:
    """(column, prefix) when ``condition`` is ``column.startswith(prefix)`` on ``table`` (the row scope of every
    jurisdiction-bound request), which is then checked in Python; None for anything else (SQLite decides)."""
    if (
        isinstance(condition, BinaryExpression)
        and condition.operator is operators.startswith_op
        and isinstance(condition.left, Column)
        and condition.left.table is table
        and isinstance(condition.right, BindParameter)
        and isinstance(condition.right.value, str)
        and not {"%", "_", "/", "\\"} & set(condition.right.value)  # escaped LIKE characters: leave it to SQLite
    ):
        return condition.left.name, condition.right.value
    return None


async def select_matching(table: Table, records: list[dict[str, Any]], condition: ColumnElement[bool]) -> set[int]:
    """Indexes of ``records`` satisfying ``condition``: a prefix test in Python, anything else by ``matching``
    in a worker thread."""
    prefix = prefix_test(table, condition)
    if prefix is not None:
        column, start = prefix
        return {i for i, r in enumerate(records) if isinstance(r.get(column), str) and r[column].startswith(start)}
    return await anyio.to_thread.run_sync(matching, table, records, condition)


def columns_read(condition: ColumnElement[bool], table: Table) -> set[str]:
    return {el.name for el in visitors.iterate(condition) if isinstance(el, Column) and el.table is table}
