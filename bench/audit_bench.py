"""Audit-log figures: append throughput, verification time, inclusion-proof time. Prints JSON.

    python -m bench.audit_bench                      # 100,000 entries
    python -m bench.audit_bench --entries 100000 1000000   # also 1M (building it takes about 2 minutes)

Everything runs on a fresh SQLite hub database (WAL, synchronous=FULL) in a temporary folder. Entries are
shaped like the gateway's (``hub.gateway.audit_body``), about 920 bytes of canonical JSON each.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import select

from hub.audit.entry import entry_leaf
from hub.audit.log import AuditLog
from hub.audit.merkle import verify_inclusion
from hub.audit.store import open_audit_log
from hub.audit.verify import HeadRecord, verify_log, verify_store
from hub.db import audit_entries
from hub.settings import Settings

POLICIES = Path(__file__).resolve().parent.parent / "policies"


def body(i: int) -> dict[str, Any]:
    h = hashlib.sha256(str(i).encode()).hexdigest()
    return {
        "v": 1,
        "request_id": f"req-{i:012d}",
        "client_id": "linping-ca",
        "department": "civil_affairs",
        "area": "330113",
        "token_id": h[:16],
        "officer": f"officer-{i % 40}",
        "purpose": "CASE",
        "case_ref": f"CASE-2026-{i % 997:04d}",
        "operation_name": "Person",
        "operation_sha256": h,
        "fields": [
            {"coordinate": "Person.name", "form": "raw"},
            {"coordinate": "CivilAffairsRecord.tier", "form": "raw"},
            {"coordinate": "CivilAffairsRecord.monthlyAmount", "form": "raw"},
        ],
        "requested_denied": [],
        "subject_count": 1,
        "out_of_area": 0,
        "decision": "allow",
        "reasons": [],
        "status": 200,
        "upstream_failures": [],
        "result_sha256": h,
        "latency_ms": 3.217,
    }


def record(i: int) -> tuple[dict[str, Any], list[str]]:
    return body(i), [hashlib.sha256(f"resident-{i % 50_000}".encode()).hexdigest()]


def fresh(root: Path, name: str) -> tuple[Settings, AuditLog]:
    settings = Settings(data_dir=root / name, policy_dir=POLICIES)
    return settings, open_audit_log(settings)


def append_rate(root: Path, batch: int, entries: int) -> float:
    _, log = fresh(root, f"append-{batch}")
    started = time.perf_counter()
    for b in range(0, entries, batch):
        log.write([record(i) for i in range(b, b + batch)])
    rate = entries / (time.perf_counter() - started)
    log.engine.dispose()
    return rate


def build(root: Path, n: int, head_every: int = 10_000) -> tuple[Settings, AuditLog, float]:
    settings, log = fresh(root, f"log-{n}")
    started = time.perf_counter()
    for b in range(0, n, 1000):
        log.write([record(i) for i in range(b, min(n, b + 1000))])
        if (b + 1000) % head_every == 0:
            log.sign_head()
    log.sign_head()
    return settings, log, time.perf_counter() - started


def measure(root: Path, n: int) -> dict[str, Any]:
    settings, log, built = build(root, n)
    out: dict[str, Any] = {"entries": n, "build_seconds_batch_1000": round(built, 1)}
    started = time.perf_counter()
    report = verify_store(settings)
    out["verify_store_seconds"] = round(time.perf_counter() - started, 2)
    assert report.ok, report.problem
    with log.engine.connect() as conn:
        rows = [
            (r[0], r[1], bytes(r[2]))
            for r in conn.execute(
                select(audit_entries.c.seq, audit_entries.c.entry, audit_entries.c.leaf_hash).order_by(
                    audit_entries.c.seq
                )
            )
        ]
    heads = [HeadRecord.from_row(h.tree_size, h.root_hash, h.signed_at, h.key_id, h.signature) for h in log.heads()]
    started = time.perf_counter()
    pure = verify_log(rows, heads, log.signing_key.public_key())
    out["verify_log_in_memory_seconds"] = round(time.perf_counter() - started, 2)
    assert pure.ok, pure.problem
    out["heads"] = len(heads)
    del rows
    log.engine.dispose()
    _, log = fresh(root, f"log-{n}")  # a new AuditLog: its Merkle tree is built from the database
    started = time.perf_counter()
    tree = log.tree()
    out["tree_build_from_db_seconds"] = round(time.perf_counter() - started, 2)
    rng = random.Random(1)
    times = []
    root_hash = tree.root()
    with log.engine.connect() as conn:
        for _ in range(1000):
            seq = rng.randrange(n)
            text = conn.execute(select(audit_entries.c.entry).where(audit_entries.c.seq == seq)).scalar_one()
            t0 = time.perf_counter()
            proof = tree.inclusion_proof(seq)
            verify_inclusion(entry_leaf(text), seq, n, proof, root_hash)
            times.append(time.perf_counter() - t0)
    out["prove_and_verify_ms_median"] = round(statistics.median(times) * 1000, 4)
    out["prove_and_verify_ms_p99"] = round(sorted(times)[int(len(times) * 0.99)] * 1000, 4)
    log.engine.dispose()
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--entries", type=int, nargs="*", default=[100_000])
    p.add_argument("--dir", help="work folder (default: a temporary one)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        root = Path(tmp)
        result: dict[str, Any] = {
            "python": platform.python_version(),
            "machine": platform.machine(),
            "append_entries_per_s": {
                "batch_1": round(append_rate(root, 1, 500)),
                "batch_100": round(append_rate(root, 100, 20_000)),
                "batch_1000": round(append_rate(root, 1000, 50_000)),
            },
            "logs": [measure(root, n) for n in args.entries],
        }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
