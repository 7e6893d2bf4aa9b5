"""Issue 11 §6: the officers' API needs purpose AUDIT as well as the officer role; recording a household
authorization needs purpose VER, a household registered in the caller's area, at most a year's validity, and
its audit entry names the household's residents."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from hub.departments import households, residents
from hub.store.authorizations import one_year_after
from hub.store.clients import ClientStore
from tests.conftest import Hub

OFFICER_MON = "officer-mon"  # an officer client also registered for MON


@pytest.fixture
async def officer_mon(hub: Hub) -> str:
    store: ClientStore = hub.app.state.hub.clients
    if store.get(OFFICER_MON) is None:
        _, hub.secrets[OFFICER_MON] = store.add(OFFICER_MON, "audit_office", "33", ["AUDIT", "MON"], ["officer"])
    return OFFICER_MON


@pytest.mark.parametrize(
    ("query", "coordinate"),
    [
        ("{ auditEntries(first: 1) { hasMore } }", "Query.auditEntries"),
        ('{ residentAccessReport(idNumber: "11010519491231002X") { seq } }', "Query.residentAccessReport"),
        ("{ auditTreeHead { treeSize } }", "Query.auditTreeHead"),
        ("{ auditInclusionProof(seq: 0) { path } }", "Query.auditInclusionProof"),
        ("{ auditConsistencyProof(firstSize: 1) { path } }", "Query.auditConsistencyProof"),
    ],
)
async def test_officer_api_needs_purpose_audit(hub: Hub, officer_mon: str, query: str, coordinate: str) -> None:
    r = await hub.query(query, client=officer_mon, purpose="MON", case=None)
    assert r.status_code == 403, r.text
    error = r.json()["errors"][0]
    assert error["extensions"]["code"] == "POLICY_DENIED"
    assert error["extensions"]["denied"] == [{"coordinate": coordinate, "reason": "requires purpose AUDIT"}]
    assert r.json()["data"] is None


async def test_the_same_officer_is_answered_under_audit(hub: Hub, officer_mon: str) -> None:
    r = await hub.query("{ auditTreeHead { treeSize } }", client=officer_mon, purpose="MON", case=None)
    assert r.status_code == 403
    q = '{ auditEntries(first: 1, filter: {clientId: "officer-mon", purpose: "MON"}) { entries { purpose } } }'
    r = await hub.query(q, client=officer_mon, purpose="AUDIT", case=None)
    assert r.status_code == 200, r.text
    assert r.json()["data"]["auditEntries"]["entries"] == [{"purpose": "MON"}]  # its refused request under MON


RECORD = """mutation($h: String!, $from: Date!, $to: Date!) { recordAuthorization(householdId: $h, signer: "户主",
    validFrom: $from, validTo: $to, documentSha256: "%s") { id householdId validTo } }""" % ("d" * 64)


def household(hub: Hub, inside: bool) -> tuple[str, list[str]]:
    """A household registered in Linping (330113) or outside it, and its residents' ID numbers."""
    with hub.app.state.hub.sources["public_security"].engine.connect() as conn:
        where = households.c.area_code.startswith("330113")
        hid = conn.execute(
            select(households.c.household_id)
            .where(where if inside else ~where, households.c.household_id != hub.data.golden_household)
            .order_by(households.c.household_id.desc())
            .limit(1)
        ).scalar_one()
        ids = conn.execute(select(residents.c.id_number).where(residents.c.household_id == hid)).scalars().all()
    return hid, sorted(ids)


def record_vars(hid: str, valid_to: date | None = None) -> dict[str, Any]:
    today = date.today()  # the suite's hubs run on the machine's date (tests/conftest.py working_clock)
    return {"h": hid, "from": today.isoformat(), "to": (valid_to or one_year_after(today)).isoformat()}


def code_of(r: Any) -> str:
    return str(r.json()["errors"][0]["extensions"]["code"])


async def test_record_authorization_names_the_households_residents(hub: Hub, audit_tail: Any) -> None:
    hid, ids = household(hub, inside=True)
    r = await hub.query(RECORD, purpose="VER", variables=record_vars(hid))
    assert r.status_code == 200, r.text
    assert r.json()["data"]["recordAuthorization"]["householdId"] == hid
    entry = audit_tail()[-1]
    log = hub.app.state.hub.audit
    assert entry["subjects"] == sorted(log.pseudonym(i) for i in ids) and len(ids) >= 1
    assert entry["subject_count"] == len(ids)


async def test_record_authorization_needs_purpose_ver(hub: Hub) -> None:
    hid, _ = household(hub, inside=True)
    r = await hub.query(RECORD, purpose="STAT", case=None, variables=record_vars(hid))
    assert r.status_code == 403
    assert r.json()["errors"][0]["extensions"]["denied"] == [
        {"coordinate": "Mutation.recordAuthorization", "reason": "requires purpose VER"}
    ]
    r = await hub.query("mutation { revokeAuthorization(id: 1) { revoked } }", purpose="CASE")
    assert r.json()["errors"][0]["extensions"]["denied"] == [
        {"coordinate": "Mutation.revokeAuthorization", "reason": "requires purpose VER"}
    ]


async def test_record_authorization_refuses_a_household_outside_the_area(hub: Hub, audit_tail: Any) -> None:
    hid, _ = household(hub, inside=False)
    r = await hub.query(RECORD, purpose="VER", variables=record_vars(hid))
    assert r.json()["data"] is None and code_of(r) == "HOUSEHOLD_NOT_IN_AREA"
    outside = r.json()["errors"][0]["message"]
    assert outside == f"household '{hid}' is not registered in your area (330113)"
    r = await hub.query(RECORD, purpose="VER", variables=record_vars("H330113999999"))  # not registered at all
    assert code_of(r) == "HOUSEHOLD_NOT_IN_AREA"
    assert r.json()["errors"][0]["message"] == "household 'H330113999999' is not registered in your area (330113)"
    assert [e["subjects"] for e in audit_tail()] == [[], []]  # nothing about residents elsewhere is looked up


@pytest.mark.parametrize("valid_to", [date(2099, 12, 31), "a year and a day"])
async def test_record_authorization_refuses_more_than_a_year(hub: Hub, valid_to: Any) -> None:
    hid, _ = household(hub, inside=True)
    latest = one_year_after(date.today())
    to = latest + timedelta(days=1) if valid_to == "a year and a day" else valid_to
    r = await hub.query(RECORD, purpose="VER", variables=record_vars(hid, to))
    assert r.json()["data"] is None and code_of(r) == "AUTHORIZATION_TOO_LONG"
    assert r.json()["errors"][0]["message"] == (
        f"an authorization is valid for at most one year: validTo may be {latest} at the latest"
    )


def test_one_year_after() -> None:
    assert one_year_after(date(2026, 3, 1)) == date(2027, 3, 1)
    assert one_year_after(date(2028, 2, 29)) == date(2029, 2, 28)
