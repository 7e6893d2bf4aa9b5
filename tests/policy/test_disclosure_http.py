"""Policies enforced through the real app: every granted field answers, every other field refuses the whole
operation before any source is touched, and no path (aliases, fragments, variables, introspection) leaks."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from typing import Any

import pytest

from hub.clock import CHINA
from hub.schema import build_schema, catalog_of
from tests.conftest import Hub, without_receipt
from tests.policy.expected import EXPECTED

CATALOG = catalog_of(build_schema())

# where each type hangs below `person(idNumber: $id)`
PATHS = {
    "Person": [],
    "Household": ["household"],
    "CivilAffairsRecord": ["civilAffairs"],
    "DisabilityRecord": ["disability"],
    "MedicalRecord": ["medical"],
    "EmploymentRecord": ["employment"],
    "TaxRecord": ["tax"],
    "RealEstateRecord": ["realEstate"],
    "Property": ["realEstate", "properties"],
    "VehicleRecord": ["vehicles"],
    "Vehicle": ["vehicles", "vehicles"],
    "BusinessRecord": ["business"],
    "BusinessRole": ["business", "roles"],
    "ProvidentFundRecord": ["providentFund"],
    "EducationRecord": ["education"],
}
STATISTICS = "Statistics"
ARGS = {
    "changedWithinDays": "(days: 30)",
    "outOfPocket12mAtLeast": "(threshold: 20000)",
    "annualIncomeBelow": "(threshold: 30000)",
}

# (test client, consumer department, purpose)
PAIRS = [("linping-ca", "civil_affairs", p) for p in ("VER", "MON", "CASE", "STAT")] + [
    ("linping-med", "medical_security", "REF"),
    ("hz-utilities", "utilities", "REF"),
]


def field_query(coordinate: str) -> str:
    type_name, field = coordinate.split(".")
    if type_name == STATISTICS:
        return f'{{ statistics(area: "330113") {{ {field} {{ key count }} }} }}'

    inner = field + ARGS.get(field, "")
    for step in reversed(PATHS[type_name]):
        inner = f"{step} {{ {inner} }}"
    return f"query($id: String!) {{ person(idNumber: $id) {{ {inner} }} }}"


@pytest.fixture(scope="module", autouse=True)
async def golden_authorized(hub: Hub) -> None:
    store = hub.app.state.hub.authorizations
    if not store.list(hub.data.golden_household):
        today = date.today()
        store.record(
            hub.data.golden_household,
            "civil_affairs",
            "钱国良",
            today - timedelta(days=30),
            today + timedelta(days=300),
            "a" * 64,
            "test",
        )


@pytest.mark.parametrize(("client", "consumer", "purpose"), PAIRS, ids=[f"{c}-{p}" for _, c, p in PAIRS])
async def test_every_field_for_registered_pairs(hub: Hub, client: str, consumer: str, purpose: str) -> None:
    granted = EXPECTED[(consumer, purpose)]
    for coordinate in sorted(CATALOG):
        r = await hub.query(
            field_query(coordinate), client=client, purpose=purpose, variables={"id": hub.data.golden_id}
        )
        if coordinate in granted:
            assert r.status_code == 200, (coordinate, r.text)
            assert "errors" not in r.json(), (coordinate, r.text)
            assert list(r.json()["data"].values())[0] is not None, coordinate
        else:
            assert r.status_code == 403, (coordinate, r.text)
            err = r.json()["errors"][0]
            assert err["extensions"]["code"] == "POLICY_DENIED"
            assert [d["coordinate"] for d in err["extensions"]["denied"]] == [coordinate]
            assert r.json()["data"] is None


async def test_denial_lists_every_denied_field_and_touches_no_source(hub: Hub, audit_tail: Any) -> None:
    sources = hub.app.state.hub.sources
    before = {k: s.statements for k, s in sources.items()}
    q = """query($id: String!) { person(idNumber: $id) { name idNumberMasked
        tax { annualWageIncome incomeBand } medical { outOfPocket12m } disability { grade } } }"""
    r = await hub.query(q, purpose="MON", variables={"id": hub.data.golden_id})
    assert r.status_code == 403
    denied = r.json()["errors"][0]["extensions"]["denied"]
    assert denied == [
        {
            "coordinate": "Person.idNumberMasked",
            "reason": "no grant of Person.idNumberMasked to civil_affairs for purpose MON",
        },
        {
            "coordinate": "TaxRecord.annualWageIncome",
            "reason": "no grant of TaxRecord.annualWageIncome to civil_affairs for purpose MON",
        },
        {
            "coordinate": "MedicalRecord.outOfPocket12m",
            "reason": "no grant of MedicalRecord.outOfPocket12m to civil_affairs for purpose MON",
        },
        {
            "coordinate": "DisabilityRecord.grade",
            "reason": "no grant of DisabilityRecord.grade to civil_affairs for purpose MON",
        },
    ]
    assert {k: s.statements for k, s in sources.items()} == before
    entry = audit_tail()[-1]
    assert entry["decision"] == "deny" and entry["fields"] == [] and entry["subjects"] == []
    assert entry["requested_denied"] == [d["coordinate"] for d in denied]


async def test_masked_values_exact(hub: Hub) -> None:
    q = """query($id: String!) { person(idNumber: $id) { idNumberMasked nameMasked
        household { addressMasked } civilAffairs { isRecipient } medical { outOfPocket12m } } }"""
    r = await hub.query(q, client="linping-med", purpose="REF", variables={"id": hub.data.golden_id})
    assert without_receipt(r.json()) == {
        "data": {
            "person": {
                "idNumberMasked": hub.data.golden_id[:6] + "*" * 12,
                "nameMasked": "钱**",
                "household": {"addressMasked": "临平区运河街道****"},
                "civilAffairs": {"isRecipient": True},
                "medical": {"outOfPocket12m": 23500.0},
            }
        }
    }
    assert hub.data.golden_id not in r.text and "钱国良" not in r.text


async def test_bands_and_predicates_exact(hub: Hub) -> None:
    q = """query($id: String!, $t: Int!) { person(idNumber: $id) {
        medical { outOfPocket12mBand outOfPocket12mAtLeast(threshold: $t) }
        disability { isSevere changedWithinDays(days: 365) }
        tax { incomeBand } } }"""
    for t in (23500, 23501):  # only the thresholds the grant lists may be asked (tests/test_inference.py)
        r = await hub.query(q, purpose="MON", variables={"id": hub.data.golden_id, "t": t})
        assert r.status_code == 403 and r.json()["data"] is None
    # the golden certificate changed on 2026-10-20 (the demo data's fixed dates): ask 43 days and 366 days later,
    # on the hub's clock, so the answer does not depend on the day the suite runs
    with hub.at(datetime(2026, 12, 2, 10, 0, tzinfo=CHINA)):
        r = await hub.query(q, purpose="MON", variables={"id": hub.data.golden_id, "t": 20000})
    with hub.at(datetime(2027, 10, 21, 10, 0, tzinfo=CHINA)):
        later = await hub.query(q, purpose="MON", variables={"id": hub.data.golden_id, "t": 20000})
    assert later.json()["data"]["person"]["disability"] == {"isSevere": True, "changedWithinDays": False}
    assert "20000" not in json.dumps(r.json()["data"])  # the predicate never returns the compared value
    assert without_receipt(r.json()) == {
        "data": {
            "person": {
                "medical": {"outOfPocket12mBand": "ABOVE_20K", "outOfPocket12mAtLeast": True},
                "disability": {"isSevere": True, "changedWithinDays": True},
                "tax": {"incomeBand": None},  # no tax record at 74: null, not a guess
            }
        }
    }


async def test_one_threshold_per_predicate_per_request(hub: Hub, audit_tail: Any) -> None:
    q = """query($id: String!) { person(idNumber: $id) { medical {
        a: outOfPocket12mAtLeast(threshold: 20000) b: outOfPocket12mAtLeast(threshold: 22000) } } }"""
    r = await hub.query(q, purpose="MON", variables={"id": hub.data.golden_id})
    assert r.status_code == 403
    assert r.json()["errors"][0]["extensions"]["denied"] == [
        {
            "coordinate": "MedicalRecord.outOfPocket12mAtLeast",
            "reason": "a predicate may be asked with one threshold per request, not 2",
        }
    ]
    same = q.replace("22000", "20000")
    r = await hub.query(same, purpose="MON", variables={"id": hub.data.golden_id})
    assert r.status_code == 200 and r.json()["data"]["person"]["medical"] == {"a": True, "b": True}
    assert audit_tail()[-1]["predicate_args"] == {"MedicalRecord.outOfPocket12mAtLeast": {"threshold": 20000}}


@pytest.mark.parametrize(
    "query",
    [
        "query($id: String!) { person(idNumber: $id) { secret: name } }",
        "query($id: String!) { person(idNumber: $id) { ...F } } fragment F on Person { name }",
        "query($id: String!) { person(idNumber: $id) { ... on Person { idNumber } } }",
        "query($id: String!, $no: Boolean = false) { person(idNumber: $id) { nameMasked name @include(if: $no) } }",
        "query($id: String!) { person(idNumber: $id) { nameMasked ...A } } "
        "fragment A on Person { household { ...B } } fragment B on Household { address }",
        "query($id: String!) { person(idNumber: $id) { __typename } }",
        "query($id: String!) { person(idNumber: $id) { tax { __typename } } }",
    ],
    ids=[
        "alias",
        "fragment",
        "inline-fragment",
        "skipped-by-variable",
        "nested-fragments",
        "typename-only",
        "typename-under-record",
    ],
)
async def test_no_path_around_policy(hub: Hub, query: str) -> None:
    r = await hub.query(query, client="linping-med", purpose="REF", variables={"id": hub.data.golden_id})
    assert r.status_code == 403, r.text
    assert r.json()["data"] is None and r.json()["errors"][0]["extensions"]["code"] == "POLICY_DENIED"
    assert hub.data.golden_id not in r.text


async def test_introspection_is_off(hub: Hub) -> None:
    r = await hub.query("{ __schema { types { name } } }", client="linping-med", purpose="REF")
    assert r.status_code == 400
    assert r.json()["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"


async def test_no_field_suggestions(hub: Hub) -> None:
    r = await hub.query('{ person(idNumber: "11010519491231002X") { nam } }')
    assert r.status_code == 400
    assert "Did you mean" not in r.text and "name" not in r.json()["errors"][0]["message"].replace("'nam'", "")


async def test_authorization_required_for_verification(hub: Hub) -> None:
    # a household in the same district without an authorization: identity resolves, departments do not
    from sqlalchemy import select

    from hub.departments import residents

    with hub.app.state.hub.sources["public_security"].engine.connect() as conn:
        other = conn.execute(
            select(residents.c.id_number)
            .where(residents.c.area_code == "330113", residents.c.household_id != hub.data.golden_household)
            .limit(1)
        ).scalar_one()
    q = "query($id: String!) { person(idNumber: $id) { name employment { pensionMonthly } } }"
    r = await hub.query(q, purpose="VER", variables={"id": other})
    body = r.json()
    assert r.status_code == 200
    assert body["data"]["person"]["employment"] is None and body["data"]["person"]["name"]
    assert body["errors"][0]["extensions"]["code"] == "AUTHORIZATION_REQUIRED"
    assert body["errors"][0]["path"] == ["person", "employment"]
    r = await hub.query(q, purpose="VER", variables={"id": hub.data.golden_id})
    assert r.json()["data"]["person"]["employment"] == {"pensionMonthly": 260.0}


def _valid() -> tuple[str, str]:
    """A validity that covers the hub's today (the machine's date) and is at most a year long."""
    from datetime import date, timedelta

    start = date.today() - timedelta(days=30)
    return start.isoformat(), (start + timedelta(days=365)).isoformat()


async def test_record_and_revoke_authorization_by_mutation(hub: Hub) -> None:
    m = """mutation($h: String!) {{ recordAuthorization(householdId: $h, signer: "户主", validFrom: "{}",
        validTo: "{}", documentSha256: "{}") {{ id householdId department revoked }} }}""".format(*_valid(), "b" * 64)
    r = await hub.query(m, purpose="VER", variables={"h": "H330113000002"})
    assert r.status_code == 200, r.text
    rec = r.json()["data"]["recordAuthorization"]
    assert rec["householdId"] == "H330113000002" and rec["department"] == "civil_affairs" and not rec["revoked"]
    r = await hub.query(
        "mutation($i: Int!) { revokeAuthorization(id: $i) { revoked } }", purpose="VER", variables={"i": rec["id"]}
    )
    assert r.json()["data"]["revokeAuthorization"] == {"revoked": True}
    # without the clerk role: refused before execution
    r = await hub.query(m, client="xihu-ca", purpose="VER", variables={"h": "H330113000002"})
    assert r.status_code == 403
    assert r.json()["errors"][0]["extensions"]["denied"] == [
        {"coordinate": "Mutation.recordAuthorization", "reason": "requires the authorization_clerk role"}
    ]
    bad = m.replace("b" * 64, "not-a-hash")
    r = await hub.query(bad, purpose="VER", variables={"h": "H330113000002"})
    assert r.json()["errors"][0]["extensions"]["code"] == "BAD_ARGUMENT"


async def test_authorization_scope_limits_providers(hub: Hub) -> None:
    from sqlalchemy import select

    from hub.departments import residents

    with hub.app.state.hub.sources["public_security"].engine.connect() as conn:
        row = conn.execute(
            select(residents.c.id_number, residents.c.household_id)
            .where(
                residents.c.area_code == "330113",
                residents.c.household_id != hub.data.golden_household,
                residents.c.household_id != "H330113000002",
            )
            .limit(1)
        ).one()
    m = """mutation($h: String!) {{ recordAuthorization(householdId: $h, signer: "户主", validFrom: "{}",
        validTo: "{}", documentSha256: "{}", scope: ["hrss"]) {{ scope }} }}""".format(*_valid(), "c" * 64)
    r = await hub.query(m, purpose="VER", variables={"h": row.household_id})
    assert r.json()["data"]["recordAuthorization"]["scope"] == ["hrss"]
    q = "query($id: String!) { person(idNumber: $id) { employment { pensionType } tax { year } } }"
    r = await hub.query(q, purpose="VER", variables={"id": row.id_number})
    body = r.json()
    assert body["data"]["person"]["employment"] is not None and body["data"]["person"]["tax"] is None
    assert [(e["path"], e["message"]) for e in body["errors"]] == [
        (["person", "tax"], "the household's authorization does not cover tax")
    ]
    bad = m.replace('["hrss"]', '["police"]')
    r = await hub.query(bad, purpose="VER", variables={"h": row.household_id})
    assert r.json()["errors"][0]["message"] == "scope: unknown provider department 'police'"


async def test_predicates_alone_never_read_the_raw_row(hub: Hub) -> None:
    """A record whose selection is only predicates is answered by the department's own yes/no query: the hub
    never receives the department's columns. A value field (selected directly or through a fragment) reads its
    own columns, never the rest of the row."""
    from sqlalchemy import event

    engine = hub.app.state.hub.sources["civil_affairs"].engine
    results: list[list[str]] = []

    def seen(conn: Any, cursor: Any, *_: Any) -> None:
        results.append([d[0] for d in cursor.description or []])

    async def columns(query: str) -> set[str]:
        results.clear()
        r = await hub.query(query, variables={"id": hub.data.golden_id})
        assert r.status_code == 200 and "errors" not in r.json(), r.text
        assert r.json()["data"]["person"]["civilAffairs"]["isRecipient"] is True
        return {c for cols in results for c in cols}

    q = "query($id: String!) { person(idNumber: $id) { civilAffairs { %s } } } %s"
    event.listen(engine, "after_cursor_execute", seen)
    try:
        only_predicate = await columns(q % ("isRecipient", ""))
        assert len(results) == 1 and only_predicate == {"id_number"}
        # a value field reads its own column and nothing else of the row (minimum necessary)
        assert await columns(q % ("isRecipient tier", "")) == {"id_number", "tier"}
        fragment = "fragment F on CivilAffairsRecord { tier startDate }"
        assert await columns(q % ("isRecipient ...F", fragment)) == {"id_number", "tier", "start_date"}
        inline = "isRecipient ... on CivilAffairsRecord { monthlyAmount }"
        assert await columns(q % (inline, "")) == {"id_number", "monthly_amount"}
    finally:
        event.remove(engine, "after_cursor_execute", seen)


async def test_list_items_read_only_the_columns_selected_below_them(hub: Hub) -> None:
    from sqlalchemy import event

    engine = hub.app.state.hub.sources["real_estate"].engine
    results: list[list[str]] = []

    def seen(conn: Any, cursor: Any, *_: Any) -> None:
        results.append([d[0] for d in cursor.description or []])

    async def columns(selection: str, fragment: str = "") -> set[str]:
        results.clear()
        q = "query($id: String!) { person(idNumber: $id) { realEstate { " + selection + " } } } " + fragment
        r = await hub.query(q, purpose="VER", variables={"id": hub.data.golden_id})
        assert r.status_code == 200 and "errors" not in r.json(), r.text
        return {c for cols in results for c in cols}

    event.listen(engine, "after_cursor_execute", seen)
    try:
        assert await columns("propertyCount") == {"id_number"}  # counting needs no column
        assert await columns("properties { areaM2 }") == {"id_number", "area_m2"}
        assert await columns("totalAreaM2 properties { addressMasked }") == {"id_number", "area_m2", "address"}
        frag = "fragment P on Property { acquiredDate areaM2 }"
        assert await columns("properties { ...P }", frag) == {"id_number", "acquired_date", "area_m2"}
    finally:
        event.remove(engine, "after_cursor_execute", seen)
    # and the values are the golden resident's own (one flat of 48 m² in the demo data)
    q = """query($id: String!) { person(idNumber: $id) { realEstate { propertyCount totalAreaM2
        properties { addressMasked areaM2 acquiredDate } } } }"""
    r = await hub.query(q, purpose="VER", variables={"id": hub.data.golden_id})
    assert r.json()["data"]["person"]["realEstate"] == {
        "propertyCount": 1,
        "totalAreaM2": 48.0,
        "properties": [{"addressMasked": "临平区运河街道****", "areaM2": 48.0, "acquiredDate": "1998-06-20"}],
    }


async def test_identity_rows_read_only_the_columns_selected(hub: Hub) -> None:
    """Household registration too: a Person reads the columns of its selected fields, plus its ID number and
    household (needed for records, authorizations and the audit), never the whole row."""
    from sqlalchemy import event

    engine = hub.app.state.hub.sources["public_security"].engine
    seen_by_table: dict[str, set[str]] = {}

    def seen(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        table = "households" if "FROM households" in statement else "residents"
        seen_by_table.setdefault(table, set()).update(d[0] for d in cursor.description or [])

    async def columns(selection: str) -> set[str]:
        seen_by_table.clear()
        q = "query($id: String!) { person(idNumber: $id) { " + selection + " } }"
        r = await hub.query(q, variables={"id": hub.data.golden_id})
        assert r.status_code == 200 and "errors" not in r.json(), r.text
        return seen_by_table.get("residents", set())

    event.listen(engine, "after_cursor_execute", seen)
    try:
        assert await columns("name") == {"id_number", "household_id", "name"}
        assert await columns("idNumber birthDate") == {"id_number", "household_id", "dob"}
        # the members' size needs no column of theirs; members { name } reads their names (and the order)
        assert await columns("name household { size }") == {"id_number", "household_id", "name"}
        assert await columns("household { size members { name } }") == {
            "id_number",
            "household_id",
            "name",
            "relation_code",
        }
        assert seen_by_table["households"] == {"household_id"}  # nothing of the household itself was asked
        await columns("household { address }")
        assert seen_by_table["households"] == {"household_id", "address"}
    finally:
        event.remove(engine, "after_cursor_execute", seen)


# Gap 1 of issue 19: each way of reaching Person.idNumber next to a granted field, over HTTP.
ID_LEAKS = {
    "inline-fragment": "person(idNumber: $id) { nameMasked ... on Person { idNumber } }",
    "inline-fragment-untyped": "person(idNumber: $id) { nameMasked ... { idNumber } }",
    "inline-fragment-nested": "person(idNumber: $id) { nameMasked ... on Person { ... { idNumber } } }",
    "inline-fragment-included": "person(idNumber: $id) { nameMasked ... on Person @include(if: $yes) { idNumber } }",
    "inline-fragment-skipped": "person(idNumber: $id) { nameMasked ... on Person @skip(if: $yes) { idNumber } }",
    "spread": "person(idNumber: $id) { nameMasked ...F }",
    "spread-in-inline": "person(idNumber: $id) { nameMasked ... on Person { ...F } }",
    "alias": "person(idNumber: $id) { nameMasked id: idNumber }",
    "field-skipped": "person(idNumber: $id) { nameMasked idNumber @skip(if: $yes) }",
    "root-inline-fragment": "... on Query { person(idNumber: $id) { nameMasked idNumber } }",
}


@pytest.mark.parametrize("selection", ID_LEAKS.values(), ids=ID_LEAKS.keys())
async def test_every_path_to_the_id_number_is_denied_by_name(hub: Hub, selection: str, audit_tail: Any) -> None:
    frag = " fragment F on Person { idNumber }" if "...F" in selection else ""
    yes = ", $yes: Boolean = true" if "$yes" in selection else ""
    q = f"query($id: String!{yes}) {{ {selection} }}{frag}"
    r = await hub.query(q, client="linping-med", purpose="REF", variables={"id": hub.data.golden_id})
    assert r.status_code == 403, r.text
    assert r.json()["data"] is None
    assert r.json()["errors"][0]["extensions"]["denied"] == [
        {"coordinate": "Person.idNumber", "reason": "no grant of Person.idNumber to medical_security for purpose REF"}
    ]
    assert hub.data.golden_id not in r.text
    assert audit_tail()[-1]["requested_denied"] == ["Person.idNumber"]
    # the same shape with the granted mask instead answers, so the denial is the ID number's alone
    clean = q.replace("idNumber }", "nameMasked }").replace("idNumber @", "nameMasked @")
    r = await hub.query(clean, client="linping-med", purpose="REF", variables={"id": hub.data.golden_id})
    assert r.status_code == 200, r.text
    assert "钱**" in r.text and hub.data.golden_id not in r.text
