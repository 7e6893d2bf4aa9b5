"""Small SQLite batches read inline (``hub.sources.sql.Inline``): the same rows as the worker-thread path, typed
alike; a locked file read in a worker thread without stopping the event loop; a deadline that interrupts."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import exists, func, select

from hub.demo.generate import GenerateResult
from hub.departments import assistance, households, residents
from hub.errors import UpstreamUnavailable
from hub.sources import sql
from hub.sources.sql import SqlSource


def _url(root: Path, code: str) -> str:
    return f"sqlite:///{root / 'departments' / f'{code}.sqlite'}"


def _plain(found: list[list[Any]]) -> list[list[tuple[Any, ...]]]:
    return [[tuple(r) for r in rows] for rows in found]


def _ids(root: Path, n: int, table: str = "residents") -> list[str]:
    db = root / "departments" / ("civil_affairs.sqlite" if table == "assistance" else "public_security.sqlite")
    with sqlite3.connect(db) as conn:
        return [r[0] for r in conn.execute(f"SELECT id_number FROM {table} ORDER BY id_number LIMIT ?", (n,))]  # noqa: S608


async def test_inline_rows_equal_the_threaded_ones(dept_data: tuple[Path, GenerateResult]) -> None:
    root, _ = dept_data
    inline, threaded = SqlSource("public_security", _url(root, "public_security")), None
    threaded = SqlSource("public_security", _url(root, "public_security"))
    threaded.inline = None
    try:
        assert inline.inline is not None
        ids = [*_ids(root, 12), "110101190001010000", _ids(root, 1)[0]]  # one unknown, one asked twice
        scope = residents.c.area_code.startswith("3301", autoescape=True)
        for where, columns in [(None, None), (scope, ("name", "dob")), (scope, None), (None, ("household_id",))]:
            before = inline.statements
            a = await inline.rows_by(residents, "id_number", ids, where, columns)
            b = await threaded.rows_by(residents, "id_number", ids, where, columns)
            assert inline.statements == before + 1  # counted like any statement
            assert _plain(a) == _plain(b) and any(a) and not a[12]
            assert a[0][0].id_number == ids[0] and a[13][0].id_number == ids[0]
            if columns is None or "dob" in columns:
                assert isinstance(a[0][0].dob, date) and a[0][0].dob == b[0][0].dob
        # another area's scope is not served from the first one's statement: the values are this call's
        other = residents.c.area_code.startswith("9999", autoescape=True)
        assert _plain(await inline.rows_by(residents, "id_number", ids, other, ("name",))) == [[]] * len(ids)
        hh = [r[0].household_id for r in await inline.rows_by(residents, "id_number", ids[:3], None, ("household_id",))]
        assert _plain(await inline.rows_by(households, "household_id", hh, None, None)) == _plain(
            await threaded.rows_by(households, "household_id", hh, None, None)
        )
    finally:
        inline.close()
        threaded.close()


async def test_inline_predicates_and_numeric_values(dept_data: tuple[Path, GenerateResult]) -> None:
    root, _ = dept_data
    inline = SqlSource("civil_affairs", _url(root, "civil_affairs"))
    threaded = SqlSource("civil_affairs", _url(root, "civil_affairs"))
    threaded.inline = None
    try:
        ids = [*_ids(root, 10, "assistance"), "110101190001010000"]
        a = await inline.rows_by(assistance, "id_number", ids, None, ("monthly_amount", "start_date"))
        b = await threaded.rows_by(assistance, "id_number", ids, None, ("monthly_amount", "start_date"))
        assert _plain(a) == _plain(b)
        assert isinstance(a[0][0].monthly_amount, Decimal) and isinstance(a[0][0].start_date, date)
        for threshold in (Decimal("0"), Decimal("500"), Decimal("100000")):
            condition = (assistance.c.monthly_amount >= threshold) & (assistance.c.start_date <= date(2100, 1, 1))
            got = await inline.predicate(assistance, "id_number", ids, condition)
            assert got == await threaded.predicate(assistance, "id_number", ids, condition)
        assert (await inline.predicate(assistance, "id_number", ids, assistance.c.monthly_amount >= 0))[:10] == [
            True
        ] * 10
    finally:
        inline.close()
        threaded.close()


async def test_a_locked_file_is_read_in_a_thread_without_stopping_the_loop(
    dept_data: tuple[Path, GenerateResult], tmp_path: Path
) -> None:
    root, _ = dept_data
    (tmp_path / "departments").mkdir()
    shutil.copy(root / "departments" / "public_security.sqlite", tmp_path / "departments" / "public_security.sqlite")
    source = SqlSource("public_security", _url(tmp_path, "public_security"))
    ids = _ids(root, 3)
    expected = _plain(await source.rows_by(residents, "id_number", ids, None, ("name",)))
    writer = sqlite3.connect(tmp_path / "departments" / "public_security.sqlite", isolation_level=None)
    try:
        writer.execute("BEGIN EXCLUSIVE")  # a department's writer holds the file
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        beat = asyncio.create_task(ticker())
        read = asyncio.create_task(source.rows_by(residents, "id_number", ids, None, ("name",)))
        await asyncio.sleep(0.3)
        assert not read.done() and ticks >= 10  # the read waits for the lock; the event loop does not
        writer.execute("ROLLBACK")
        assert _plain(await asyncio.wait_for(read, 10)) == expected
        beat.cancel()
        assert source.breaker.state == "closed"
    finally:
        writer.close()
        source.close()


async def test_an_inline_statement_past_its_deadline_is_interrupted(dept_data: tuple[Path, GenerateResult]) -> None:
    root, _ = dept_data
    source = SqlSource("public_security", _url(root, "public_security"), timeout=0.05)
    try:
        a, b, c = residents.alias("a"), residents.alias("b"), residents.alias("c")
        slow = exists(select(func.count()).select_from(a.join(b, a.c.dob != b.c.dob).join(c, b.c.dob != c.c.dob)))
        with pytest.raises(UpstreamUnavailable, match=r"department public_security did not answer within 0.05s"):
            await asyncio.wait_for(source.predicate(residents, "id_number", _ids(root, 2), slow), 30)
        assert source.breaker.failures == 1
    finally:
        source.close()


async def test_the_hub_databases_inline_reads_equal_the_threaded_ones(tmp_path: Path) -> None:
    """The request path's reads of the hub's own database (client row, operations mode, lookup misses) inline on
    SQLite give what the ordinary reads give, across the misses window's edge (times compared as stored)."""
    from datetime import UTC, datetime, timedelta

    from hub.clock import TestClock
    from hub.db import open_hub_db
    from hub.lookups import LookupBudgetExhausted, MissLedger
    from hub.store.clients import ClientStore
    from hub.store.operations import OperationStore

    engine = open_hub_db(f"sqlite:///{tmp_path / 'hub.sqlite'}")
    clock = TestClock(datetime(2026, 3, 2, 2, 0, tzinfo=UTC))
    try:
        clients, operations = ClientStore(engine, clock, scrypt_n=2**4), OperationStore(engine, clock)
        ledger = MissLedger(engine, budget=10, window=3600, clock=clock)
        assert clients.inline is not None and operations.inline is not None and ledger.inline is not None
        clients.add("a", "civil_affairs", "3301", ["CASE", "VER"], roles=["auditor"])
        assert await clients.aget("a") == clients.get("a") and await clients.aget("nobody") is None
        assert await operations.amode("a") == "off"
        operations.set_mode("a", "require")
        assert await operations.amode("a") == operations.mode("a") == "require"
        ledger.record("a", 4)
        clock.set(datetime(2026, 3, 2, 2, 30, tzinfo=UTC))
        ledger.record("a", 5)
        ledger.record("b", 9)
        assert await ledger.before("a") == ledger.spent("a") == 9
        clock.set(datetime(2026, 3, 2, 3, 0, 1, tzinfo=UTC))  # the first miss has left the window
        assert await ledger.before("a") == ledger.spent("a") == 5
        ledger.record("a", 5)
        with pytest.raises(LookupBudgetExhausted):
            await ledger.before("a")
        clock.set(datetime(2026, 3, 2, 2, 0, tzinfo=UTC) + timedelta(days=1))  # all of them have left it
        assert await ledger.before("a") == ledger.spent("a") == 0
    finally:
        engine.dispose()


async def test_large_batches_read_with_sqlite3_in_a_thread_equal_sqlalchemys(
    dept_data: tuple[Path, GenerateResult], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Above ``INLINE_MAX_KEYS`` keys, a worker thread reads with ``sqlite3`` (``Inline``'s statements, one per
    ``CHUNK`` keys): the same rows, types, order and statement count as SQLAlchemy's read; every thread's
    connection closed with the source; a file locked by a writer read by SQLAlchemy, which waits for the lock."""
    monkeypatch.setattr(sql, "CHUNK", 70)  # three IN lists for 150 keys
    root, _ = dept_data
    raw, threaded = (SqlSource("civil_affairs", _url(root, "civil_affairs")) for _ in range(2))
    threaded.inline = None
    try:
        ids = [*_ids(root, 140, "assistance"), *_ids(root, 9), "110101190001010000"]
        ids += ids[:5]  # asked twice
        assert len(set(ids)) > sql.INLINE_MAX_KEYS
        for columns in [("monthly_amount", "start_date"), None]:
            before, before_threaded = raw.statements, threaded.statements
            a = await raw.rows_by(assistance, "id_number", ids, None, columns)
            b = await threaded.rows_by(assistance, "id_number", ids, None, columns)
            assert raw.statements - before == threaded.statements - before_threaded == 3
            assert _plain(a) == _plain(b) and sum(map(bool, a)) >= 140 and not a[149]
            assert isinstance(a[0][0].monthly_amount, Decimal) and isinstance(a[0][0].start_date, date)
            assert type(a[0][0]) is not type(b[0][0])  # a named tuple, not SQLAlchemy's Row
        condition = assistance.c.monthly_amount >= Decimal("500")
        got = await raw.predicate(assistance, "id_number", ids, condition)
        assert got == await threaded.predicate(assistance, "id_number", ids, condition) and any(got) and not all(got)
        assert raw.inline is not None and raw.inline._opened  # the worker threads' connections
        opened = list(raw.inline._opened)
    finally:
        raw.close()
        threaded.close()
    for conn in opened:
        with pytest.raises(sqlite3.ProgrammingError, match="closed"):
            conn.execute("SELECT 1")

    (tmp_path / "departments").mkdir()
    shutil.copy(root / "departments" / "public_security.sqlite", tmp_path / "departments" / "public_security.sqlite")
    source = SqlSource("public_security", _url(tmp_path, "public_security"))
    ids = _ids(root, 100)
    expected = _plain(await source.rows_by(residents, "id_number", ids, None, ("name",)))
    writer = sqlite3.connect(tmp_path / "departments" / "public_security.sqlite", isolation_level=None)
    try:
        writer.execute("BEGIN EXCLUSIVE")
        read = asyncio.create_task(source.rows_by(residents, "id_number", ids, None, ("name",)))
        await asyncio.sleep(0.3)
        assert not read.done()  # SQLAlchemy's connection waits for the lock (sqlite3's inline one would not)
        writer.execute("ROLLBACK")
        assert _plain(await asyncio.wait_for(read, 10)) == expected
        assert source.breaker.state == "closed"
    finally:
        writer.close()
        source.close()
