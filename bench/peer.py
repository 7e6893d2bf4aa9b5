"""Peer: Apollo's gateway and the hub, each federating the same two department subgraphs, same query, same load.

* Two subgraph processes (Apollo Federation 2): public security (owns ``Person @key(fields: "idNumber")``)
  and civil affairs (``Person.civilAffairs`` through ``_entities``); ``hub.demo.subgraph`` when the hub has
  it, else ``bench.subgraphs``. Both read the demo department SQLite files.
* ``apollo``: ``@apollo/gateway`` + ``@apollo/server`` (versions pinned in ``bench/apollo/package.json`` and
  its lock file, installed with ``npm ci`` under ``bench/results/apollo``), composing the two subgraphs with
  ``IntrospectAndCompose`` at start.
* ``hub``: the hub (token, policy, audit on SQLite) with those two departments served by the subgraphs
  (``hub.sources.subgraph.SubgraphSource``). While the hub cannot federate subgraphs, the hub side reads the
  same two departments from their SQLite files with its own SQL sources instead, and the result says so.

Rounds interleave the two targets; medians over rounds, ratios are hub / apollo.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
from typing import Any

from bench.common import (
    BENCH,
    CASE_CLIENT,
    HEADERS_CASE,
    RESULTS,
    Server,
    department_data,
    fresh_dir,
    hub_env,
    hub_token,
    load,
    log,
    median,
    register_clients,
    sample_ids,
    servers,
    start_server,
    uvicorn_cmd,
    write_result,
)
from bench.common import free_port as port

QUERY = """query Peer($id: String!) {
  person(idNumber: $id) { idNumber name sex birthDate civilAffairs { tier startDate monthlyAmount } }
}"""
SUBGRAPH_DEPTS = ["public_security", "civil_affairs"]
APOLLO_DIR = RESULTS / "apollo"


def npm_install() -> str | None:
    """Install the pinned Apollo packages under bench/results/apollo; a reason string if that is impossible."""
    if not shutil.which("node") or not shutil.which("npm"):
        return "node/npm not found"
    APOLLO_DIR.mkdir(parents=True, exist_ok=True)
    src = BENCH / "apollo"
    stamp = APOLLO_DIR / ".installed"
    lock = (src / "package-lock.json").read_text()
    for name in ("package.json", "package-lock.json", "gateway.mjs"):
        shutil.copy(src / name, APOLLO_DIR / name)
    if stamp.exists() and stamp.read_text() == lock and (APOLLO_DIR / "node_modules").is_dir():
        return None
    log("npm ci (Apollo gateway, pinned versions)")
    out = subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=APOLLO_DIR,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if out.returncode != 0:
        return f"npm ci failed: {out.stderr[-500:]}"
    stamp.write_text(lock)
    return None


def hub_subgraph_support() -> tuple[bool, str]:
    """Whether this hub can federate subgraphs (``hub.sources.subgraph`` and ``hub.demo.subgraph`` exist)."""
    missing = [m for m in ("hub.sources.subgraph", "hub.demo.subgraph") if importlib.util.find_spec(m) is None]
    if missing:
        return False, f"{', '.join(missing)} not in this hub yet"
    return True, ""


def start_subgraphs(running: list[Server], use_hub_demo: bool) -> dict[str, str]:
    data_dir = department_data().parent
    urls = {}
    for dept in SUBGRAPH_DEPTS:
        p = port()
        if use_hub_demo:
            cmd = uvicorn_cmd("hub.demo.subgraph:create_app", p)
        else:
            cmd = uvicorn_cmd("bench.subgraphs:create_app", p)
        env = hub_env(data_dir, BENCH_SUBGRAPH=dept, BENCH_DATA_DIR=str(data_dir), HUB_SUBGRAPH=dept)
        server = start_server(f"subgraph-{dept}", cmd, port=p, env=env)
        running.append(server)
        urls[dept] = server.url + "/graphql"
    return urls


def start_apollo(running: list[Server], subgraphs: dict[str, str]) -> Server:
    p = port()
    env = dict(
        os.environ,
        PORT=str(p),
        NODE_ENV="production",
        SUBGRAPHS=json.dumps([{"name": k, "url": v} for k, v in subgraphs.items()]),
    )
    server = start_server(
        "apollo-gateway", ["node", "gateway.mjs"], port=p, env=env, ready_path="/", cwd=APOLLO_DIR, timeout=90
    )
    running.append(server)
    return server


def start_hub(running: list[Server], subgraphs: dict[str, str] | None) -> tuple[Server, dict[str, str]]:
    root = fresh_dir("peer-hub")
    secrets = register_clients("", root)
    extra = {}
    if subgraphs is not None:
        extra = {f"HUB_DEPT_{d.upper()}_URL": url for d, url in subgraphs.items()}
    p = port()
    server = start_server("peer-hub", uvicorn_cmd("hub.app:create_app", p), port=p, env=hub_env(root, **extra))
    running.append(server)
    token = hub_token(server.url, CASE_CLIENT, secrets[CASE_CLIENT])
    return server, {**HEADERS_CASE, "authorization": f"Bearer {token}"}


def answer(url: str, headers: dict[str, str], body: str) -> Any:
    import httpx

    r = httpx.post(url, content=body, headers={"content-type": "application/json", **headers}, timeout=30)
    data = r.json()
    if r.status_code != 200 or "errors" in data or not (data.get("data") or {}).get("person"):
        raise RuntimeError(f"{url}: {r.status_code} {r.text[:500]}")
    return data["data"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--duration", type=float, default=None)
    ap.add_argument("--warmup", type=float, default=None)
    ap.add_argument("--concurrency", type=int, default=16)
    a = ap.parse_args(argv)
    rounds = a.rounds or (1 if a.quick else 3)
    duration = a.duration or (2.0 if a.quick else 6.0)
    warmup = a.warmup if a.warmup is not None else (1.0 if a.quick else 2.0)
    bodies = [json.dumps({"query": QUERY, "variables": {"id": i}}) for i in sample_ids("330113", 200)]
    result: dict[str, Any] = {"quick": a.quick, "query": QUERY, "concurrency": a.concurrency, "skipped": {}}

    why_not = npm_install()
    if why_not:
        result["skipped"]["apollo"] = why_not
        write_result("peer", result)
        return 0
    federates, why = hub_subgraph_support()
    result["hub_federates_subgraphs"] = federates
    result["subgraphs"] = "hub.demo.subgraph" if federates else "bench.subgraphs"
    if not federates:
        result["skipped"]["hub over the subgraphs"] = (
            f"{why}; the hub side reads the same two departments from SQLite with its own sources"
        )

    with servers() as running:
        subgraphs = start_subgraphs(running, use_hub_demo=federates)
        apollo = start_apollo(running, subgraphs)
        hub, hub_headers = start_hub(running, subgraphs if federates else None)
        targets = {"apollo": (apollo, apollo.url + "/", {}), "hub": (hub, hub.url + "/graphql", hub_headers)}
        got = {name: answer(url, headers, bodies[0]) for name, (_, url, headers) in targets.items()}
        if got["apollo"] != got["hub"]:
            raise RuntimeError(f"apollo and hub answer differently: {got}")
        log(f"peer: apollo and hub give the same answer; {rounds} round(s) of {duration}s at c={a.concurrency}")
        per_round: list[dict[str, dict[str, Any]]] = []
        for r in range(rounds):
            this = {}
            for name, (_server, url, headers) in targets.items():
                res = load(
                    url,
                    headers,
                    bodies,
                    concurrency=a.concurrency,
                    duration=duration,
                    warmup=warmup,
                    name=f"peer-{name}",
                )
                if res["errors"]:
                    raise RuntimeError(f"{name}: {res['errors']} errors, e.g. {res['error_samples']}")
                this[name] = res
                log(
                    f"round {r + 1}/{rounds} {name:7} {res['throughput_rps']:8.1f} req/s  "
                    f"p50 {res['p50_ms']:7.2f} ms  p99 {res['p99_ms']:7.2f} ms"
                )
            per_round.append(this)

    summary = {
        name: {
            "throughput_rps": round(median([r[name]["throughput_rps"] for r in per_round]), 1),
            "p50_ms": round(median([r[name]["p50_ms"] for r in per_round]), 2),
            "p99_ms": round(median([r[name]["p99_ms"] for r in per_round]), 2),
        }
        for name in ("apollo", "hub")
    }
    ratios = {
        key: round(median([r["hub"][field] / r["apollo"][field] for r in per_round]), 3)
        for key, field in (("throughput", "throughput_rps"), ("p50", "p50_ms"), ("p99", "p99_ms"))
    }
    apollo_versions = json.loads((BENCH / "apollo" / "package.json").read_text())["dependencies"]
    node = subprocess.run(["node", "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    result.update(
        {
            "rounds": rounds,
            "duration_s": duration,
            "warmup_s": warmup,
            "apollo_versions": apollo_versions,
            "node": node,
            "summary": summary,
            "ratios": ratios,
            "targets": {"hub throughput >= apollo": ratios["throughput"] >= 1.0},
            "per_round": per_round,
        }
    )
    write_result("peer", result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
