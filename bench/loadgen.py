"""A small closed-loop HTTP load generator: fixed concurrency, warm-up, fixed duration, latency percentiles.

Run it in its own process (``python -m bench.loadgen``) so it never shares an event loop or a GIL with the
server it measures. Each of ``--concurrency`` workers keeps one keep-alive HTTP/1.1 connection and sends
POSTs back to back, cycling through the request bodies. Only 127.0.0.1 / localhost targets are accepted,
and every run is bounded in time and in request count.

    python -m bench.loadgen --url http://127.0.0.1:8000/graphql --spec spec.json -c 16 -d 10 -w 2

``spec.json``: ``{"headers": {...}, "bodies": ["<json text>", ...]}``. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any
from urllib.parse import urlsplit

import httpx

from bench.common import percentile

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


async def run(
    url: str,
    headers: dict[str, str],
    bodies: list[bytes],
    *,
    concurrency: int,
    duration: float,
    warmup: float,
    max_requests: int,
    timeout: float,
) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    error_samples: list[str] = []
    measuring = False
    stop = False
    sent = 0
    completed_total = 0
    headers = {"content-type": "application/json", **headers}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async with httpx.AsyncClient(limits=limits, timeout=timeout, headers=headers) as client:

        async def worker(offset: int) -> None:
            nonlocal errors, sent, completed_total
            i = offset
            while not stop and sent < max_requests:
                body = bodies[i % len(bodies)]
                i += 1
                sent += 1
                t0 = time.perf_counter()
                try:
                    r = await client.post(url, content=body)
                    ok = r.status_code == 200 and b'"errors"' not in r.content
                    detail = f"{r.status_code} {r.text[:200]}"
                except httpx.HTTPError as exc:
                    ok, detail = False, f"{type(exc).__name__}: {exc}"
                elapsed = time.perf_counter() - t0
                completed_total += 1
                if not measuring:
                    continue
                if ok:
                    latencies.append(elapsed)
                else:
                    errors += 1
                    if len(error_samples) < 3:
                        error_samples.append(detail)

        tasks = [asyncio.create_task(worker(k * 7919)) for k in range(concurrency)]
        await asyncio.sleep(warmup)
        measuring = True
        started = time.perf_counter()
        await asyncio.sleep(duration)
        measuring = False
        elapsed = time.perf_counter() - started
        stop = True
        await asyncio.gather(*tasks, return_exceptions=True)
    ms = [x * 1000 for x in latencies]
    completed = len(latencies) + errors
    return {
        "concurrency": concurrency,
        "duration_s": round(elapsed, 3),
        "requests": completed,
        "ok": len(latencies),
        "completed_total": completed_total,
        "errors": errors,
        "error_samples": error_samples,
        "throughput_rps": round(len(latencies) / elapsed, 2) if elapsed > 0 else 0.0,
        "p50_ms": round(percentile(ms, 50), 3),
        "p90_ms": round(percentile(ms, 90), 3),
        "p99_ms": round(percentile(ms, 99), 3),
        "max_ms": round(max(ms), 3) if ms else None,
        "mean_ms": round(sum(ms) / len(ms), 3) if ms else None,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", required=True)
    p.add_argument("--spec", required=True, help="JSON file: {headers: {...}, bodies: [...]}")
    p.add_argument("-c", "--concurrency", type=int, default=16)
    p.add_argument("-d", "--duration", type=float, default=10.0, help="measured seconds (at most 300)")
    p.add_argument("-w", "--warmup", type=float, default=2.0, help="seconds of unmeasured warm-up (at most 60)")
    p.add_argument("--max-requests", type=int, default=500_000, help="hard cap on requests sent")
    p.add_argument("--timeout", type=float, default=30.0)
    a = p.parse_args(argv)
    host = urlsplit(a.url).hostname or ""
    if host not in LOCAL_HOSTS:
        print(f"refusing to load {host!r}: only 127.0.0.1 / localhost targets are allowed", file=sys.stderr)
        return 2
    if not 1 <= a.concurrency <= 512 or not 0 < a.duration <= 300 or not 0 <= a.warmup <= 60:
        print("concurrency must be 1..512, duration 0..300 s, warm-up 0..60 s", file=sys.stderr)
        return 2
    with open(a.spec, encoding="utf-8") as f:
        spec = json.load(f)
    bodies = [b.encode("utf-8") for b in spec["bodies"]]
    result = asyncio.run(
        run(
            a.url,
            dict(spec.get("headers", {})),
            bodies,
            concurrency=a.concurrency,
            duration=a.duration,
            warmup=a.warmup,
            max_requests=a.max_requests,
            timeout=a.timeout,
        )
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
