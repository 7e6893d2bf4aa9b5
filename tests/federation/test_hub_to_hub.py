"""Hub to hub: region A (in-process, area 3301) asks region B (a real ``hub serve`` process, area 3302)."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from datetime import date

import httpx
import pytest

from hub.db import hub_engine
from hub.errors import ConfigError
from hub.federation.remote import RemoteHubs
from hub.ids import make_id
from hub.settings import Settings
from hub.sources.contract import is_subgraph_url
from tests.conftest import without_receipt
from tests.live import B_AREA, Fed, FedHub, Region, audit_entry, running

PERSON = "{ person(idNumber: $id) { name areaCode civilAffairs { tier } education { isFullTimeStudent } } }"


@pytest.fixture(scope="module")
async def hub_a(fed: Fed) -> AsyncIterator[FedHub]:
    region = fed.region
    assert region is not None and region.proc is not None
    settings = fed.settings(
        "a",
        remote_hubs={"region-b": region.proc.wait_ready()},
        remote_credentials={"region-b": ("region-a", region.secret)},
    )
    async with running(settings) as h:
        yield h


def _b(fed: Fed) -> Region:
    assert fed.region is not None
    return fed.region


def _b_entry(fed: Fed, request_id: str) -> dict[str, object]:
    return audit_entry(hub_engine(f"sqlite:///{_b(fed).root / 'hub.sqlite'}"), request_id)


def _b_resident(fed: Fed) -> tuple[str, str]:
    b = _b(fed)
    with sqlite3.connect(b.root / "departments" / "public_security.sqlite") as conn:
        row = conn.execute("SELECT id_number, name FROM residents WHERE id_number = ?", (b.ids[0],)).fetchone()
    return row[0], row[1]


async def test_resident_of_region_b_answered_under_b_policies(fed: Fed, hub_a: FedHub) -> None:
    id_number, name = _b_resident(fed)
    r = await hub_a.query(f"query($id: String!) {PERSON}", client="zj-ca", variables={"id": id_number})
    assert r.status_code == 200, r.text
    body = r.json()
    assert "errors" not in body, body
    person = body["data"]["person"]
    assert person["name"] == name and person["areaCode"].startswith(B_AREA)
    assert set(person["civilAffairs"]) == {"tier"} and set(person["education"]) == {"isFullTimeStudent"}

    # Both logs record the exchange under the same ids.
    a_entry = hub_a.audit(r.headers["x-request-id"])
    assert [x["hub"] for x in a_entry["remote"]] == ["region-b"]
    b_id = a_entry["remote"][0]["request_id"]
    b_entry = _b_entry(fed, b_id)
    assert b_entry["origin_request_id"] == r.headers["x-request-id"]
    assert (b_entry["client_id"], b_entry["officer"], b_entry["purpose"], b_entry["case_ref"]) == (
        "region-a",
        "officer-li",
        "CASE",
        "CASE-FED-1",
    )
    assert b_entry["area"] == B_AREA  # the consumer's "33", narrowed to what B lets A's client see
    assert b_entry["decision"] == "allow" and b_entry["subject_count"] == 1
    assert a_entry["decision"] == "allow" and a_entry["subject_count"] == 1  # A's log names the resident too
    assert hub_a.source("public_security").breaker.state == "closed"


async def test_field_denied_by_b_carries_b_refusal(fed: Fed, hub_a: FedHub) -> None:
    id_number, _ = _b_resident(fed)
    q = "query($id: String!) { person(idNumber: $id) { name education { droppedOut } } }"
    r = await hub_a.query(q, client="zj-ca", variables={"id": id_number})  # A's policy grants droppedOut
    body = r.json()
    assert body["data"] == {"person": None}
    [err] = body["errors"]
    # the remote's own text never reaches the consumer: its code goes to A's audit entry
    assert err["extensions"]["code"] == "UPSTREAM_UNAVAILABLE" and err["path"] == ["person"]
    assert err["message"] == "region-b: the region's hub did not answer this field"
    a_entry = hub_a.audit(r.headers["x-request-id"])
    assert a_entry["remote"][0]["errors"] == ["POLICY_DENIED"]
    b_entry = _b_entry(fed, a_entry["remote"][0]["request_id"])
    assert b_entry["decision"] == "deny" and b_entry["origin_request_id"] == r.headers["x-request-id"]
    assert "EducationRecord.droppedOut" in b_entry["requested_denied"]
    assert a_entry["reasons"] == ["UPSTREAM_UNAVAILABLE"]


async def test_people_merge_local_remote_and_missing(fed: Fed, hub_a: FedHub) -> None:
    b = _b(fed)
    with sqlite3.connect(fed.root / "departments" / "public_security.sqlite") as conn:
        local = conn.execute("SELECT id_number FROM residents WHERE area_code = '330113' LIMIT 1").fetchone()[0]
    nobody = make_id("110101", date(1990, 3, 7), 1)  # valid, but registered in neither region
    ids = [local, b.ids[1], nobody, b.ids[2]]
    r = await hub_a.query(
        "query($ids: [String!]!) { people(idNumbers: $ids) { idNumber areaCode } }",
        client="zj-ca",
        variables={"ids": ids},
    )
    body = r.json()
    assert "errors" not in body, body
    got = body["data"]["people"]
    assert got[0]["idNumber"] == local and got[0]["areaCode"] == "330113"
    assert got[1]["idNumber"] == b.ids[1] and got[1]["areaCode"].startswith(B_AREA)
    assert got[2] is None
    assert got[3]["idNumber"] == b.ids[2]
    a_entry = hub_a.audit(r.headers["x-request-id"])
    assert a_entry["subject_count"] == 3
    b_entry = _b_entry(fed, a_entry["remote"][0]["request_id"])
    assert b_entry["subject_count"] == 2  # B saw only the residents A could not answer


async def test_local_answer_asks_no_one_and_origin_header_needs_hub_role(fed: Fed, hub_a: FedHub) -> None:
    with sqlite3.connect(fed.root / "departments" / "public_security.sqlite") as conn:
        local = conn.execute("SELECT id_number FROM residents WHERE area_code = '330113' LIMIT 1").fetchone()[0]
    r = await hub_a.query(f"query($id: String!) {PERSON}", client="linping-ca", variables={"id": local})
    assert r.json()["data"]["person"] is not None
    assert "remote" not in hub_a.audit(r.headers["x-request-id"])

    # An ordinary client at B cannot label its request as coming from another hub.
    b = _b(fed)
    assert b.proc is not None
    async with httpx.AsyncClient(base_url=b.proc.base) as c:
        token = (
            await c.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=("b-ca", b.other_secret))
        ).json()["access_token"]
        r = await c.post(
            "/graphql",
            json={"query": f'{{ person(idNumber: "{b.ids[0]}") {{ name }} }}'},
            headers={
                "authorization": f"Bearer {token}",
                "x-hub-purpose": "CASE",
                "x-hub-case": "C-1",
                "x-hub-officer": "officer-b",
                "x-hub-origin-request-id": "forged",
            },
        )
    assert r.json()["data"]["person"]["name"]
    assert "origin_request_id" not in _b_entry(fed, r.headers["x-request-id"])


def _b_residents_by_area(fed: Fed) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    with sqlite3.connect(_b(fed).root / "departments" / "public_security.sqlite") as conn:
        for id_number, area in conn.execute("SELECT id_number, area_code FROM residents ORDER BY id_number"):
            if id_number in _b(fed).ids:
                out.setdefault(area, []).append(id_number)
    return out


async def test_consumer_narrower_than_the_hub_client_keeps_its_own_area(fed: Fed, hub_a: FedHub) -> None:
    """A's consumer scoped to 330113 (A's district) sees nothing of B's 3302 residents, though A's client at B
    may see all of 3302; a consumer scoped to one of B's districts sees that district only. A's entry counts
    the residents kept from it as out of area, as it does for its own."""
    by_area = _b_residents_by_area(fed)
    inside, outside = by_area["330213"][0], by_area["330209"][0]
    q = "query($id: String!) { person(idNumber: $id) { name hukouAddress } }"
    r = await hub_a.query(q, client="linping-ca", variables={"id": inside})
    assert without_receipt(r.json()) == {"data": {"person": None}}, r.text
    a_entry = hub_a.audit(r.headers["x-request-id"])
    assert a_entry["out_of_area"] == 1 and a_entry["subject_count"] == 0
    b_entry = _b_entry(fed, a_entry["remote"][0]["request_id"])
    assert b_entry["area"] == "-" and b_entry["out_of_area"] == 1  # disjoint jurisdictions: no resident at all

    r = await hub_a.query(q, client="b-district-ca", variables={"id": inside})
    assert r.json()["data"]["person"]["name"], r.text
    assert hub_a.audit(r.headers["x-request-id"])["out_of_area"] == 0
    r = await hub_a.query(q, client="b-district-ca", variables={"id": outside})
    assert without_receipt(r.json()) == {"data": {"person": None}}, r.text
    a_entry = hub_a.audit(r.headers["x-request-id"])
    assert a_entry["out_of_area"] == 1
    assert _b_entry(fed, a_entry["remote"][0]["request_id"])["area"] == "330213"


async def test_consumer_headers_need_the_hub_role_and_a_valid_shape(fed: Fed) -> None:
    b = _b(fed)
    assert b.proc is not None
    inside = _b_residents_by_area(fed)["330213"][0]
    async with httpx.AsyncClient(base_url=b.proc.wait_ready()) as c:
        tokens = {}
        for cid, secret in (("b-ca", b.other_secret), ("region-a", b.secret)):
            r = await c.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=(cid, secret))
            tokens[cid] = r.json()["access_token"]
        base = {"x-hub-purpose": "CASE", "x-hub-case": "C-1", "x-hub-officer": "officer-b"}
        consumer = {"x-hub-consumer-client": "x", "x-hub-consumer-department": "civil_affairs"}
        q = {"query": f'{{ person(idNumber: "{inside}") {{ name }} }}'}
        # an ordinary client's consumer headers are ignored (they are believed only from a hub)
        h = {**base, **consumer, "x-hub-consumer-area": "110101", "authorization": f"Bearer {tokens['b-ca']}"}
        assert (await c.post("/graphql", json=q, headers=h)).json()["data"]["person"]["name"]
        # a hub's are applied; malformed ones are refused
        h = {**base, **consumer, "authorization": f"Bearer {tokens['region-a']}", "x-hub-origin-request-id": "a" * 32}
        r = await c.post("/graphql", json=q, headers={**h, "x-hub-consumer-area": "110101"})
        assert r.json()["data"] == {"person": None} and r.json()["extensions"]["hub"] == {"outOfArea": 1}
        r = await c.post("/graphql", json=q, headers={**h, "x-hub-consumer-area": "33%"})
        assert r.status_code == 400 and r.json()["errors"][0]["extensions"]["code"] == "BAD_HEADER"


def test_remote_settings_from_env() -> None:
    env = {
        "HUB_REMOTE_HUBS": "region-b=http://127.0.0.1:9001, region-c=https://hub-c.example",
        "HUB_REMOTE_REGION_B_CLIENT_ID": "region-a",
        "HUB_REMOTE_REGION_B_CLIENT_SECRET": "s3cret",
        "HUB_DEPT_EDUCATION_URL": "http://127.0.0.1:9002/graphql",
    }
    s = Settings.from_env(env)
    assert dict(s.remote_hubs) == {"region-b": "http://127.0.0.1:9001", "region-c": "https://hub-c.example"}
    assert s.remote_credentials["region-b"] == ("region-a", "s3cret")
    assert "s3cret" not in repr(s)
    assert is_subgraph_url(s.department_url("education")) and not is_subgraph_url(s.department_url("tax"))
    with pytest.raises(ConfigError, match="HUB_REMOTE_REGION_C_CLIENT_ID"):
        RemoteHubs.from_settings(s)
    with pytest.raises(ConfigError, match="not name=url"):
        Settings.from_env({"HUB_REMOTE_HUBS": "http://nameless"})


def test_misspelt_department_url_is_refused() -> None:
    """A typo would otherwise leave the department silently on its default database."""
    with pytest.raises(ConfigError, match=r"HUB_DEPT_EDUCATON_URL: no such source department \(known: .*education"):
        Settings.from_env({"HUB_DEPT_EDUCATON_URL": "http://127.0.0.1:9002/graphql"})
    with pytest.raises(ConfigError, match="HUB_DEPT_UTILITIES_URL"):  # a consumer-only department has no data
        Settings.from_env({"HUB_DEPT_UTILITIES_URL": "sqlite:///x.sqlite"})
    assert Settings.from_env({"HUB_DEPT_TAX_URL": "sqlite:///t.sqlite"}).department_url("tax") == "sqlite:///t.sqlite"
