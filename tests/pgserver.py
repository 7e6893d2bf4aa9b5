"""Test set-up for PostgreSQL: new servers, and department data copied into them. The server itself is
``hub.localpg.PgServer`` (shared with bench/)."""

from __future__ import annotations

import atexit
from pathlib import Path

from sqlalchemy import MetaData, create_engine, insert, select

from hub.localpg import PgServer

_template: PgServer | None = None


def new_server() -> PgServer:
    """A new PostgreSQL server of its own, started. Its cluster is a copy of one made by ``initdb`` once per test
    process (initdb was most of a server's start-up, and the suite starts several)."""
    global _template
    if _template is None:
        _template = PgServer(prefix="hub-pg-template-").initdb()
        atexit.register(_template.cleanup)
    return PgServer().init(template=_template.data)


def copy_department(sqlite_file: Path, metadata: MetaData, url: str) -> int:
    """Copy one department's synthetic SQLite database into PostgreSQL (test set-up only)."""
    src = create_engine(f"sqlite:///{sqlite_file}")
    dst = create_engine(url)
    metadata.create_all(dst)
    copied = 0
    with src.connect() as s, dst.begin() as d:
        for table in metadata.sorted_tables:
            rows = [dict(r._mapping) for r in s.execute(select(table))]
            if rows:
                d.execute(insert(table), rows)
            copied += len(rows)
    src.dispose()
    dst.dispose()
    return copied
