"""Rate limits shared by every hub process on one hub database (docs/operations.md, "Rate limits").

A token bucket per key: it holds at most ``burst`` requests, refills at ``per_minute / 60`` a second, and each
request takes one. The bucket lives in the hub database (``rate_buckets``) and is taken in one atomic statement
(``INSERT ... ON CONFLICT DO UPDATE ... RETURNING``, on SQLite and PostgreSQL alike), so two processes cannot
both spend its last request. Time is the hub's clock, so tests move it instead of sleeping.

A refused request gets 429 ``RATE_LIMITED`` with ``Retry-After`` (seconds until a request is back in the
bucket), and is audited like any refusal."""

from __future__ import annotations

import math
from typing import Any

import anyio
from sqlalchemy import Engine, case, create_engine, event, func
from sqlalchemy.dialects import postgresql, sqlite

from hub.clock import Clock, system_clock
from hub.db import rate_buckets
from hub.errors import ForbiddenError


class RateLimited(ForbiddenError):
    code = "RATE_LIMITED"
    status = 429

    def __init__(self, message: str, retry_after: float) -> None:
        self.retry_after = max(1, math.ceil(retry_after))
        super().__init__(message, details={"retryAfter": self.retry_after})


def _relaxed(engine: Engine) -> Engine:
    """The same SQLite file, on connections that commit without waiting for fsync (``synchronous=NORMAL`` in WAL
    mode: a power cut may forget the last buckets' changes, never corrupt them). A full fsync per request would
    cost about 5 ms; the audit log's connections keep ``FULL``."""
    relaxed = create_engine(engine.url, connect_args={"check_same_thread": False, "timeout": 5.0})

    @event.listens_for(relaxed, "connect")
    def _pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    return relaxed


class RateLimiter:
    def __init__(self, engine: Engine, per_minute: float, burst: int, clock: Clock = system_clock) -> None:
        self.engine, self.clock = engine, clock
        self.rate = per_minute / 60.0  # requests per second
        self.burst = max(1, burst)
        self.own_engine = self.enabled and engine.dialect.name == "sqlite"
        if self.own_engine:
            self.engine = _relaxed(engine)

    def close(self) -> None:
        if self.own_engine:
            self.engine.dispose()

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def take(self, key: str) -> float:
        """Take one request from ``key``'s bucket: 0 if there was one, else the seconds until there is."""
        now = self.clock().timestamp()
        t = rate_buckets
        pg = self.engine.dialect.name == "postgresql"
        least: Any = func.least if pg else func.min  # SQLite's scalar min/max take several arguments
        greatest: Any = func.greatest if pg else func.max
        insert_: Any = postgresql.insert if pg else sqlite.insert
        elapsed = greatest(0.0, now - t.c.updated)  # a clock set back refills nothing
        refill = least(float(self.burst), t.c.tokens + elapsed * self.rate)
        stmt = (
            insert_(t)
            .values(key=key, tokens=float(self.burst - 1), updated=now, allowed=True)
            .on_conflict_do_update(
                index_elements=[t.c.key],
                set_={
                    "tokens": case((refill >= 1.0, refill - 1.0), else_=refill),
                    "updated": greatest(t.c.updated, now),
                    "allowed": refill >= 1.0,
                },
            )
            .returning(t.c.allowed, t.c.tokens)
        )
        with self.engine.begin() as conn:
            allowed, tokens = conn.execute(stmt).one()
        return 0.0 if allowed else (1.0 - float(tokens)) / self.rate

    async def check(self, key: str, who: str) -> None:
        """``RateLimited`` if ``key``'s bucket is empty (nothing is checked when the limit is off)."""
        if not self.enabled:
            return
        wait = await anyio.to_thread.run_sync(self.take, key)
        if wait > 0:
            raise RateLimited(f"{who} is over its rate limit; retry after {math.ceil(wait)} s", wait)
