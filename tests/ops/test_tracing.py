"""OpenTelemetry traces through the real app, into an in-memory exporter: a server span per request with the
hub's attributes, a span per gateway step beneath it, a span per SQL statement; no ID number, officer, case
reference, variable value or query string in any attribute."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from tests.ops.conftest import OwnHub

QUERY = "query($id: String!) { person(idNumber: $id) { name tax { incomeBand } } }"
STEPS = ["read_body", "authenticate", "headers", "payload", "parse", "limits", "validate_and_plan", "execute", "audit"]


def attribute_text(spans: list[ReadableSpan]) -> str:
    return "\n".join(f"{s.name} {k}={v}" for s in spans for k, v in (s.attributes or {}).items())


async def test_a_request_is_traced_without_personal_data(own_hub: OwnHub) -> None:
    exporter = InMemorySpanExporter()
    async with own_hub(span_exporter=exporter) as hub:
        golden = hub.data.golden_id
        await hub.token("linping-ca")
        exporter.clear()
        r = await hub.query(QUERY, variables={"id": golden})
        assert r.status_code == 200
        spans = list(exporter.get_finished_spans())
        [server] = [s for s in spans if s.kind == SpanKind.SERVER]
        attributes: dict[str, Any] = dict(server.attributes or {})
        assert {k: v for k, v in attributes.items() if k.startswith("hub.")} == {
            "hub.purpose": "CASE",
            "hub.department": "civil_affairs",
            "hub.decision": "allow",
            "hub.status": 200,
        }
        children = [s for s in spans if s.parent is not None and s.parent.span_id == server.context.span_id]
        assert [s.name for s in children if s.name.startswith("hub.step.")] == [f"hub.step.{x}" for x in STEPS]
        steps = [s for s in children if s.name.startswith("hub.step.")]
        assert all(a.end_time <= b.start_time + 1 for a, b in zip(steps, steps[1:], strict=False))  # in order
        # SQL statements: the hub database and the departments read, placeholders only
        sql = [s for s in spans if (s.attributes or {}).get("db.system") == "sqlite"]
        statements = [str((s.attributes or {}).get("db.statement", "")) for s in sql]
        for table in ("residents", "income"):  # household registration and tax, each one statement
            assert sum(f"FROM {table}" in x for x in statements) == 1, statements
        assert any("INSERT INTO audit_entries" in x for x in statements), statements
        text = attribute_text(spans)
        for secret in (golden, "officer-wang", "CASE-1", hub.secrets["linping-ca"]):
            assert secret not in text, secret

        exporter.clear()
        assert (await hub.client.get(f"/livez?id={golden}")).status_code == 200
        [livez] = [s for s in exporter.get_finished_spans() if s.kind == SpanKind.SERVER]
        assert golden not in attribute_text([livez]) and (livez.attributes or {}).get("http.target") == "/livez"


async def test_denied_request_has_its_steps_up_to_the_plan(own_hub: OwnHub) -> None:
    exporter = InMemorySpanExporter()
    async with own_hub(span_exporter=exporter) as hub:
        await hub.token("linping-med")
        exporter.clear()
        r = await hub.query(QUERY, client="linping-med", purpose="REF", variables={"id": hub.data.golden_id})
        assert r.status_code == 403
        spans = list(exporter.get_finished_spans())
        [server] = [s for s in spans if s.kind == SpanKind.SERVER]
        assert (server.attributes or {})["hub.decision"] == "deny"
        steps = [s.name[len("hub.step.") :] for s in spans if s.name.startswith("hub.step.")]
        assert steps == [
            "read_body",
            "authenticate",
            "headers",
            "payload",
            "parse",
            "limits",
            "validate_and_plan",
            "audit",
        ]
