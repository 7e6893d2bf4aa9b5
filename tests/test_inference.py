"""Inference control across requests (issue 11, parts 2-4): what a consumer can put together from many answers.

Each test runs the attack that worked before, through the real app, and checks it now fails.
"""

from __future__ import annotations

import json
from typing import Any

from tests.conftest import Hub

OOP = "MedicalRecord.outOfPocket12mAtLeast"
ASK = """query($id: String!, $t: Int!) { person(idNumber: $id) { medical { outOfPocket12mAtLeast(threshold: $t) } } }"""
ENTRIES = """query($after: Int) { auditEntries(filter: {clientId: "linping-ca"}, after: $after, first: 100) {
  entries { seq decision reasons flags thresholds { coordinate argument value } } } }"""


async def bisect(hub: Hub, id_number: str, requests: int = 23) -> tuple[int | None, list[Any]]:
    """The attack: bisect the out-of-pocket cost over 0..10,000,000 with the yes/no predicate. A refused answer
    is taken as "no" (the attacker goes on). Returns (the exact value if pinned down, the responses)."""
    lo, hi = 0, 10_000_000  # invariant: cost >= lo and cost < hi
    responses = []
    for _ in range(requests):
        mid = (lo + hi) // 2
        r = await hub.query(ASK, purpose="MON", variables={"id": id_number, "t": mid})
        responses.append(r)
        yes = r.status_code == 200 and r.json()["data"]["person"]["medical"]["outOfPocket12mAtLeast"] is True
        lo, hi = (mid, hi) if yes else (lo, mid)
        if hi - lo <= 1:
            break
    return (lo if hi - lo <= 1 else None), responses


async def test_bisection_of_a_predicate_threshold_fails(hub: Hub, audit_tail: Any) -> None:
    golden = hub.data.golden_id  # out-of-pocket cost 23,500 yuan
    recovered, responses = await bisect(hub, golden)
    assert recovered != 23500  # before: 23,500 exactly, in 23 requests
    assert len(responses) == 23
    for r in responses:  # every threshold the grant does not list is refused before execution, named
        assert r.status_code == 403, r.text
        [denied] = r.json()["errors"][0]["extensions"]["denied"]
        asked = json.loads(r.request.content)["variables"]["t"]
        assert denied == {
            "coordinate": OOP,
            "reason": f"threshold {asked:,} is not one the grant allows for {OOP} (allowed: 20,000)",
        }
    # the one threshold the law fixes answers: a single bit
    r = await hub.query(ASK, purpose="MON", variables={"id": golden, "t": 20000})
    assert r.json() == {"data": {"person": {"medical": {"outOfPocket12mAtLeast": True}}}}
    # a variable's default is the threshold asked when the variable is not given
    r = await hub.query(ASK.replace("$t: Int!", "$t: Int = 23000"), purpose="MON", variables={"id": golden})
    assert r.status_code == 403 and "threshold 23,000 is not one" in r.text
    # the officer sees the thresholds asked, and the probing is flagged
    entries = audit_tail()
    assert [e["predicate_args"] for e in entries[:2]] == [{OOP: {"threshold": 5_000_000}}, {OOP: {"threshold": 2_500_000}}]
    r = await hub.query(ENTRIES, client="officer", purpose="AUDIT", case=None, variables={"after": entries[0]["seq"] - 1})
    found = r.json()["data"]["auditEntries"]["entries"][:24]
    assert found[0]["thresholds"] == [{"coordinate": OOP, "argument": "threshold", "value": 5_000_000}]
    assert [e["decision"] for e in found] == ["deny"] * 23 + ["allow"]
    assert ["THRESHOLD_PROBING" in e["flags"] for e in found] == [False, False] + [True] * 22
