"""Test set-up for PostgreSQL departments. The server itself is ``hub.localpg.PgServer`` (shared with bench/)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import MetaData, create_engine, insert, select


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
