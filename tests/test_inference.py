"""Inference control across requests (issue 11, parts 2-4): what a consumer can put together from many answers.

Each test runs the attack that worked before, through the real app, and checks it now fails.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any

from hub.db import hub_engine
from hub.ids import make_id
from hub.lookups import MissLedger
from tests.conftest import Hub, without_receipt

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
    assert without_receipt(r.json()) == {"data": {"person": {"medical": {"outOfPocket12mAtLeast": True}}}}
    # a variable's default is the threshold asked when the variable is not given
    r = await hub.query(ASK.replace("$t: Int!", "$t: Int = 23000"), purpose="MON", variables={"id": golden})
    assert r.status_code == 403 and "threshold 23,000 is not one" in r.text
    # the officer sees the thresholds asked, and the probing is flagged
    entries = audit_tail()
    assert [e["predicate_args"] for e in entries[:2]] == [
        {OOP: {"threshold": 5_000_000}},
        {OOP: {"threshold": 2_500_000}},
    ]
    r = await hub.query(
        ENTRIES, client="officer", purpose="AUDIT", case=None, variables={"after": entries[0]["seq"] - 1}
    )
    found = r.json()["data"]["auditEntries"]["entries"][:24]
    assert found[0]["thresholds"] == [{"coordinate": OOP, "argument": "threshold", "value": 5_000_000}]
    assert [e["decision"] for e in found] == ["deny"] * 23 + ["allow"]
    # from the third distinct threshold on (earlier tests may have asked others already)
    assert all("THRESHOLD_PROBING" in e["flags"] for e in found[2:])


STATS = """query($a: String!) { statistics(area: $a) { residentsByArea { key count suppressed }
  recipientsByTier { key count suppressed } disabilityByGrade { key count suppressed } } }"""
TABLES = ("residentsByArea", "recipientsByTier", "disabilityByGrade")


def true_counts(hub: Hub) -> dict[str, dict[str, Counter[str]]]:
    """Per 6-digit area code, the true count of every cell, read from the departments' own files."""
    depts = hub.settings.data_dir / "departments"
    ps = sqlite3.connect(depts / "public_security.sqlite")
    area_of = dict(ps.execute("SELECT id_number, area_code FROM residents WHERE area_code LIKE '3301%'"))
    out: dict[str, dict[str, Counter[str]]] = {a: {t: Counter() for t in TABLES} for a in set(area_of.values())}
    for a, status in ps.execute("SELECT area_code, status FROM residents WHERE area_code LIKE '3301%'"):
        if status == "normal":
            out[a]["residentsByArea"][a] += 1
    today = date.today().isoformat()
    ca = sqlite3.connect(depts / "civil_affairs.sqlite")
    rows = "SELECT DISTINCT id_number, tier FROM assistance WHERE end_date IS NULL OR end_date >= ?"
    for i, tier in ca.execute(rows, (today,)):
        if i in area_of:
            out[area_of[i]]["recipientsByTier"][tier] += 1
    dpf = sqlite3.connect(depts / "disability.sqlite")
    for i, grade in dpf.execute("SELECT DISTINCT id_number, grade FROM certificates"):
        if i in area_of:
            out[area_of[i]]["disabilityByGrade"][str(grade)] += 1
    return out


async def test_differencing_statistics_over_the_whole_area_hierarchy_recovers_no_suppressed_cell(hub: Hub) -> None:
    truth = true_counts(hub)
    nodes = sorted({a[:n] for a in truth for n in (4, 5, 6)})  # every prefix of the hierarchy under 3301

    def true_of(prefix: str, table: str) -> Counter[str]:
        return sum((truth[a][table] for a in truth if a.startswith(prefix)), Counter())

    published: dict[str, dict[str, dict[str, int | None]]] = {}
    for prefix in nodes:
        r = await hub.query(STATS, client="hangzhou-ca", purpose="STAT", case=None, variables={"a": prefix})
        assert r.status_code == 200, r.text
        stats = r.json()["data"]["statistics"]
        published[prefix] = {t: {c["key"]: c["count"] for c in stats[t]} for t in TABLES}
    # the attack: a published parent minus its other published children, at every level of the hierarchy
    attempts, exact = 0, []
    for parent in nodes:
        for level in range(len(parent) + 1, 7):
            children = [n for n in nodes if len(n) == level and n.startswith(parent)]
            for t in ("recipientsByTier", "disabilityByGrade"):
                for key, total in published[parent][t].items():
                    for child in children:
                        if published[child][t].get(key, 0) is not None:
                            continue  # published (or absent: 0): nothing to recover
                        others = [published[o][t].get(key, 0) for o in children if o != child]
                        if total is None or None in others:
                            continue
                        attempts += 1
                        estimate = total - sum(o for o in others if o is not None)
                        if estimate == true_of(child, t)[key]:
                            exact.append((parent, child, t, key, estimate))
    print(f"differencing: {len(nodes)} requests, {attempts} attempts, {len(exact)} exact: {exact[:5]}")
    assert attempts > 0
    assert exact == []  # before the cell-key method: the suppressed cells came back exactly
    for prefix in nodes:
        for t in TABLES:  # totals within the stated error: at most 9 off, a multiple of 10, under 10 suppressed
            real = true_of(prefix, t)
            assert set(published[prefix][t]) == set(real), (prefix, t)
            for key, count in published[prefix][t].items():
                if real[key] < 10:
                    assert count is None, (prefix, t, key)
                else:
                    assert count is not None and count % 10 == 0 and abs(count - real[key]) <= 9, (prefix, t, key)
    # repeating a query gives the same figures: nothing to average away
    r = await hub.query(STATS, client="hangzhou-ca", purpose="STAT", case=None, variables={"a": "3301"})
    assert {t: {c["key"]: c["count"] for c in r.json()["data"]["statistics"][t]} for t in TABLES} == published["3301"]


MASKED = """query($h: String!) { household(householdId: $h) { addressMasked members { idNumberMasked } } }"""
WHO = """query($ids: [String!]!) { people(idNumbers: $ids) { idNumberMasked nameMasked } }"""


def candidates(masked: str, born_from: date, born_to: date) -> list[str]:
    """Every valid ID number matching ``masked`` (area code, and any characters the mask still shows)."""
    out = []
    day = born_from
    shown = masked[14:17]
    while day <= born_to:
        for seq in [int(shown)] if shown.isdigit() else range(1000):
            id_number = make_id(masked[:6], day, seq)
            if all(m in ("*", c) for m, c in zip(masked, id_number, strict=True)):
                out.append(id_number)
        day += timedelta(days=1)
    return out


async def test_a_masked_id_number_is_not_recovered_by_enumeration(hub: Hub, audit_tail: Any) -> None:
    golden = hub.data.golden_id
    # a client of its own: the 331 misses this attack records spend its budget, not another test's
    prober = "probe-utilities"
    if prober not in hub.secrets:
        _, hub.secrets[prober] = hub.app.state.hub.clients.add(prober, "utilities", "3301", ["REF"])
    # request 1: the mask, from the household's members (a consumer granted only masked identity)
    r = await hub.query(MASKED, client=prober, purpose="REF", variables={"h": hub.data.golden_household})
    masks = [m["idNumberMasked"] for m in r.json()["data"]["household"]["members"]]
    # the mask keeps the area code only: a decade of birth dates leaves 3,652,000 candidates (21.8 bits), far
    # beyond one request (1,000 ID numbers) and the miss budget (100 a day); the old mask left 332
    assert masks == [m[:6] + "*" * 12 for m in masks] and golden[:6] + "*" * 12 in masks
    decade = (date(1948, 1, 1), date(1957, 12, 31))
    old_mask = golden[:6] + "*" * 8 + golden[-4:]
    guesses = candidates(old_mask, *decade)
    assert len(guesses) == 332 and golden in guesses
    # request 2: even with the old mask's 332 candidates, the lookup is refused whole: it mostly misses
    r = await hub.query(WHO, client=prober, purpose="REF", variables={"ids": guesses})
    assert r.status_code == 403, r.text
    assert r.json()["data"] is None and golden not in r.text
    error = r.json()["errors"][0]
    assert (error["extensions"]["code"], error["message"]) == (
        "LOOKUP_MOSTLY_MISSED",
        "331 of the 332 ID numbers asked were not found or are outside your jurisdiction; "
        "a lookup that mostly misses is refused",
    )
    [entry] = [e for e in audit_tail() if e["reasons"] == ["LOOKUP_MOSTLY_MISSED"]]
    assert entry["decision"] == "deny" and entry["fields"] == []
    search = ENTRIES.replace("linping-ca", prober)
    r = await hub.query(search, client="officer", purpose="AUDIT", case=None, variables={"after": entry["seq"] - 1})
    assert "ID_PROBING" in r.json()["data"]["auditEntries"]["entries"][0]["flags"]


PERSON = """query($id: String!) { person(idNumber: $id) { idNumberMasked } }"""


async def test_the_miss_budget_is_shared_through_the_hub_database(hub: Hub, monkeypatch: Any) -> None:
    state = hub.app.state.hub
    now = [datetime(2030, 1, 1, 2, 0, tzinfo=UTC)]  # a clock of our own: the budget never depends on the hour
    monkeypatch.setattr(state.misses, "budget", 5)
    monkeypatch.setattr(state.misses, "clock", lambda: now[0])
    ps = sqlite3.connect(hub.settings.data_dir / "departments" / "public_security.sqlite")
    [(inside,), (inside2,)] = ps.execute("SELECT id_number FROM residents WHERE area_code = '330113' LIMIT 2")
    [(outside,)] = ps.execute("SELECT id_number FROM residents WHERE area_code = '330106' LIMIT 1")
    nobody = make_id("330113", date(1901, 1, 1), 1)  # valid, and no such resident
    # a client of its own: the misses recorded here (on a clock of 2030) must not spend another test's budget
    client = "budget-utilities"
    if client not in hub.secrets:
        _, hub.secrets[client] = state.clients.add(client, "utilities", "3301", ["REF"])
    ask = {"client": client, "purpose": "REF"}
    # not found and out of area look the same (and both count as misses)
    linping = {"client": "linping-med", "purpose": "REF"}
    a, b = [await hub.query(PERSON, variables={"id": i}, **linping) for i in (nobody, outside)]
    assert a.status_code == b.status_code == 200 and without_receipt(a.json()) == without_receipt(b.json()) == {
        "data": {"person": None}
    }
    # another hub process, with its own engine on the same database, recorded 3 misses for this client
    other = MissLedger(hub_engine(hub.settings.database_url), 5, 86_400, clock=lambda: now[0])
    other.record(client, 3)
    assert state.misses.spent(client) == 3
    # one single miss is answered (null); the next two pass the budget of 5 and are refused
    r = await hub.query(PERSON, variables={"id": nobody}, **ask)
    assert without_receipt(r.json()) == {"data": {"person": None}}
    ids = [nobody, make_id("330113", date(1901, 1, 2), 1), inside, inside2]  # half missing: not "mostly"
    r = await hub.query(WHO, variables={"ids": ids}, **ask)
    assert r.status_code == 429 and r.json()["errors"][0]["extensions"]["code"] == "LOOKUP_BUDGET_EXHAUSTED"
    assert r.json()["data"] is None
    assert other.spent(client) == 6
    # spent: every lookup by ID number is refused before execution, a resident who exists as much as one who does not
    for id_number in (inside, nobody):
        r = await hub.query(PERSON, variables={"id": id_number}, **ask)
        assert r.status_code == 429, r.text
        assert r.json()["errors"][0]["message"] == (
            f"client {client} has used its budget of 5 ID numbers not found or out of area; "
            "lookups by ID number are refused until older misses leave the window"
        )
    # a day later the misses have left the window
    now[0] += timedelta(days=1, seconds=1)
    r = await hub.query(PERSON, variables={"id": inside}, **ask)
    assert r.status_code == 200 and r.json()["data"]["person"] == {"idNumberMasked": inside[:6] + "*" * 12}


HOUSEHOLDS = """query { a: household(householdId: "%s") { addressMasked }
  b: household(householdId: "%s") { addressMasked } c: household(householdId: "%s") { addressMasked } }"""


async def test_household_ids_are_not_an_existence_oracle(hub: Hub, monkeypatch: Any, audit_tail: Any) -> None:
    state = hub.app.state.hub
    now = [datetime(2030, 2, 1, 2, 0, tzinfo=UTC)]
    monkeypatch.setattr(state.misses, "budget", 4)
    monkeypatch.setattr(state.misses, "clock", lambda: now[0])
    client = "household-prober"
    if client not in hub.secrets:
        _, hub.secrets[client] = state.clients.add(client, "utilities", "3301", ["REF"])
    ask = {"client": client, "purpose": "REF"}
    real = hub.data.golden_household
    # one unknown household id is answered null, like one mistyped ID number (and is a miss)
    r = await hub.query(MASKED, variables={"h": "H99999999"}, **ask)
    assert r.status_code == 200 and without_receipt(r.json()) == {"data": {"household": None}}
    assert state.misses.spent(client) == 1
    # guessing household ids around a real one: two of three missed, refused whole, the real one not shown
    r = await hub.query(HOUSEHOLDS % (real, "H99999998", "H99999997"), **ask)
    assert r.status_code == 403, r.text
    assert r.json()["data"] is None and r.json()["errors"][0]["extensions"]["code"] == "LOOKUP_MOSTLY_MISSED"
    assert r.json()["errors"][0]["message"].startswith("2 of the 3 ID numbers asked were not found")
    [entry] = [e for e in audit_tail() if e["client_id"] == client and e["reasons"] == ["LOOKUP_MOSTLY_MISSED"]]
    assert entry["decision"] == "deny"
    # the budget (4) is now spent (1 + 2 misses, then one more): every household lookup is refused before execution
    r = await hub.query(MASKED, variables={"h": "H99999996"}, **ask)
    assert r.status_code == 200 and state.misses.spent(client) == 4
    r = await hub.query(MASKED, variables={"h": real}, **ask)
    assert r.status_code == 429 and r.json()["errors"][0]["extensions"]["code"] == "LOOKUP_BUDGET_EXHAUSTED"
    assert r.json()["data"] is None
