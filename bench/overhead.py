"""Overhead: the same query on the same data through plain strawberry, the hub on SQLite, the hub on PostgreSQL.

Targets, each a real uvicorn process on 127.0.0.1 (one worker), loaded by ``bench.loadgen`` in another process:

1. ``strawberry`` — ``bench.plain_app``: the hub's schema and resolvers under ``strawberry.asgi.GraphQL`` with
   strawberry's own ``ParserCache`` and ``ValidationCache`` (the hub keeps validated documents too), no token, no
   policy, no audit;
2. ``hub-sqlite`` — ``hub.app:create_app`` with its database (clients, audit log) on SQLite (WAL, fsync);
3. ``hub-postgres`` — the same with ``HUB_DATABASE_URL`` on a local PostgreSQL server (fsync on); its server
   CPU per request includes the PostgreSQL server's (postmaster, backends, WAL writer: ``postgres_cpu_seconds``);

plus, for reference, ``graphql-core`` — ``bench.plain_app``'s ``/bare`` endpoint (parse, validate, execute).
Department data is the same SQLite files for all. The query (one person, fields from public security and
six other departments, all granted to civil affairs for CASE) and its variables are the same for all.

Rounds interleave the targets (1, 2, 3, 1, 2, 3, ...) so that machine noise hits them alike; each metric is
the median over rounds, and each ratio is the median of the per-round ratios. The full run warms each target up
for 5 s before each measured window and runs 5 rounds.

Targets (issue 16): hub p50 <= 1.0x the cached strawberry's, and server CPU <= 2.5 ms per request.
"""

from __future__ import annotations

import argparse
import functools
import json
from collections.abc import Callable
from typing import Any

from bench.common import (
    CASE_CLIENT,
    HEADERS_CASE,
    Server,
    fresh_dir,
    hub_env,
    hub_token,
    load,
    log,
    median,
    postgres,
    postgres_cpu_seconds,
    register_clients,
    sample_ids,
    servers,
    start_server,
    uvicorn_cmd,
    write_result,
)
from hub.localpg import free_port as port

QUERY = """query Overhead($id: String!) {
  person(idNumber: $id) {
    idNumber name sex birthDate
    household { householdId address size }
    civilAffairs { tier monthlyAmount isRecipient }
    disability { category grade hasCertificate }
    medical { outOfPocket12mBand hasChronicDisease }
    employment { pensionMonthlyBand }
    tax { incomeBand }
    education { isFullTimeStudent }
  }
}"""

DEPARTMENTS_TOUCHED = [
    "public_security",
    "civil_affairs",
    "disability",
    "medical_security",
    "hrss",
    "tax",
    "education",
]


def bodies(n: int) -> list[str]:
    """One request body per resident of 临平 (330113), the actor's jurisdiction: same text, varying id."""
    return [json.dumps({"query": QUERY, "variables": {"id": i}}) for i in sample_ids("330113", n)]


def check(url: str, headers: dict[str, str], body: str) -> dict[str, Any]:
    import httpx

    r = httpx.post(url, content=body, headers={"content-type": "application/json", **headers}, timeout=30)
    data: dict[str, Any] = r.json()
    if r.status_code != 200 or "errors" in data or not data.get("data", {}).get("person"):
        raise RuntimeError(f"{url}: {r.status_code} {r.text[:500]}")
    return data


def summarize(per_round: list[dict[str, dict[str, Any]]]) -> dict[str, Any]:
    """Median over rounds of each target's metrics, and the median of the per-round ratios to strawberry."""
    summary: dict[str, dict[str, Any]] = {}
    for name in per_round[0]:
        rows = [r[name] for r in per_round]
        summary[name] = {
            "throughput_rps": round(median([x["throughput_rps"] for x in rows]), 1),
            "p50_ms": round(median([x["p50_ms"] for x in rows]), 2),
            "p99_ms": round(median([x["p99_ms"] for x in rows]), 2),
            "requests": sum(x["ok"] for x in rows),
            "server_cpu_ms_per_request": round(
                median([x["server_cpu_s"] * 1000 / max(1, x["completed_total"]) for x in rows]), 2
            ),
            "database_cpu_ms_per_request": round(
                median([x.get("database_cpu_s", 0.0) * 1000 / max(1, x["completed_total"]) for x in rows]), 2
            ),
        }
    ratios: dict[str, dict[str, float]] = {}
    for name in summary:
        if name == "strawberry":
            continue
        ratios[f"{name}/strawberry"] = {
            key: round(median([r[name][field] / r["strawberry"][field] for r in per_round]), 3)
            for key, field in (("p50", "p50_ms"), ("p99", "p99_ms"), ("throughput", "throughput_rps"))
        }
    return {"summary": summary, "ratios": ratios, "per_round": per_round}


def start_hub(name: str, database_url: str) -> tuple[Server, dict[str, str]]:
    root = fresh_dir(name)
    secrets = register_clients(database_url, root)
    p = port()
    server = start_server(name, uvicorn_cmd("hub.app:create_app", p), port=p, env=hub_env(root, database_url))
    token = hub_token(server.url, CASE_CLIENT, secrets[CASE_CLIENT])
    return server, {**HEADERS_CASE, "authorization": f"Bearer {token}"}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="one short round (smoke test)")
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--duration", type=float, default=None, help="measured seconds per target per round")
    ap.add_argument("--warmup", type=float, default=None)
    ap.add_argument(
        "--concurrency", default=None, help="comma-separated; the last is the headline (default 1,16; quick: 16)"
    )
    ap.add_argument("--no-postgres", action="store_true")
    a = ap.parse_args(argv)
    rounds = a.rounds or (1 if a.quick else 5)
    duration = a.duration or (2.0 if a.quick else 6.0)
    warmup = a.warmup if a.warmup is not None else (0.5 if a.quick else 5.0)
    concurrencies = [int(c) for c in (a.concurrency or ("16" if a.quick else "1,16")).split(",")]
    reqs = bodies(200)
    skipped: dict[str, str] = {}

    with servers() as running, postgres() as pg:
        data_dir = fresh_dir("plain")
        p = port()
        env = hub_env(data_dir, BENCH_DATA_DIR=str(data_dir))
        plain = start_server("strawberry", uvicorn_cmd("bench.plain_app:create_app", p), port=p, env=env)
        running.append(plain)
        extra_cpu: dict[str, Callable[[], float]] = {}  # CPU of other processes serving a target (PostgreSQL)
        targets: dict[str, tuple[Server, str, dict[str, str]]] = {
            "strawberry": (plain, plain.url + "/graphql", {}),
            "graphql-core": (plain, plain.url + "/bare", {}),
        }
        hub_sqlite, headers = start_hub("hub-sqlite", "")
        running.append(hub_sqlite)
        targets["hub-sqlite"] = (hub_sqlite, hub_sqlite.url + "/graphql", headers)
        if a.no_postgres:
            skipped["hub-postgres"] = "--no-postgres"
        elif pg is None:
            skipped["hub-postgres"] = "PostgreSQL binaries (initdb, pg_ctl) not found"
        else:
            hub_pg, headers = start_hub("hub-postgres", pg.create_db("hub"))
            running.append(hub_pg)
            targets["hub-postgres"] = (hub_pg, hub_pg.url + "/graphql", headers)
            extra_cpu["hub-postgres"] = functools.partial(postgres_cpu_seconds, pg)

        answers = {name: check(url, headers, reqs[0]) for name, (_, url, headers) in targets.items()}
        first = answers["strawberry"]["data"]
        for name, answer in answers.items():
            if answer["data"] != first:
                raise RuntimeError(f"{name} answers differently from strawberry: {answer} != {first}")
        log(f"overhead: all {len(targets)} targets give the same answer; {rounds} round(s) of {duration}s each")

        measured: dict[str, Any] = {}
        for concurrency in concurrencies:
            per_round: list[dict[str, dict[str, Any]]] = []
            for r in range(rounds):
                this: dict[str, dict[str, Any]] = {}
                for name, (server, url, headers) in targets.items():
                    cpu0 = server.cpu_seconds()
                    other = extra_cpu.get(name)
                    other0 = other() if other else 0.0
                    res = load(
                        url,
                        headers,
                        reqs,
                        concurrency=concurrency,
                        duration=duration,
                        warmup=warmup,
                        name=f"overhead-{name}",
                    )
                    other_s = (other() - other0) if other else 0.0
                    res["database_cpu_s"] = round(other_s, 3)
                    res["server_cpu_s"] = round(server.cpu_seconds() - cpu0 + other_s, 3)
                    if res["errors"]:
                        raise RuntimeError(f"{name}: {res['errors']} errors, e.g. {res['error_samples']}")
                    this[name] = res
                    log(
                        f"c={concurrency} round {r + 1}/{rounds} {name:13} {res['throughput_rps']:8.1f} req/s  "
                        f"p50 {res['p50_ms']:7.2f} ms  p99 {res['p99_ms']:7.2f} ms"
                    )
                per_round.append(this)
            measured[str(concurrency)] = summarize(per_round)

    headline = str(concurrencies[-1])
    targets_met = {
        f"{k} p50 <= 1.0x (c={c})": v["p50"] <= 1.0
        for c, m in measured.items()
        for k, v in m["ratios"].items()
        if k.startswith("hub-")
    }
    targets_met |= {
        f"{k} server CPU <= 2.5 ms/request (c={c})": v["server_cpu_ms_per_request"] <= 2.5
        for c, m in measured.items()
        for k, v in m["summary"].items()
        if k.startswith("hub-")
    }
    write_result(
        "overhead",
        {
            "quick": a.quick,
            "query": QUERY,
            "departments": DEPARTMENTS_TOUCHED,
            "concurrency": concurrencies,
            "headline_concurrency": int(headline),
            "rounds": rounds,
            "duration_s": duration,
            "warmup_s": warmup,
            "by_concurrency": measured,
            "targets": targets_met,
            "skipped": skipped,
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
