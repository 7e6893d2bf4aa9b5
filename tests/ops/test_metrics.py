"""/metrics over HTTP, parsed with prometheus_client's own text parser: exact counts for the requests made,
policy denials by coordinate, audit appends and tree size, breakers, department calls; no personal data in
any label; each app its own registry."""

from __future__ import annotations

from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from hub.db import audit_entries
from tests.conftest import Hub
from tests.ops.conftest import OwnHub

QUERY = "query($id: String!) { person(idNumber: $id) { name tax { incomeBand } } }"


async def scrape(hub: Hub) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    r = await hub.client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_metrics_scraped_and_parsed(own_hub: OwnHub) -> None:
    async with own_hub() as hub:
        golden = hub.data.golden_id
        allowed = await hub.query(QUERY, variables={"id": golden})
        assert allowed.status_code == 200 and "errors" not in allowed.json()
        denied = await hub.query(QUERY, client="linping-med", purpose="REF", variables={"id": golden})
        assert denied.status_code == 403, denied.text
        coordinates = sorted(d["coordinate"] for d in denied.json()["errors"][0]["extensions"]["denied"])
        assert coordinates  # what the plan refused, each counted once below
        anonymous = await hub.client.post("/graphql", json={"query": QUERY})
        assert anonymous.status_code == 401
        assert (await hub.client.get("/nope/330113")).status_code == 404

        m = await scrape(hub)
        req = "hub_graphql_requests_total"
        allow = {"route": "/graphql", "purpose": "CASE", "department": "civil_affairs"}
        assert value(m, req, **allow, decision="allow", status="200") == 1
        deny = {"route": "/graphql", "purpose": "REF", "department": "medical_security"}
        assert value(m, req, **deny, decision="deny", status="403") == 1
        assert value(m, req, route="/graphql", purpose="none", department="none", decision="deny", status="401") == 1
        assert sum(v for (n, _), v in m.items() if n == req) == 3
        for c in coordinates:
            assert value(m, "hub_policy_denials_total", department="medical_security", purpose="REF", coordinate=c) == 1
        assert sum(v for (n, _), v in m.items() if n == "hub_policy_denials_total") == len(coordinates)
        assert value(m, "hub_graphql_request_duration_seconds_count", purpose="CASE", decision="allow") == 1
        assert value(m, "hub_audit_append_duration_seconds_count", outcome="committed") == 3
        with hub.app.state.hub.engine.connect() as conn:
            entries = conn.execute(select(func.count()).select_from(audit_entries)).scalar()
        assert value(m, "hub_audit_tree_size") == entries
        # the allowed request read tax once; the denied one reached no department
        assert value(m, "hub_department_call_duration_seconds_count", department="tax", outcome="ok") == 1
        assert value(m, "hub_breaker_state", department="tax", state="closed") == 1
        assert value(m, "hub_breaker_state", department="tax", state="open") == 0
        # every HTTP request by route: two tokens issued, three GraphQL answers, an unknown path, this scrape
        assert value(m, "hub_http_requests_total", route="/oauth/token", method="POST", status="200") == 2
        assert value(m, "hub_http_requests_total", route="/graphql", method="POST", status="403") == 1
        assert value(m, "hub_http_requests_total", route="other", method="GET", status="404") == 1
        # no resident ID, officer, case reference or client id anywhere in the labels
        labels = {v for (_, ls) in m for _, v in ls}
        for secret in (golden, "officer-wang", "CASE-1", "linping-ca", "linping-med", "/nope/330113"):
            assert not any(secret in v for v in labels), secret


async def test_department_failures_and_open_breaker_are_counted(own_hub: OwnHub) -> None:
    async with own_hub(breaker_threshold=1, department_urls={"tax": "sqlite:////nonexistent/dir/tax.sqlite"}) as hub:
        for _ in range(2):
            r = await hub.query(QUERY, variables={"id": hub.data.golden_id})
            assert r.status_code == 200
            assert r.json()["errors"][0]["extensions"]["code"] == "UPSTREAM_UNAVAILABLE"
        m = await scrape(hub)
        assert value(m, "hub_department_call_duration_seconds_count", department="tax", outcome="failed") == 1
        assert value(m, "hub_department_call_duration_seconds_count", department="tax", outcome="circuit_open") == 1
        assert value(m, "hub_breaker_state", department="tax", state="open") == 1
        assert value(m, "hub_breaker_failures", department="tax") == 1
        assert value(m, "hub_graphql_requests_total", **_allowed()) == 2


def _allowed() -> dict[str, Any]:
    return {"route": "/graphql", "purpose": "CASE", "department": "civil_affairs", "decision": "allow", "status": "200"}


async def test_each_app_counts_apart(own_hub: OwnHub, hub: Hub) -> None:
    async with own_hub() as other:
        before = value(await scrape(hub), "hub_http_requests_total", route="/livez", method="GET", status="200")
        assert (await other.client.get("/livez")).status_code == 200
        assert value(await scrape(other), "hub_http_requests_total", route="/livez", method="GET", status="200") == 1
        after = value(await scrape(hub), "hub_http_requests_total", route="/livez", method="GET", status="200")
        assert after == before


async def test_console_requests_are_labelled_by_their_route_template(own_hub: OwnHub) -> None:
    async with own_hub() as hub:
        assert (await hub.client.get("/console/login")).status_code == 200
        entry = await hub.client.get("/console/entry/5")  # not signed in: sent to the sign-in page
        resident = await hub.client.get(f"/console/resident/{hub.data.golden_id}")
        m = await scrape(hub)
        assert value(m, "hub_http_requests_total", route="/console/login", method="GET", status="200") == 1
        assert (
            value(
                m,
                "hub_http_requests_total",
                route="/console/entry/{seq:int}",
                method="GET",
                status=str(entry.status_code),
            )
            == 1
        )
        assert (
            value(
                m,
                "hub_http_requests_total",
                route="/console/resident/{subject:str}",
                method="GET",
                status=str(resident.status_code),
            )
            == 1
        )
        assert sum(v for (n, ls), v in m.items() if n == "hub_http_requests_total" and ("route", "other") in ls) == 0
        labels = {v for (_, ls) in m for _, v in ls}
        assert not any(hub.data.golden_id in v for v in labels)
