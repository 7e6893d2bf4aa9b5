"""Alerts and approved operations in the console, over real HTTP: the alerts read-only (the resident as the
audit log's pseudonym, never the ID number), and approving or retiring a pending document from the console
through the same desk as `hub operations` (planned against the policies; a document they deny cannot be
approved), each an audit entry naming the officer."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

from hub.monitor.alerts import NewAlert
from hub.store.operations import document_id
from tests.console.conftest import OFFICER, ConsoleHub, csrf_of, sign_in
from tests.console.test_console_http import client, newest, tail

ALLOWED = "query Visit($id: String!) { person(idNumber: $id) { name civilAffairs { tier } } }"
DENIED = "query Tax($id: String!) { person(idNumber: $id) { name tax { incomeBand } } }"


def make_alert(hub: ConsoleHub, rule: str = "M1") -> Any:
    """An open alert of ``rule`` for the golden resident (one rule has one open alert per resident)."""
    alerts = hub.app.state.hub.alerts  # type: ignore[attr-defined]
    new = NewAlert(
        rule_id=rule,
        id_number=hub.golden_id,
        area_code="330113001",
        area_name="临平区运河街道",
        source="disabled_persons",
        event_kind="disability_changed",
        occurred_on=date(2026, 11, 30),
        matched=[
            {"coordinate": "DisabilityRecord.grade", "form": "exact", "value": 2, "condition": "grade ≤ 2"}
        ],  # fmt: skip
        programmes=[
            {
                "id": "P01",
                "name_zh": "困难残疾人生活补贴",
                "name_en": "Living allowance",
                "legal_basis": "国发〔2015〕52号",
                "reason": "grade 2",
                "monthly_amount": 300,
                "amount_basis": "demo",
            }
        ],  # fmt: skip
        estimated_monthly=300,
        due_on=date(2026, 12, 7),
        due_basis="5 working days",
    )
    new.id = alerts.new_id()
    alerts.finish(None, 0, [], [new], [])
    return alerts.get(new.id)


def submit(hub: ConsoleHub, text: str, client_id: str = "linping-ca", purpose: str = "CASE") -> str:
    hub.app.state.hub.operations.submit(client_id, purpose, text, "dev@linping")  # type: ignore[attr-defined]
    return document_id(text)


def test_alerts_are_shown_read_only_with_the_resident_as_a_pseudonym(console_hub: ConsoleHub) -> None:
    alert = make_alert(console_hub)
    pseudonym = console_hub.app.state.hub.audit.pseudonym(console_hub.golden_id)  # type: ignore[attr-defined]
    with client(console_hub) as c:
        sign_in(c)
        before = newest(console_hub)
        page = c.get("/console/alerts?status=new")
        assert page.status_code == 200 and f'href="/console/alerts/{alert.id}"' in page.text
        assert f'href="/console/resident/{pseudonym}"' in page.text and console_hub.golden_id not in page.text
        detail = c.get(f"/console/alerts/{alert.id}")
        assert detail.status_code == 200 and console_hub.golden_id not in detail.text
        assert 'id="alert-rule">M1<' in detail.text and "困难残疾人生活补贴" in detail.text
        assert "<form" not in detail.text.split("</header>")[1]  # read-only: no form besides sign-out
        # its history in China time, to the minute, as every other time in the console
        [created] = alert.history
        shown_at = datetime.fromisoformat(created["at"]).replace(tzinfo=UTC).astimezone(timezone(timedelta(hours=8)))
        history = detail.text.split('<table id="history">')[1].split("</table>")[0]
        assert f"<td>{shown_at:%Y-%m-%d %H:%M}</td>" in history and created["at"] not in history
        assert c.get("/console/alerts?status=bogus").status_code == 400
        assert c.get("/console/alerts/AL-none").status_code == 404
    listing, shown, bad, missing = tail(console_hub, before)
    assert (listing["operation_name"], listing["officer"], listing["purpose"]) == ("console.alerts", OFFICER, "AUDIT")
    assert listing["subjects"] == [] and listing["console"]["filters"] == {"status": "new"}
    assert (shown["operation_name"], shown["subjects"], shown["console"]) == (
        "console.alert",
        [pseudonym],
        {"alert": alert.id},
    )
    assert (bad["decision"], missing["decision"], missing["status"]) == ("deny", "deny", 404)


def test_an_officer_approves_a_pending_document_and_cannot_approve_one_the_policies_deny(
    console_hub: ConsoleHub,
) -> None:
    ok_doc = submit(console_hub, ALLOWED)
    bad_doc = submit(console_hub, DENIED, "hz-utilities", "REF")
    store = console_hub.app.state.hub.operations  # type: ignore[attr-defined]
    with client(console_hub) as c:
        sign_in(c)
        listing = c.get("/console/operations")
        assert ok_doc[:23] in listing.text and bad_doc[:23] in listing.text
        page = c.get(f"/console/operation?document={ok_doc}&consumer=linping-ca&purpose=CASE")
        assert 'id="op-status">pending<' in page.text and "The policies allow it" in page.text
        csrf = csrf_of(page.text)
        form = {"document": ok_doc, "consumer": "linping-ca", "purpose": "CASE"}
        assert c.post("/console/operations/approve", data=form).status_code == 403  # no CSRF token
        assert store.get(ok_doc, "linping-ca", "CASE").status == "pending"
        before = newest(console_hub)
        r = c.post("/console/operations/approve", data={**form, "csrf": csrf})
        assert r.status_code == 303 and r.headers["location"].startswith("/console/operation?document=sha256%3A")
        op = store.get(ok_doc, "linping-ca", "CASE")
        assert (op.status, op.approved_by) == ("approved", OFFICER)
        (approval,) = tail(console_hub, before)
        assert (approval["route"], approval["officer"], approval["client_id"], approval["purpose"]) == (
            "operations",
            OFFICER,
            "linping-ca",
            "CASE",
        )
        assert approval["operation"] == {"action": "approve", "document_id": ok_doc, "status": "approved"}
        assert approval["console"] == {"via": "console"} and approval["decision"] == "allow"
        # the denied one: the page says why, and approving is refused and audited
        page = c.get(f"/console/operation?document={bad_doc}&consumer=hz-utilities&purpose=REF")
        assert "The policies would deny it" in page.text and "TaxRecord.incomeBand" in page.text
        before = newest(console_hub)
        r = c.post("/console/operations/approve", data={"document": bad_doc, "consumer": "hz-utilities",
                                                        "purpose": "REF", "csrf": csrf})  # fmt: skip
        assert r.status_code == 403 and "OPERATION_REFUSED" in r.text and 'id="refusals"' in r.text
        assert store.get(bad_doc, "hz-utilities", "REF").status == "pending"
        (refusal,) = tail(console_hub, before)
        assert (refusal["decision"], refusal["officer"], refusal["operation"]["action"]) == ("deny", OFFICER, "approve")
        assert any(x.startswith("TaxRecord.incomeBand") for x in refusal["reasons"])
        # retire the approved one
        r = c.post("/console/operations/retire", data={**form, "csrf": csrf})
        assert r.status_code == 303
        op = store.get(ok_doc, "linping-ca", "CASE")
        assert (op.status, op.retired_by) == ("retired", OFFICER)
        again = c.post("/console/operations/approve", data={**form, "csrf": csrf})
        assert again.status_code == 400 and "OPERATION_STATE" in again.text
