"""Print one table from ``bench/results/*.json``: every measurement, every ratio, each target met or missed.

python -m bench.report              # plain text
python -m bench.report --markdown   # the same as a Markdown table (for bench/README.md)
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from bench.common import RESULTS

Row = tuple[str, str, str, str, str]  # benchmark, measure, value, target, verdict

SHORT = {
    "public_security": "ps",
    "civil_affairs": "ca",
    "disability": "dis",
    "medical_security": "med",
    "hrss": "hrss",
    "tax": "tax",
    "real_estate": "re",
    "traffic": "veh",
    "market_regulation": "biz",
    "provident_fund": "hpf",
    "education": "edu",
}


def verdict(ok: bool | None) -> str:
    return "" if ok is None else ("met" if ok else "MISSED")


def _x(v: float) -> str:
    return f"{v:.2f}x"


def overhead_rows(d: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    for conc, m in d["by_concurrency"].items():
        for name, s in m["summary"].items():
            cpu = s.get("server_cpu_ms_per_request", float("nan"))
            db = s.get("database_cpu_ms_per_request", 0.0)
            hub = name.startswith("hub-")
            rows.append(
                (
                    "overhead",
                    f"{name}, c={conc}: req/s | p50 | p99 | server CPU/req",
                    f"{s['throughput_rps']:.1f} | {s['p50_ms']:.2f} ms | {s['p99_ms']:.1f} ms"
                    f" | {cpu:.2f} ms" + (f" (of which PostgreSQL {db:.2f} ms)" if db else ""),
                    "<= 2.5 ms CPU" if hub else "",
                    verdict(cpu <= 2.5) if hub else "",
                )
            )
        for key, r in m["ratios"].items():
            hub = key.startswith("hub-")
            target = "<= 1.0x p50" if hub else ""
            ok = r["p50"] <= 1.0 if target else None
            rows.append(
                (
                    "overhead",
                    f"{key}, c={conc}: p50 | p99 | req/s",
                    f"{_x(r['p50'])} | {_x(r['p99'])} | {_x(r['throughput'])}",
                    target,
                    verdict(ok),
                )
            )
    for name, why in d.get("skipped", {}).items():
        rows.append(("overhead", f"{name}: skipped", why, "", ""))
    return rows


def breakdown_rows(d: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    for name, ms in d["steps_ms_median"].items():
        label = name if name.startswith("  ") else name.strip()
        rows.append(("breakdown", f"{label}".replace("  ", "- ", 1), f"{ms:.2f} ms", "", ""))
    share = d.get("hub_only_share")
    rows.append(
        (
            "breakdown",
            "hub-only steps (token, client, limits, plan, audit)",
            f"{d['hub_only_ms']:.2f} ms ({share:.0%} of the request)" if share is not None else "",
            "",
            "",
        )
    )
    rows.append(
        (
            "breakdown",
            "shared with strawberry (parse, validate, execute)",
            f"{d['shared_with_plain_ms']:.2f} ms",
            "",
            "",
        )
    )
    return rows


def batch_rows(d: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    sizes = d["sizes"]
    big = sizes[max(sizes, key=int)]
    n = big["households"]
    per = ", ".join(f"{SHORT.get(k, k)} {v}" for k, v in big["statements_per_department"].items())
    rows.append(("batch", f"{n} households ({big['residents']} residents): wall", f"{big['wall_s']:.3f} s", "", ""))
    rows.append(("batch", "SQL statements per department", per, "", ""))
    totals = " / ".join(f"{v['statements_total']}" for v in sizes.values())
    rows.append(
        (
            "batch",
            f"statements total at {' / '.join(sizes)} households",
            totals,
            "O(departments)",
            verdict(d["statements_constant_across_sizes"]),
        )
    )
    rows.append(("batch", "the same SQL alone (sqlite3)", f"{big['raw_sql_s'] * 1000:.1f} ms", "", ""))
    rows.append(
        ("batch", "hub wall / raw SQL", _x(big["ratio_to_raw_sql"]), "< 2x", verdict(big["ratio_to_raw_sql"] < 2))
    )
    if "resolvers_only_s" in d:
        r = d["resolvers_only_s"]
        rows.append(
            ("batch", "same resolvers, no hub (graphql-core)", f"{r:.3f} s ({_x(r / big['raw_sql_s'])} raw)", "", "")
        )
        rows.append(
            ("batch", "hub wall / resolvers alone", _x(d.get("hub_to_resolvers_ratio", big["wall_s"] / r)), "", "")
        )
    rows.append(
        ("batch", "estimated query cost (default max_cost)", f"{d['estimated_cost']} ({d['default_max_cost']})", "", "")
    )
    return rows


def audit_rows(d: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    for db, a in d["append"].items():
        rows.append(("audit", f"append {db}: 1 per transaction", f"{a['write_batch1_eps']:.0f} entries/s", "", ""))
        rows.append(("audit", f"append {db}: 100 per transaction", f"{a['write_batch100_eps']:.0f} entries/s", "", ""))
        ok = a["append_concurrent_eps"] >= 2000
        rows.append(
            (
                "audit",
                f"append {db}: {a['append_concurrent_tasks']} concurrent (group commit)",
                f"{a['append_concurrent_eps']:.0f} entries/s (p50 {a['append_concurrent_p50_ms']} ms)",
                ">= 2,000/s durable",
                verdict(ok),
            )
        )
    tool = d.get("verify_tool", "")
    for size, v in d["verify"].items():
        big = int(size) >= 1_000_000
        rows.append(
            (
                "audit",
                f"verify {int(size):,} entries ({tool})",
                f"{v['verify_s']:.2f} s ({v['db_mib']:.0f} MiB)",
                "< 30 s" if big else "",
                verdict(v["verify_s"] < 30) if big else "",
            )
        )
        if v.get("verify_own_eps"):
            rows.append(
                (
                    "audit",
                    f"verify {int(size):,}: the verify proper | CPU | its own peak RSS",
                    f"{v['verify_own_eps']:,} entries/s ({v['verify_own_s']:.2f} s) | {v['verify_cpu_s']:.1f} s | "
                    f"{v['verify_peak_rss_mib']} MiB",
                    ">= 100,000/s, <= 100 MiB",
                    verdict(v["verify_own_eps"] >= 100_000 and (v["verify_peak_rss_mib"] or 1e9) <= 100),
                )
            )
        if "inclusion_proof_us" in v:
            rows.append(
                (
                    "audit",
                    f"inclusion proof at {int(size):,}: warm | first (loads tree)",
                    f"{v['inclusion_proof_us']:.0f} us | {v['first_proof_cold_s']:.2f} s",
                    "",
                    "",
                )
            )
    for name, why in d.get("skipped", {}).items():
        rows.append(("audit", f"{name}: skipped", why, "", ""))
    return rows


def peer_rows(d: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    for name, s in d.get("summary", {}).items():
        rows.append(
            (
                "peer",
                f"{name}, c={d['concurrency']}: req/s | p50 | p99 | CPU/req gateway + subgraphs",
                f"{s['throughput_rps']:.1f} | {s['p50_ms']:.1f} ms | {s['p99_ms']:.1f} ms | "
                f"{s.get('gateway_cpu_ms_per_request', float('nan')):.1f} + "
                f"{s.get('subgraphs_cpu_ms_per_request', float('nan')):.1f} ms",
                "",
                "",
            )
        )
    for key, r in d.get("ratios", {}).items():
        main = key == "hub/apollo"
        rows.append(
            (
                "peer",
                f"{key}: req/s | p50 | p99",
                f"{_x(r['throughput'])} | {_x(r['p50'])} | {_x(r['p99'])}",
                ">= 1x req/s" if main else "",
                verdict(r["throughput"] >= 1) if main else "",
            )
        )
    for name, f in d.get("failed", {}).items():
        died = f" server exited with {f['server_exit_code']};" if f.get("server_exit_code") is not None else ""
        sample = (f["error_samples"] or [""])[0][:48]
        rows.append(
            (
                "peer",
                f"{name}: FAILED under load (round {f['round']})",
                f"{f['errors']} errors / {f['ok']} ok ({f.get('ok_throughput_rps', 0):.1f} ok/s);{died} "
                f"e.g. {sample}; {f['server_log']}",
                ">= 1x req/s" if name == "hub" else "",
                "MISSED" if name == "hub" else "",
            )
        )
    for name, why in d.get("skipped", {}).items():
        rows.append(("peer", f"{name}: skipped", why, "", ""))
    return rows


def monitor_rows(d: dict[str, Any]) -> list[Row]:
    lat, sw = d["latency"], d["sweep"]
    per = ", ".join(f"{SHORT.get(k, k)} {v}" for k, v in sw["statements"].items())
    return [
        ("monitor", "demo backlog handled", f"{d['backlog']['events']} events in {d['backlog']['seconds']} s", "", ""),
        (
            "monitor",
            f"event to alert at {lat['offered_per_s']:.0f} events/s ({lat['alerts']} alerts)",
            f"p50 {lat['p50_ms']:.0f} ms, p99 {lat['p99_ms']:.0f} ms",
            "",
            "",
        ),
        (
            "monitor",
            f"sweep: {sw['residents']} residents, {sw['requests']} requests",
            f"{sw['residents_per_s']} residents/s",
            "",
            "",
        ),
        ("monitor", "sweep: SQL statements per department", per, "", ""),
    ]


BUILDERS = {
    "overhead": overhead_rows,
    "breakdown": breakdown_rows,
    "batch": batch_rows,
    "audit": audit_rows,
    "peer": peer_rows,
    "monitor": monitor_rows,
}


def collect() -> tuple[list[Row], dict[str, Any]]:
    rows: list[Row] = []
    machine: dict[str, Any] = {}
    for name, build in BUILDERS.items():
        path = RESULTS / f"{name}.json"
        if not path.exists():
            rows.append((name, "no result", f"({path.name} missing: not run, or failed)", "", ""))
            continue
        d = json.loads(path.read_text())
        machine = machine or d.get("machine", {})
        try:
            rows.extend(build(d))
        except (KeyError, TypeError, ValueError, ZeroDivisionError) as exc:
            rows.append((name, "unreadable result", f"{type(exc).__name__}: {exc}", "", ""))
        if d.get("quick"):
            rows.append((name, "mode", "--quick (smoke run; not for comparison)", "", ""))
    return rows, machine


def machine_line(m: dict[str, Any]) -> str:
    if not m:
        return ""
    return f"{m.get('nproc')} cores, {m.get('cpu')}, {m.get('memory')}, Python {m.get('python')}, {m.get('os')}"


def text_table(rows: list[Row]) -> str:
    header: Row = ("benchmark", "measure", "value", "target", "")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(5)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(header, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    last = ""
    for r in rows:
        first = r[0] if r[0] != last else ""
        last = r[0]
        lines.append("  ".join(c.ljust(w) for c, w in zip((first, *r[1:]), widths, strict=True)).rstrip())
    return "\n".join(lines)


def markdown_table(rows: list[Row]) -> str:
    lines = ["| benchmark | measure | value | target | |", "| --- | --- | --- | --- | --- |"]
    last = ""
    for r in rows:
        first = r[0] if r[0] != last else ""
        last = r[0]
        cells = [c.replace("|", "\\|") for c in (first, *r[1:])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--markdown", action="store_true")
    a = ap.parse_args(argv)
    rows, machine = collect()
    table = markdown_table(rows) if a.markdown else text_table(rows)
    print(table)
    print()
    print(f"machine: {machine_line(machine)}")
    (RESULTS / "table.md").write_text(markdown_table(rows) + f"\n\nMachine: {machine_line(machine)}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
