"""``hub audit verify`` reads the live store through the driver's own cursor (sqlite3, or psycopg's server-side
cursor on PostgreSQL): the same verdicts on both databases, across more than one page of rows."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from hub.audit import store, verify_store
from hub.audit.store import open_audit_log, open_audit_store
from hub.settings import Settings
from tests.audit.test_verify import POLICIES, T0, body, subjects

N = verify_store.PAGE + 700  # more than one page of rows (fetchmany) and of audit_subjects rows


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    root = tmp_path_factory.mktemp(f"verify-{request.param}")
    if request.param == "sqlite":
        settings = Settings(data_dir=root, policy_dir=POLICIES)
        yield from _filled(settings)
        return
    from tests.pgserver import new_server

    server = new_server()
    try:
        yield from _filled(Settings(data_dir=root, policy_dir=POLICIES, database_url=server.create_db("hub")))
    finally:
        server.cleanup()


def _filled(settings: Settings) -> Iterator[Settings]:
    log = open_audit_log(settings)
    for start in range(0, N, 500):
        log.write([(body(i), subjects(i)) for i in range(start, min(N, start + 500))])
        if start == 1000:
            log.sign_head(now=T0)
    log.sign_head(now=T0 + timedelta(hours=1))
    log.engine.dispose()
    yield settings


def _verify(settings: Settings) -> tuple[bool, int | None, str, int, int]:
    with open_audit_store(settings) as opened:
        r = store.verify_store(opened)
    return r.ok, r.first_bad_seq, r.problem, r.entries_checked, r.heads_checked


def _tampered(settings: Settings, do: str, undo: str) -> tuple[bool, int | None, str, int, int]:
    with open_audit_store(settings) as opened:
        with opened.engine.begin() as conn:
            conn.execute(text(do))
        try:
            return _verify(settings)
        finally:
            with opened.engine.begin() as conn:
                conn.execute(text(undo))


def test_the_log_verifies(database: Settings) -> None:
    assert _verify(database) == (True, None, "", N, 2)


def test_an_index_column_changed_in_the_second_page(database: Settings) -> None:
    seq = verify_store.PAGE + 300
    was = f"officer-{seq % 7}"
    got = _tampered(
        database,
        f"UPDATE audit_entries SET officer = 'officer-x' WHERE seq = {seq}",
        f"UPDATE audit_entries SET officer = '{was}' WHERE seq = {seq}",
    )
    assert got[:3] == (False, seq, f"entry {seq}: the officer column differs from the signed entry (index tampered)")
    assert _verify(database)[0]


def test_an_entry_modified(database: Settings) -> None:
    got = _tampered(
        database,
        "UPDATE audit_entries SET entry = replace(entry, 'CASE-17\"', 'CASE-18\"') WHERE seq = 17",
        "UPDATE audit_entries SET entry = replace(entry, 'CASE-18\"', 'CASE-17\"') WHERE seq = 17",
    )
    assert got[:3] == (False, 17, "entry 17: content does not match its leaf hash (modified)")


def test_a_subject_row_deleted_and_one_left_over(database: Settings) -> None:
    seq = N - 5
    s = subjects(seq)[0]
    got = _tampered(
        database,
        f"DELETE FROM audit_subjects WHERE seq = {seq}",
        f"INSERT INTO audit_subjects (seq, subject) VALUES ({seq}, '{s}')",
    )
    assert got[:3] == (
        False,
        seq,
        f"entry {seq}: its audit_subjects rows differ from the subjects in the signed entry (index tampered)",
    )
    got = _tampered(
        database,
        f"INSERT INTO audit_subjects (seq, subject) VALUES ({N}, '{s}')",
        f"DELETE FROM audit_subjects WHERE seq = {N}",
    )
    assert got[:3] == (
        False,
        N,
        f"entry {N}: audit_subjects has rows for it but the entry is not there (index tampered)",
    )
    assert _verify(database)[0]


def test_the_cli_reads_only_what_verifying_needs(tmp_path: Path) -> None:
    """`hub audit verify` does not import the app's web parts (the console, the gateway, strawberry, graphql):
    they were most of its memory (bench/README.md, "audit verify")."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from hub.cli import main\n"
        "main(['--data-dir', sys.argv[1], 'audit', 'verify'])\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'strawberry', 'graphql', 'starlette', 'jinja2', "
        "'authlib'}), sorted(m for m in sys.modules if m in ('hub.console.web', 'hub.gateway', 'hub.app')))\n"
    )
    log = open_audit_log(Settings(data_dir=tmp_path, policy_dir=POLICIES))
    log.write([(body(0), subjects(0))])
    log.sign_head(now=T0)
    log.engine.dispose()
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    verdict, imported = out.stdout.splitlines()[-2:]
    assert verdict.startswith("OK: audit log: 1 entry (seq 0–0), 1 signed tree head, "), out.stdout
    assert imported == "[] []"
