"""Peer: Apollo's and Hive's gateways and the hub, each federating the same two department subgraphs, same load.

* Two subgraph processes, ``hub.demo.subgraph`` (strawberry, Apollo Federation 2): public security and civil
  affairs, each serving its demo SQLite tables as ``Person @key(fields: "idNumber") { <table>: [Row!]! }``
  through ``_entities`` and checking the hub's hop token (ES256, ``aud`` = the department, bound to the exact
  request, used once) on every call.
* ``apollo``: ``@apollo/gateway`` + ``@apollo/server`` (pinned in ``bench/apollo/package.json`` and its lock
  file; ``npm ci`` under ``bench/results/apollo``), composing the two subgraphs at start plus an in-process
  entry subgraph for the root field (see ``bench/apollo/gateway.mjs``).
* ``hive``: Hive Gateway's runtime (``@graphql-hive/gateway-runtime`` + ``@graphql-mesh/transport-http``, pinned in
  ``bench/hive/``), the same supergraph and in-process entry subgraph (``bench/hive/gateway.mjs``).
* Both mint a hop token per subgraph request with the hub's key (``bench/apollo/hop.mjs``), as the hub does: since
  issue #18 a token is bound to its request and accepted once, so a token minted by the bench could not be
  forwarded.
* ``hub``: the hub (token, policy plan, audit on SQLite) with ``HUB_DEPT_PUBLIC_SECURITY_URL`` and
  ``HUB_DEPT_CIVIL_AFFAIRS_URL`` pointing at the two subgraphs (``hub.sources.subgraph.SubgraphSource``).
* ``hub-sql`` (reference only): the same hub reading those two departments from their SQLite files directly.

The same question — one resident's name, sex, birth date and assistance tier, start date and amount — in each
side's own schema (the subgraphs' row fields for Apollo and Hive, the hub's published schema for the hub); the
answers are checked equal before the load. Rounds interleave the targets; medians over rounds; ratios hub / apollo
and hub / hive. CPU per request (gateway, and the two subgraphs together) is from /proc: robust on a shared machine.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
from decimal import Decimal
from pathlib import Path
from typing import Any

from bench.common import (
    BENCH,
    CASE_CLIENT,
    HEADERS_CASE,
    PYTHON,
    REPO,
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
from hub.localpg import free_port as port

HUB_QUERY = """query Peer($id: String!) {
  person(idNumber: $id) { idNumber name sex birthDate civilAffairs { tier startDate monthlyAmount } }
}"""
APOLLO_QUERY = """query Peer($id: String!) {
  person(idNumber: $id) { idNumber residents { name sex dob } assistance { tier startDate monthlyAmount } }
}"""
SUBGRAPH_DEPTS = ["public_security", "civil_affairs"]
APOLLO_DIR = RESULTS / "apollo"
ISSUER = "https://hub.local"


HIVE_DIR = RESULTS / "hive"
GATEWAYS = {  # name -> (source folder, install folder, the files copied there besides the lock)
    "apollo": (BENCH / "apollo", APOLLO_DIR, ("package.json", "package-lock.json", "gateway.mjs", "hop.mjs")),
    "hive": (BENCH / "hive", HIVE_DIR, ("package.json", "package-lock.json", "gateway.mjs")),
}


def npm_install() -> str | None:
    """Install the pinned Apollo and Hive packages under bench/results/; a reason string if that is impossible."""
    if not shutil.which("node") or not shutil.which("npm"):
        return "node/npm not found"
    for name, (src, dest, files) in GATEWAYS.items():
        dest.mkdir(parents=True, exist_ok=True)
        stamp = dest / ".installed"
        lock = (src / "package-lock.json").read_text()
        for f in files:
            shutil.copy(src / f, dest / f)
        shutil.copy(BENCH / "apollo" / "hop.mjs", dest / "hop.mjs")  # one hop-token minter for both
        if stamp.exists() and stamp.read_text() == lock and (dest / "node_modules").is_dir():
            continue
        log(f"npm ci ({name} gateway, pinned versions)")
        out = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=dest,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if out.returncode != 0:
            return f"npm ci ({name}) failed: {out.stderr[-500:]}"
        stamp.write_text(lock)
    return None


def hub_subgraph_support() -> str | None:
    """None when this hub can federate subgraphs, else why not."""
    missing = [m for m in ("hub.sources.subgraph", "hub.demo.subgraph") if importlib.util.find_spec(m) is None]
    return f"{', '.join(missing)} not in this hub" if missing else None


def start_subgraphs(running: list[Server], root: Path) -> dict[str, str]:
    """The two department subgraphs, trusting the hub's token keys (a JWKS file written from its key ring)."""
    from hub.auth.keys import KeyRing

    ring = KeyRing(root / "keys")
    ring.ensure()
    jwks = root / "jwks.json"
    jwks.write_text(json.dumps(ring.jwks()))
    urls = {}
    for dept in SUBGRAPH_DEPTS:
        p = port()
        db = department_data() / f"{dept}.sqlite"
        cmd = [PYTHON, "-m", "hub.demo.subgraph", "--db", str(db), "--department", dept]
        cmd += ["--host", "127.0.0.1", "--port", str(p), "--jwks", str(jwks), "--issuer", ISSUER]
        server = start_server(f"subgraph-{dept}", cmd, port=p, env=hub_env(root))
        running.append(server)
        urls[dept] = server.url + "/graphql"
    return urls


def apollo_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("APOLLO_")}
    env.update(APOLLO_TELEMETRY_DISABLED="true", NODE_ENV="production", **extra)
    return env


def hop_env(root: Path) -> dict[str, str]:
    """What the peer gateways need to mint hop tokens as the hub does (bench/apollo/hop.mjs): the hub's active
    token key, its issuer, and who the bench's requests act for."""
    from hub.auth.keys import KeyRing

    ring = KeyRing(root / "keys")
    kid = ring.active().kid
    [pem] = sorted((root / "keys" / "tokens").glob(f"*-{kid}.pem"))
    act = {"client_id": CASE_CLIENT, "department": "civil_affairs", "area": "330113"}
    act.update(officer=HEADERS_CASE["x-hub-officer"], purpose="CASE", case=HEADERS_CASE["x-hub-case"])
    return {"HOP_KEY_PEM": str(pem), "HOP_KID": kid, "HOP_ISSUER": ISSUER, "HOP_ACT": json.dumps(act)}


def start_gateway(running: list[Server], name: str, root: Path, subgraphs: dict[str, str]) -> Server:
    """Apollo's or Hive's gateway (``name``) over the subgraphs, from its install folder."""
    p = port()
    subs = json.dumps([{"name": k, "url": v} for k, v in subgraphs.items()])
    env = apollo_env(PORT=str(p), SUBGRAPHS=subs, **hop_env(root))
    ready = "/" if name == "apollo" else "/graphql?query=%7B__typename%7D"
    server = start_server(
        f"{name}-gateway", ["node", "gateway.mjs"], port=p, env=env, ready_path=ready, cwd=GATEWAYS[name][1], timeout=90
    )
    running.append(server)
    return server


def start_hub(
    running: list[Server], root: Path, subgraphs: dict[str, str], name: str = "peer-hub"
) -> tuple[Server, dict[str, str]]:
    secrets = register_clients("", root)
    extra = {f"HUB_DEPT_{d.upper()}_URL": url for d, url in subgraphs.items()}
    p = port()
    server = start_server(name, uvicorn_cmd("hub.app:create_app", p), port=p, env=hub_env(root, **extra))
    running.append(server)
    token = hub_token(server.url, CASE_CLIENT, secrets[CASE_CLIENT])
    return server, {**HEADERS_CASE, "authorization": f"Bearer {token}"}


def post(url: str, headers: dict[str, str], body: str) -> Any:
    import httpx

    r = httpx.post(url, content=body, headers={"content-type": "application/json", **headers}, timeout=30)
    data = r.json()
    if r.status_code != 200 or "errors" in data or not (data.get("data") or {}).get("person"):
        raise RuntimeError(f"{url}: {r.status_code} {r.text[:800]}")
    return data["data"]["person"]


def same_answer(apollo: dict[str, Any], hub: dict[str, Any]) -> bool:
    """The two answers carry the same facts (Apollo's are raw rows, the hub's the published fields)."""
    res = apollo["residents"][0]
    row = apollo["assistance"][0] if apollo["assistance"] else {"tier": None, "startDate": None, "monthlyAmount": None}
    amount = None if row["monthlyAmount"] is None else float(Decimal(str(row["monthlyAmount"])))
    mapped = {
        "idNumber": apollo["idNumber"],
        "name": res["name"],
        "sex": res["sex"],
        "birthDate": res["dob"],
        "civilAffairs": {"tier": row["tier"], "startDate": row["startDate"], "monthlyAmount": amount},
    }
    return mapped == hub


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--duration", type=float, default=None)
    ap.add_argument("--warmup", type=float, default=None)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--install-only", action="store_true", help="only npm ci the Apollo and Hive gateways (registry)")
    a = ap.parse_args(argv)
    rounds = a.rounds or (1 if a.quick else 5)
    duration = a.duration or (2.0 if a.quick else 6.0)
    warmup = a.warmup if a.warmup is not None else (1.0 if a.quick else 5.0)
    ids = sample_ids("330113", 200)
    apollo_bodies = [json.dumps({"query": APOLLO_QUERY, "variables": {"id": i}}) for i in ids]
    hub_bodies = [json.dumps({"query": HUB_QUERY, "variables": {"id": i}}) for i in ids]
    result: dict[str, Any] = {
        "quick": a.quick,
        "query": {"hub": HUB_QUERY, "apollo": APOLLO_QUERY},
        "concurrency": a.concurrency,
        "subgraphs": {d: "hub.demo.subgraph" for d in SUBGRAPH_DEPTS},
        "skipped": {},
    }

    why_not = npm_install()
    if a.install_only:
        if why_not:
            log(f"apollo: {why_not}")
        return 0
    if why_not:
        result["skipped"]["peer"] = f"Apollo gateway: {why_not}"
        write_result("peer", result)
        return 0
    why_not = hub_subgraph_support()
    if why_not:
        result["skipped"]["peer"] = f"the hub cannot federate subgraphs: {why_not}"
        write_result("peer", result)
        return 0

    root = fresh_dir("peer")
    with servers() as running:
        subgraphs = start_subgraphs(running, root)
        apollo = start_gateway(running, "apollo", root, subgraphs)
        hive = start_gateway(running, "hive", root, subgraphs)
        hub, hub_headers = start_hub(running, root, subgraphs)
        hub_sql, sql_headers = start_hub(running, fresh_dir("peer-sql"), {}, name="peer-hub-sql")
        targets = {
            "apollo": (apollo.url + "/", apollo_bodies, lambda: {}),
            "hive": (hive.url + "/graphql", apollo_bodies, lambda: {}),
            "hub": (hub.url + "/graphql", hub_bodies, lambda: hub_headers),
            "hub-sql": (hub_sql.url + "/graphql", hub_bodies, lambda: sql_headers),
        }
        gateways = {"apollo": apollo, "hive": hive, "hub": hub, "hub-sql": hub_sql}
        subgraph_servers = [s for s in running if s.name.startswith("subgraph-")]
        h_answer = post(hub.url + "/graphql", hub_headers, hub_bodies[0])
        for name in ("apollo", "hive"):
            answer = post(targets[name][0], {}, apollo_bodies[0])
            if not same_answer(answer, h_answer):
                raise RuntimeError(f"{name} and hub answer differently: {answer} vs {h_answer}")
        log(f"peer: apollo, hive and hub give the same answer; {rounds} round(s) of {duration}s at c={a.concurrency}")
        per_round: list[dict[str, dict[str, Any]]] = []
        failed: dict[str, dict[str, Any]] = {}
        for r in range(rounds):
            this = {}
            for name, (url, bodies, headers) in targets.items():
                if name in failed:
                    continue
                cpu0 = gateways[name].cpu_seconds(), sum(s.cpu_seconds() for s in subgraph_servers)
                res = load(
                    url,
                    headers(),
                    bodies,
                    concurrency=a.concurrency,
                    duration=duration,
                    warmup=warmup,
                    name=f"peer-{name}",
                )
                if res["errors"]:  # a failure under load is a finding: record it, go on with the others
                    exit_code = gateways[name].proc.poll()
                    failed[name] = {
                        "round": r + 1,
                        "ok": res["ok"],
                        "errors": res["errors"],
                        "error_rate": round(res["errors"] / max(1, res["requests"]), 3),
                        "ok_throughput_rps": res["throughput_rps"],
                        "error_samples": res["error_samples"],
                        "server_exit_code": exit_code,
                        "server_log": str(gateways[name].log_path.relative_to(REPO)),
                    }
                    log(f"{name} FAILED under load: {failed[name]}")
                    continue
                n = max(1, res["completed_total"])
                res["gateway_cpu_ms_per_request"] = round((gateways[name].cpu_seconds() - cpu0[0]) * 1000 / n, 2)
                res["subgraphs_cpu_ms_per_request"] = round(
                    (sum(s.cpu_seconds() for s in subgraph_servers) - cpu0[1]) * 1000 / n, 2
                )
                this[name] = res
                log(
                    f"round {r + 1}/{rounds} {name:7} {res['throughput_rps']:8.1f} req/s  "
                    f"p50 {res['p50_ms']:7.2f} ms  p99 {res['p99_ms']:7.2f} ms"
                )
            per_round.append(this)

    def ok(name: str, base: str) -> list[dict[str, dict[str, Any]]]:
        return [r for r in per_round if name in r and base in r]

    summary = {
        name: {
            "throughput_rps": round(median([r[name]["throughput_rps"] for r in per_round if name in r]), 1),
            "p50_ms": round(median([r[name]["p50_ms"] for r in per_round if name in r]), 2),
            "p99_ms": round(median([r[name]["p99_ms"] for r in per_round if name in r]), 2),
            "gateway_cpu_ms_per_request": round(
                median([r[name]["gateway_cpu_ms_per_request"] for r in per_round if name in r]), 2
            ),
            "subgraphs_cpu_ms_per_request": round(
                median([r[name]["subgraphs_cpu_ms_per_request"] for r in per_round if name in r]), 2
            ),
        }
        for name in targets
        if name not in failed
    }
    ratios = {
        f"{name}/{base}": {
            key: round(median([r[name][field] / r[base][field] for r in ok(name, base)]), 3)
            for key, field in (
                ("throughput", "throughput_rps"),
                ("p50", "p50_ms"),
                ("p99", "p99_ms"),
                ("gateway_cpu", "gateway_cpu_ms_per_request"),
            )
        }
        for name, base in (("hub", "apollo"), ("hub", "hive"), ("hive", "apollo"), ("hub-sql", "apollo"))
        if name not in failed and base not in failed
    }

    def ratio(pair: str, key: str) -> float | None:
        return ratios.get(pair, {}).get(key)

    apollo_versions = json.loads((BENCH / "apollo" / "package.json").read_text())["dependencies"]
    hive_versions = json.loads((BENCH / "hive" / "package.json").read_text())["dependencies"]
    node = subprocess.run(["node", "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    tp_a, tp_h, cpu_a = (
        ratio("hub/apollo", "throughput"),
        ratio("hub/hive", "throughput"),
        ratio("hub/apollo", "gateway_cpu"),
    )
    result.update(
        {
            "rounds": rounds,
            "duration_s": duration,
            "warmup_s": warmup,
            "apollo_versions": apollo_versions,
            "hive_versions": hive_versions,
            "node": node,
            "summary": summary,
            "ratios": ratios,
            "failed": failed,
            "targets": {
                "hub throughput >= 1.5x apollo": tp_a is not None and tp_a >= 1.5,
                "hub throughput >= 1.5x hive": tp_h is not None and tp_h >= 1.5,
                "hub gateway CPU per request <= apollo's": cpu_a is not None and cpu_a <= 1.0,
            },
            "per_round": per_round,
        }
    )
    write_result("peer", result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
