"""Audit: durable append throughput, verification time at 100,000 and 1,000,000 entries, inclusion proofs.

Append (``hub.audit.log.AuditLog``, the hub's only writer), on SQLite (WAL, ``synchronous=FULL``) and, when
its binaries are present, PostgreSQL (``fsync=on``, ``synchronous_commit=on``); every entry counted is
committed durably before it is counted:

* ``write`` of 1 entry per transaction, back to back;
* ``write`` of 100 entries per transaction;
* ``append`` from 64 concurrent asyncio tasks (64 requests in flight), which the log group-commits: this is
  the path every hub request takes, and the one the ≥ 2,000 entries/s target is about.

Verify: the log is filled to 100,000 (and 1,000,000 unless ``--quick``; ``--sizes 10000000`` for 10^7)
realistic entries, a tree head is signed, then the whole log is verified: ``hub audit verify`` when the CLI has
it; otherwise the bench's own full check (every leaf hash recomputed from its entry, the ``prev`` chain and
gap-free ``seq``, the Merkle root rebuilt and compared with the signed head, the Ed25519 signature checked).
The log is filled by :func:`fill_direct` (the writer's rows, written with ``sqlite3`` in large transactions;
``--fill writer`` uses the hub's writer, ~10x slower). Reported per size: the wall time of the whole command,
the verify proper (its own time, from its summary line: start-up and imports excluded) as entries/s, the
verifying process's CPU time and its own peak RSS (VmHWM; ru_maxrss would include the bench's own peak).

Inclusion proof: for random entries, the RFC 9162 path from the in-memory tree plus its verification (warm),
and the first proof of a fresh process, which must first load every leaf hash (cold).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import shutil
import subprocess
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import PYTHON, REPO, RESULTS, hub_env, log, median, postgres, write_result

FIELDS = [
    "CivilAffairsRecord.isRecipient",
    "CivilAffairsRecord.monthlyAmount",
    "CivilAffairsRecord.tier",
    "DisabilityRecord.category",
    "DisabilityRecord.grade",
    "DisabilityRecord.hasCertificate",
    "EducationRecord.isFullTimeStudent",
    "EmploymentRecord.pensionMonthlyBand",
    "Household.address",
    "Household.householdId",
    "Household.size",
    "MedicalRecord.hasChronicDisease",
    "MedicalRecord.outOfPocket12mBand",
    "Person.birthDate",
    "Person.idNumber",
    "Person.name",
    "Person.sex",
    "TaxRecord.incomeBand",
]


def body(i: int) -> dict[str, Any]:
    """An entry body shaped like the gateway's (``hub.gateway.audit_body``) for the overhead query."""
    return {
        "v": 1,
        "request_id": uuid.uuid4().hex,
        "client_id": "linping-ca",
        "department": "civil_affairs",
        "area": "330113",
        "token_id": "5f0c2d6e9b1a4c7d8e3f2a1b0c9d8e7f",
        "officer": f"officer-{i % 40:02d}",
        "purpose": "CASE",
        "case_ref": f"CASE-2026-{i % 5000:04d}",
        "operation_name": "Overhead",
        "operation_sha256": "9f2c" * 16,
        "fields": [{"coordinate": c, "form": "raw"} for c in FIELDS],
        "requested_denied": [],
        "subject_count": 1,
        "out_of_area": 0,
        "decision": "allow",
        "reasons": [],
        "status": 200,
        "upstream_failures": [],
        "result_sha256": "3b7e" * 16,
        "latency_ms": 12.345,
    }


def open_log(data_dir: Path, database_url: str = "") -> Any:
    from hub.audit.store import open_audit_log
    from hub.settings import Settings

    return open_audit_log(Settings(data_dir=data_dir, database_url=database_url))


def records(audit: Any, start: int, n: int) -> list[tuple[dict[str, Any], list[str]]]:
    return [(body(i), [audit.pseudonym(f"33011319{i:010d}")]) for i in range(start, start + n)]


def bench_append(audit: Any, quick: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    n1 = 50 if quick else 300
    recs = records(audit, 0, n1)
    t0 = time.perf_counter()
    for r in recs:
        audit.write([r])
    out["write_batch1_eps"] = round(n1 / (time.perf_counter() - t0), 1)

    batches = 5 if quick else 30
    recs = records(audit, 0, 100 * batches)
    t0 = time.perf_counter()
    for k in range(batches):
        audit.write(recs[k * 100 : (k + 1) * 100])
    out["write_batch100_eps"] = round(100 * batches / (time.perf_counter() - t0), 1)

    tasks, seconds = 64, (2.0 if quick else 6.0)
    pool = records(audit, 0, 500)

    async def concurrent() -> tuple[int, float, list[float]]:
        done = 0
        waits: list[float] = []
        stop = time.perf_counter() + seconds

        async def worker(k: int) -> None:
            nonlocal done
            i = k
            while time.perf_counter() < stop:
                b, s = pool[i % len(pool)]
                t = time.perf_counter()
                await audit.append(dict(b, request_id=uuid.uuid4().hex), s)
                waits.append(time.perf_counter() - t)
                done += 1
                i += tasks

        t0 = time.perf_counter()
        await asyncio.gather(*(worker(k) for k in range(tasks)))
        return done, time.perf_counter() - t0, waits

    done, elapsed, waits = asyncio.run(concurrent())
    waits.sort()
    out["append_concurrent_tasks"] = tasks
    out["append_concurrent_eps"] = round(done / elapsed, 1)
    out["append_concurrent_p50_ms"] = round(waits[len(waits) // 2] * 1000, 2)
    out["append_concurrent_p99_ms"] = round(waits[int(len(waits) * 0.99)] * 1000, 2)
    return out


def fill(audit: Any, target: int) -> float:
    """Append realistic entries until the log holds ``target``; returns the seconds spent."""
    size = audit.size()
    t0 = time.perf_counter()
    step = 5000
    while size < target:
        n = min(step, target - size)
        audit.write(records(audit, size, n))
        size += n
    return time.perf_counter() - t0


def fill_direct(audit: Any, data_dir: Path, target: int, *, sign: bool = True) -> float:
    """Fill a SQLite log to ``target`` entries fast, for the verify benchmark at 10^6 and 10^7 entries.

    The same rows the writer makes (``AuditLog._write_once``: the body of :func:`body`, ``seq``/``prev``/``at``/
    ``subjects`` added, the canonical text, its leaf hash, the index columns and ``audit_subjects``), written
    with ``sqlite3`` directly in large transactions without fsync (``synchronous=OFF``: a benchmark's data,
    not the hub's), and the Merkle root kept as a compact range instead of the writer's in-memory tree (which
    holds every leaf: 10^7 leaves would not fit in the bench's memory). A head over the whole log is signed at
    the end. Entries' ``at`` are a fixed instant plus one millisecond per entry (deterministic, fast)."""
    import sqlite3
    from datetime import timedelta

    import orjson

    from hub.audit.entry import GENESIS, canonical, entry_leaf
    from hub.audit.head import SignedHead
    from hub.audit.merkle import CompactRange
    from hub.db import tree_heads

    t0 = time.perf_counter()
    con = sqlite3.connect(data_dir / "hub.sqlite", isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=OFF")
    con.execute("PRAGMA cache_size=-262144")  # 256 MiB for the filler (the verifier keeps SQLite's default)
    # the secondary indexes are dropped while filling and made again after (one sort each instead of random inserts)
    indexes = con.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
        "AND tbl_name IN ('audit_entries', 'audit_subjects')"
    ).fetchall()
    for name, _ in indexes:
        con.execute(f'DROP INDEX "{name}"')
    rng = CompactRange()
    prev = GENESIS
    for (leaf,) in con.execute("SELECT leaf_hash FROM audit_entries ORDER BY seq"):
        rng.append(bytes(leaf))
        prev = bytes(leaf).hex()
    seq = rng.size
    start = datetime(2026, 12, 1, tzinfo=UTC)
    sql_e = (
        "INSERT INTO audit_entries (seq, request_id, at, client_id, department, officer, purpose, case_ref, "
        "decision, entry, leaf_hash) VALUES (?,?,?,?,?,?,?,?,?,?,?)"
    )
    sql_s = "INSERT INTO audit_subjects (seq, subject) VALUES (?,?)"
    step = 50_000
    while seq < target:
        rows, subj = [], []
        for i in range(seq, min(seq + step, target)):
            b = body(i)
            s = audit.pseudonym(f"33011319{i:010d}")
            at = start + timedelta(milliseconds=i)
            e = dict(b, seq=i, prev=prev, at=at.isoformat(timespec="milliseconds"), subjects=[s])
            text = orjson.dumps(e, option=orjson.OPT_SORT_KEYS).decode("utf-8")  # the same bytes here (checked):
            if i < 1000 and text != canonical(e).decode("utf-8"):  # ASCII strings, ints and one float
                raise AssertionError(f"orjson's text of entry {i} is not the canonical one")
            leaf = entry_leaf(text)
            rows.append(
                (
                    i,
                    b["request_id"],
                    at.strftime("%Y-%m-%d %H:%M:%S.%f"),
                    b["client_id"],
                    b["department"],
                    b["officer"],
                    b["purpose"],
                    b["case_ref"],
                    b["decision"],
                    text,
                    leaf,
                )
            )
            subj.append((i, s))
            rng.append(leaf)
            prev = leaf.hex()
        con.execute("BEGIN")
        con.executemany(sql_e, rows)
        con.executemany(sql_s, subj)
        con.execute("COMMIT")
        seq += len(rows)
    for _, sql in indexes:
        con.execute(sql)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    if sign and rng.size:
        head = SignedHead.sign(rng.size, rng.root(), datetime.now(UTC), audit.key_id, audit.signing_key)
        with audit.engine.begin() as conn:
            conn.execute(
                tree_heads.insert().values(
                    tree_size=head.tree_size,
                    root_hash=head.root_hash,
                    signed_at=head.signed_at,
                    key_id=head.key_id,
                    signature=head.signature,
                )
            )
    return time.perf_counter() - t0


def hub_cli_has_verify() -> bool:
    out = subprocess.run([PYTHON, "-m", "hub", "audit", "--help"], capture_output=True, text=True, timeout=60, cwd=REPO)
    return "verify" in out.stdout


# `python -m hub audit verify` in a process that reports its own peak RSS and CPU time on stderr at exit. The peak
# is the kernel's high-water mark of this process's own memory (VmHWM in /proc/self/status): not ru_maxrss, which
# after a vfork/exec (how subprocess starts a child) starts from the *parent's* peak, so that a bench process
# that had filled a large log reported its own size as the verifier's (the 277 MiB of the 2026-12-02 run).
_VERIFY_WITH_RSS = (
    "import resource, runpy, sys\n"
    "sys.argv = ['hub', 'audit', 'verify']\n"
    "try:\n"
    "    runpy.run_module('hub', run_name='__main__', alter_sys=True)\n"
    "finally:\n"
    "    hwm = [line.split()[1] for line in open('/proc/self/status') if line.startswith('VmHWM:')]\n"
    "    ru = resource.getrusage(resource.RUSAGE_SELF)\n"
    "    print('vmhwm_kib', hwm[0] if hwm else -1, file=sys.stderr)\n"
    "    print('maxrss_kib', ru.ru_maxrss, file=sys.stderr)\n"
    "    print('cpu_s', ru.ru_utime + ru.ru_stime, file=sys.stderr)\n"
)


def child_figures(stderr: str) -> dict[str, float]:
    """vmhwm_kib, maxrss_kib and cpu_s as the verifying child printed them."""
    out: dict[str, float] = {}
    for line in stderr.splitlines():
        key, _, value = line.partition(" ")
        if key in ("vmhwm_kib", "maxrss_kib", "cpu_s"):
            out[key] = float(value)
    return out


def peak_rss_mib(stderr: str) -> float | None:
    kib = child_figures(stderr).get("vmhwm_kib", -1)
    return round(kib / 1024, 1) if kib > 0 else None


def verify_seconds(line: str) -> float | None:
    """The verify's own time, from its summary (``OK: audit log: ..., 12.34 s``): start-up and imports excluded."""
    m = re.search(r", ([0-9.]+) s(;|$)", line)
    return float(m.group(1)) if m else None


def verify_with_cli(data_dir: Path) -> tuple[float, str]:
    t0 = time.perf_counter()
    out = subprocess.run(
        [PYTHON, "-c", _VERIFY_WITH_RSS],
        capture_output=True,
        text=True,
        timeout=3600,
        cwd=REPO,
        env=hub_env(data_dir),
    )
    elapsed = time.perf_counter() - t0
    if out.returncode != 0:
        raise RuntimeError(f"hub audit verify failed ({out.returncode}): {out.stdout[-800:]} {out.stderr[-800:]}")
    figures = child_figures(out.stderr)
    VERIFY_RSS[str(data_dir)] = peak_rss_mib(out.stderr)
    VERIFY_CPU[str(data_dir)] = figures.get("cpu_s")
    maxrss = figures.get("maxrss_kib")
    VERIFY_MAXRSS[str(data_dir)] = round(maxrss / 1024, 1) if maxrss else None
    return elapsed, (out.stdout.strip().splitlines() or [""])[-1]


PROOF_MAX = 1_000_000  # inclusion proofs are timed up to this size

VERIFY_RSS: dict[str, float | None] = {}  # the last verify's peak RSS (MiB, its own VmHWM) per data directory
VERIFY_MAXRSS: dict[str, float | None] = {}  # ... and its ru_maxrss (which includes the bench's own peak)
VERIFY_CPU: dict[str, float | None] = {}  # ... and its CPU time (user + system, start-up included)


def verify_in_bench(audit: Any, public_pem: bytes) -> tuple[float, str]:
    """The full check ``hub audit verify`` is meant to make, for when the CLI does not have it yet."""
    from cryptography.hazmat.primitives.serialization import load_pem_public_key
    from sqlalchemy import select

    from hub.audit.entry import GENESIS, entry_leaf, head_message
    from hub.audit.merkle import MerkleTree
    from hub.db import audit_entries

    t0 = time.perf_counter()
    heads = audit.heads()
    if not heads:
        raise RuntimeError("no signed tree head to verify against")
    head = heads[-1]
    tree = MerkleTree()
    leaves: list[bytes] = []
    prev, expected = GENESIS, 0
    with audit.engine.connect() as conn:
        rows = conn.execution_options(stream_results=True, yield_per=10_000).execute(
            select(audit_entries.c.seq, audit_entries.c.entry, audit_entries.c.leaf_hash).order_by(audit_entries.c.seq)
        )
        for seq, entry_text, stored in rows:
            leaf = entry_leaf(entry_text)
            entry = json.loads(entry_text)
            if seq != expected or entry["seq"] != seq or entry["prev"] != prev or bytes(stored) != leaf:
                raise RuntimeError(f"audit log verification failed at entry {seq}")
            leaves.append(leaf)
            if len(leaves) >= 65_536:
                tree.extend(leaves)
                leaves = []
            prev, expected = leaf.hex(), seq + 1
    tree.extend(leaves)
    if tree.root(head.tree_size) != head.root_hash:
        raise RuntimeError("the signed tree head does not match the entries")
    key = load_pem_public_key(public_pem)
    key.verify(head.signature, head_message(head.tree_size, head.root_hash, int(head.signed_at.timestamp() * 1000)))  # type: ignore[union-attr]
    return time.perf_counter() - t0, f"{expected} entries OK; signed head {head.tree_size} OK"


def bench_proofs(audit: Any, data_dir: Path, size: int, samples: int) -> dict[str, Any]:
    from hub.audit.merkle import verify_inclusion

    t0 = time.perf_counter()
    fresh = open_log(data_dir)
    tree = fresh.tree()
    root = tree.root(size)
    cold_first = time.perf_counter() - t0
    rng = random.Random(size)
    times = []
    for _ in range(samples):
        i = rng.randrange(size)
        t = time.perf_counter()
        path = tree.inclusion_proof(i, size)
        verify_inclusion(tree._subtree(i, i + 1), i, size, path, root)
        times.append(time.perf_counter() - t)
    fresh.engine.dispose()
    return {
        "inclusion_proof_us": round(median(times) * 1e6, 1),
        "inclusion_proof_path_len": len(path),
        "first_proof_cold_s": round(cold_first, 3),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="short append runs; verify at 20,000 entries only")
    ap.add_argument("--sizes", default=None, help="comma-separated log sizes to verify (default 100000,1000000)")
    ap.add_argument("--keep", action="store_true", help="keep the filled audit database")
    ap.add_argument("--no-postgres", action="store_true")
    ap.add_argument("--no-append", action="store_true", help="only the verify benchmark")
    ap.add_argument(
        "--fill",
        choices=["direct", "writer"],
        default="direct",
        help="fill the verify log with sqlite3 directly (default: fast, 10^7 entries feasible) or the hub's writer",
    )
    a = ap.parse_args(argv)
    sizes = [int(s) for s in (a.sizes or ("20000" if a.quick else "100000,1000000")).split(",")]
    result: dict[str, Any] = {"quick": a.quick, "append": {}, "verify": {}, "skipped": {}}

    root = RESULTS / "run" / "audit"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)

    if a.no_append:
        result["skipped"]["append"] = "--no-append"
    else:
        audit = open_log(root / "append-sqlite")
        result["append"]["sqlite"] = bench_append(audit, a.quick)
        audit.engine.dispose()
        log(f"append sqlite: {result['append']['sqlite']}")
    if a.no_append:
        pass
    elif a.no_postgres:
        result["skipped"]["append postgres"] = "--no-postgres"
    else:
        with postgres() as pg:
            if pg is None:
                result["skipped"]["append postgres"] = "PostgreSQL binaries (initdb, pg_ctl) not found"
            else:
                audit = open_log(root / "append-postgres", pg.create_db("hub"))
                result["append"]["postgres"] = bench_append(audit, a.quick)
                audit.engine.dispose()
                log(f"append postgres: {result['append']['postgres']}")

    data_dir = root / "verify"
    audit = open_log(data_dir)
    use_cli = hub_cli_has_verify()
    result["verify_tool"] = "hub audit verify" if use_cli else "bench (hub audit verify not available)"
    if not use_cli:
        result["skipped"]["hub audit verify"] = "the CLI has no 'audit verify' yet; the bench's own full check is timed"
    public_pem = (data_dir / "keys" / "audit-public.pem").read_bytes()
    previous = 0
    for size in sorted(sizes):
        if a.fill == "direct":
            fill_s = fill_direct(audit, data_dir, size)
        else:
            fill_s = fill(audit, size)
            audit.sign_head(datetime.now(UTC))
        log(f"filled the log to {size} entries in {fill_s:.1f} s ({a.fill})")
        if use_cli:
            verify_s, message = verify_with_cli(data_dir)
        else:
            verify_s, message = verify_in_bench(audit, public_pem)
        db_bytes = sum(p.stat().st_size for p in data_dir.glob("hub.sqlite*"))
        own_s = verify_seconds(message) if use_cli else verify_s
        entry: dict[str, Any] = {
            "entries": size,
            "fill_s": round(fill_s, 2),
            "fill_eps": round((size - previous) / fill_s, 1) if fill_s else None,
            "fill": a.fill,
            "verify_s": round(verify_s, 2),
            "verify_eps": round(size / verify_s) if verify_s else None,  # process start and key load included
            "verify_own_s": own_s,  # the verify proper, from its summary line (start-up and imports excluded)
            "verify_own_eps": round(size / own_s) if own_s else None,
            "verify_cpu_s": VERIFY_CPU.get(str(data_dir)) if use_cli else None,
            "verify_peak_rss_mib": VERIFY_RSS.get(str(data_dir)) if use_cli else None,  # its own VmHWM
            "verify_maxrss_mib": VERIFY_MAXRSS.get(str(data_dir)) if use_cli else None,  # inherits the bench's peak
            "verify_message": message,
            "db_mib": round(db_bytes / 2**20, 1),
        }
        if size <= PROOF_MAX:  # the first proof loads every leaf into memory (the writer's tree)
            entry.update(bench_proofs(audit, data_dir, size, 200 if a.quick else 1000))
        result["verify"][str(size)] = entry
        previous = size
        log(f"verify {size}: {entry}")
    audit.engine.dispose()
    if not a.keep:
        shutil.rmtree(root, ignore_errors=True)

    result["targets"] = {}
    if "sqlite" in result["append"]:
        eps = result["append"]["sqlite"]["append_concurrent_eps"]
        result["targets"]["durable append >= 2,000 entries/s (sqlite, concurrent)"] = eps >= 2000
    if "postgres" in result["append"]:
        result["targets"]["durable append >= 2,000 entries/s (postgres, concurrent)"] = (
            result["append"]["postgres"]["append_concurrent_eps"] >= 2000
        )
    if "1000000" in result["verify"]:
        result["targets"]["verify 1,000,000 entries < 30 s"] = result["verify"]["1000000"]["verify_s"] < 30
    else:
        result["skipped"]["verify 1,000,000"] = "--quick" if a.quick else "not in --sizes"
    if use_cli and result["verify"]:
        largest = result["verify"][str(max(sizes))]
        n = f"{max(sizes):,}"
        if largest["verify_own_eps"] is not None:
            result["targets"][f"verify >= 100,000 entries/s at {n}"] = largest["verify_own_eps"] >= 100_000
        if largest["verify_peak_rss_mib"] is not None:
            result["targets"][f"verify peak RSS <= 100 MiB at {n}"] = largest["verify_peak_rss_mib"] <= 100
    write_result("audit", result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
