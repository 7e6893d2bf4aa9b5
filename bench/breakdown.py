"""Breakdown: where one hub request's time goes, step by step (the overhead query, one at a time, in-process).

The app is the real one (``hub.app.create_app``, audit on SQLite) driven over ``httpx.ASGITransport``; the
bench wraps the gateway's steps in timers (in this process only; nothing in ``hub/`` changes) and reports the
median wall time of each per request. ``execute`` is the part plain strawberry runs too (the resolvers and
their SQL); most of the rest is what the hub adds. Steps the hub no longer has are left out.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import inspect
import json
import time
from collections import defaultdict
from typing import Any

import httpx

from bench.common import CASE_CLIENT, HEADERS_CASE, POLICIES, fresh_dir, log, median, register_clients, write_result
from bench.overhead import bodies

GATEWAY_STEPS = [
    "read_body",
    "authenticate",
    "request_context",
    "parse_payload",
    "document_for_request",
    "parse_document",
    "named_ids",
    "check_limits",
    "validate",
    "plan_operation",
    "execute",
    "delegate_unresolved",
    "count_out_of_area",
    "audit_digests",
    "counted",
]


SHARED = ["parse_document", "validate", "execute"]  # plain strawberry parses, validates and executes too
HUB_ONLY = [
    "authenticate",
    "request_context",
    "document_for_request",
    "named_ids",
    "check_limits",
    "plan_operation",
    "lookup-miss budget (before)",
    "delegate_unresolved",
    "count_out_of_area",
    "audit_digests",
    "audit append (durable, fail closed)",
    "counted",
]


class Timers:
    def __init__(self) -> None:
        self.current: dict[str, float] = defaultdict(float)
        self.requests: list[dict[str, float]] = []

    def wrap(self, name: str, fn: Any) -> Any:
        timers = self

        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def awrapper(*args: Any, **kwargs: Any) -> Any:
                t0 = time.perf_counter()
                try:
                    return await fn(*args, **kwargs)
                finally:
                    timers.current[name] += time.perf_counter() - t0

            return awrapper

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            result = fn(*args, **kwargs)
            if inspect.isawaitable(result):  # graphql-core's execute returns an awaitable for async resolvers

                async def finish() -> Any:
                    try:
                        return await result
                    finally:
                        timers.current[name] += time.perf_counter() - t0

                return finish()
            timers.current[name] += time.perf_counter() - t0
            return result

        return wrapper

    def wrap_thread(self, name: str, fn: Any) -> Any:
        """A function the hub runs in a worker thread: its own time, not the hop to the thread."""
        return self.wrap(name, fn)


async def run(requests: int) -> dict[str, Any]:
    import hub.app
    import hub.gateway
    import hub.state
    from hub.settings import Settings

    root = fresh_dir("breakdown")
    secrets = register_clients("", root)
    app = hub.app.create_app(Settings(data_dir=root, policy_dir=POLICIES, token_ttl=7200), sign_interval=3600)
    state = app.state.hub
    timers = Timers()
    for step in GATEWAY_STEPS:
        if hasattr(hub.gateway, step):
            setattr(hub.gateway, step, timers.wrap(step, getattr(hub.gateway, step)))
    hub.app.handle = timers.wrap("total", hub.app.handle)  # type: ignore[attr-defined]
    if hasattr(hub.state, "verify_token"):
        hub.state.verify_token = timers.wrap("  token signature and claims", hub.state.verify_token)  # type: ignore[attr-defined]
    state.clients.aget = timers.wrap("  client registry row", state.clients.aget)
    state.misses.before = timers.wrap("lookup-miss budget (before)", state.misses.before)
    state.audit.append = timers.wrap("audit append (durable, fail closed)", state.audit.append)
    state.audit.write = timers.wrap_thread("  audit transaction (in a thread)", state.audit.write)

    reqs = bodies(200)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub.bench") as client:
            r = await client.post(
                "/oauth/token", data={"grant_type": "client_credentials"}, auth=(CASE_CLIENT, secrets[CASE_CLIENT])
            )
            r.raise_for_status()
            headers = {**HEADERS_CASE, "authorization": f"Bearer {r.json()['access_token']}"}
            headers["content-type"] = "application/json"
            cpu0 = 0.0
            for i in range(30 + requests):
                if i == 30:
                    cpu0 = time.process_time()
                timers.current = defaultdict(float)
                t0 = time.perf_counter()
                resp = await client.post("/graphql", content=reqs[i % len(reqs)], headers=headers)
                timers.current["client round trip (ASGI)"] = time.perf_counter() - t0
                if resp.status_code != 200 or "errors" in resp.json():
                    raise RuntimeError(f"breakdown request failed: {resp.text[:500]}")
                if i >= 30:
                    timers.requests.append(dict(timers.current))
            cpu_ms = (time.process_time() - cpu0) * 1000 / requests
    steps: dict[str, float] = {}
    seen = list(timers.requests[0])
    order = ["client round trip (ASGI)", "total", "read_body", "authenticate", "  token signature and claims"]
    order += ["  client registry row", *GATEWAY_STEPS[2:10], "lookup-miss budget (before)", *GATEWAY_STEPS[10:14]]
    order += ["audit append (durable, fail closed)", "counted"]
    order += ["  audit transaction (in a thread)"]
    names = [n for n in order if n in seen] + [n for n in seen if n not in order]
    for name in names:
        steps[name] = round(median([r.get(name, 0.0) for r in timers.requests]) * 1000, 3)
    total = steps.get("total", 0.0)
    shared = sum(steps.get(k, 0.0) for k in SHARED)
    own = sum(steps.get(k, 0.0) for k in HUB_ONLY)
    return {
        "requests": requests,
        # CPU of the whole process (the hub, its worker threads and the in-process client) per request
        "process_cpu_ms_per_request": round(cpu_ms, 3),
        "steps_ms_median": steps,
        "shared_with_plain_ms": round(shared, 3),
        "hub_only_ms": round(own, 3),
        "hub_only_share": round(own / total, 3) if total else None,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--requests", type=int, default=None)
    a = ap.parse_args(argv)
    result = asyncio.run(run(a.requests or (100 if a.quick else 400)))
    log("breakdown (median ms per request): " + json.dumps(result["steps_ms_median"]))
    log(f"breakdown: process CPU {result['process_cpu_ms_per_request']} ms per request")
    write_result("breakdown", {"quick": a.quick, **result})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
