"""Monitoring end to end: department change events → rules asked through the gateway under MON → alerts in the
street office's area → the caseworker's CASE follow-up with the alert as case reference → disposition, and the
resident's access report showing the chain. Real department SQLite files (a copy per module), the real app with
the monitor running in its lifespan, real tokens over httpx."""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest

from hub.app import create_app
from hub.cli import main
from hub.clock import china_date
from hub.demo.events import emit_event
from hub.demo.generate import GenerateResult
from hub.monitor.workdays import add_working_days
from tests.conftest import Hub, make_settings, working_clock

GOLDEN = "330113195203180176"
STORY = {
    "dibao",
    "needy_disabled_living_subsidy",
    "severe_disability_care_subsidy",
    "medical_assistance",
    "electricity_discount",
    "cable_tv_discount",
    "utility_subsidy",
}
ALERT_FIELDS = """id ruleId idNumber areaCode areaName source eventKind status disposition assignedTo dueOn
  estimatedMonthly matched { coordinate form condition value } programmes { id monthlyAmount reason }
  history { actor action detail }"""
CLIENTS = {
    "linping-cw": ("civil_affairs", "330113", ["MON", "CASE"], ["caseworker"]),
    "xihu-cw": ("civil_affairs", "330106", ["MON", "CASE"], ["caseworker"]),
    "linping-plain": ("civil_affairs", "330113", ["MON", "CASE"], []),
    "hangzhou-cw": ("civil_affairs", "3301", ["MON", "CASE"], ["caseworker"]),
}


@pytest.fixture(scope="module")
async def mon(dept_data: tuple[Path, GenerateResult], tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Hub]:
    """A hub with the monitor on, over its own copy of the department databases (events are written to them)."""
    root = tmp_path_factory.mktemp("monitor")
    shutil.copytree(dept_data[0] / "departments", root / "departments")
    settings = make_settings(root, monitor=True, monitor_interval=0.05)
    app = create_app(settings, sign_interval=3600, clock=working_clock())
    secrets = {cid: app.state.hub.clients.add(cid, *spec)[1] for cid, spec in CLIENTS.items()}
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hub.test") as client:
            hub = Hub(app, client, settings, secrets, dept_data[1], {})
            await settle(hub)
            yield hub
    app.state.hub.close()


async def settle(hub: Hub, timeout: float = 60) -> None:
    """Wait until the monitor's cursors have reached every outbox's end."""
    from hub.departments import OUTBOXES

    ends = {}
    for dept in OUTBOXES:
        with closing(sqlite3.connect(hub.settings.data_dir / "departments" / f"{dept}.sqlite")) as db:
            ends[dept] = db.execute("SELECT coalesce(max(seq), 0) FROM change_events").fetchone()[0]
    store = hub.app.state.hub.alerts
    for _ in range(int(timeout / 0.05)):
        if all(store.position(d) >= n for d, n in ends.items()):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"monitor did not catch up: {[(d, store.position(d), n) for d, n in ends.items()]}")


async def gql(hub: Hub, query: str, client: str = "linping-cw", purpose: str = "MON", case: str | None = None,
              **variables: Any) -> dict[str, Any]:  # fmt: skip
    r = await hub.query(query, client=client, purpose=purpose, case=case, variables=variables)
    body: dict[str, Any] = r.json()
    return body


async def alerts_of(hub: Hub, id_number: str, client: str = "linping-cw") -> list[dict[str, Any]]:
    body = await gql(
        hub,
        f"query($f: AlertFilter) {{ alerts(filter: $f, first: 500) {{ alerts {{ {ALERT_FIELDS} }} }} }}",
        client,
        f={"idNumber": id_number},
    )
    assert "errors" not in body, body
    found: list[dict[str, Any]] = body["data"]["alerts"]["alerts"]
    return found


async def test_golden_scenario(mon: Hub, capsys: pytest.CaptureFixture[str]) -> None:
    hub = mon
    assert await alerts_of(hub, GOLDEN) == []  # nothing until the disability federation records the change
    # what his access report already holds (other tests of this module may have evaluated rules about him)
    assert main(["--data-dir", str(hub.settings.data_dir), "audit", "subject", GOLDEN]) in (0, 1)
    earlier = [ln for ln in capsys.readouterr().out.splitlines() if "officer=" in ln]
    # the federation upgrades his certificate to physical grade 2 and writes the event in the same transaction
    dept, seq = emit_event(hub.settings, "disability_changed", GOLDEN, category=4, grade=2, clock=hub.clock)
    assert dept == "disability"
    await settle(hub)
    [alert] = await alerts_of(hub, GOLDEN)
    today = china_date(hub.clock())
    assert alert["ruleId"] == "M1" and alert["idNumber"] == GOLDEN
    assert (alert["areaCode"], alert["areaName"]) == ("330113", "临平区运河街道")
    assert alert["source"] == f"disability:{seq}" and alert["eventKind"] == "disability_changed"
    assert {p["id"] for p in alert["programmes"]} == STORY and len(alert["programmes"]) == 7
    assert alert["estimatedMonthly"] == 2000 == sum(p["monthlyAmount"] for p in alert["programmes"])
    assert alert["dueOn"] == add_working_days(today, 7)[0].isoformat()
    assert [(m["coordinate"], m["form"], json.loads(m["value"])) for m in alert["matched"]] == [
        ("DisabilityRecord.isSevere", "predicate", True),
        ("CivilAffairsRecord.isRecipient", "predicate", True),
    ]  # yes/no answers only: monitoring never saw his grade, income or tier
    assert (alert["status"], [h["action"] for h in alert["history"]]) == ("new", ["created"])
    # another street office does not see it; a client without the caseworker role is refused before execution
    assert await alerts_of(hub, GOLDEN, client="xihu-cw") == []
    denied = await gql(hub, "{ alerts { alerts { id } } }", client="linping-plain")
    assert denied["errors"][0]["extensions"]["denied"] == [
        {"coordinate": "Query.alerts", "reason": "requires the caseworker role"}
    ]
    aid = alert["id"]
    # the caseworker's follow-up, under purpose CASE with the alert as case reference
    assign = 'mutation($id: String!) { assignAlert(id: $id, assignee: "officer-wang") { status assignedTo } }'
    body = await gql(hub, assign, purpose="CASE", case=aid, id=aid)
    assert body["data"]["assignAlert"] == {"status": "assigned", "assignedTo": "officer-wang"}
    case_query = """query($id: String!) { person(idNumber: $id) { name disability { category grade changeDate }
      civilAffairs { tier } household { address } } }"""
    body = await gql(hub, case_query, purpose="CASE", case=aid, id=GOLDEN)
    person = body["data"]["person"]
    assert person["disability"] == {"category": 4, "grade": 2, "changeDate": today.isoformat()}
    assert person["household"]["address"] == "临平区运河街道东新村12幢3单元201室"
    visit = 'mutation($id: String!) { recordVisit(id: $id, note: "home check done") { status } }'
    wrong_case = await gql(hub, visit, purpose="CASE", case="CASE-OTHER", id=aid)
    assert wrong_case["errors"][0]["extensions"]["code"] == "CASE_REQUIRED"
    assert (await gql(hub, visit, purpose="CASE", case=aid, id=aid))["data"]["recordVisit"] == {"status": "visited"}
    close = 'mutation($id: String!) { closeAlert(id: $id, disposition: "enrolled") { status disposition } }'
    assert (await gql(hub, close, purpose="CASE", case=aid, id=aid))["data"]["closeAlert"] == {
        "status": "closed",
        "disposition": "enrolled",
    }
    again = await gql(hub, close, purpose="CASE", case=aid, id=aid)
    assert again["errors"][0]["extensions"]["code"] == "ALERT_STATE"
    [closed] = await alerts_of(hub, GOLDEN)
    assert [h["action"] for h in closed["history"]] == ["created", "assign", "visit", "close"]
    # his access report: event → rule evaluation → alert → follow-up queries → disposition
    assert main(["--data-dir", str(hub.settings.data_dir), "audit", "subject", GOLDEN]) == 0
    lines = capsys.readouterr().out.splitlines()
    chain = [(ln.split("officer=")[1].split()[0], ln.split("purpose=")[1].split()[0], ln.split("case=")[1].split()[0])
             for ln in lines[len(earlier):-1]]  # fmt: skip
    assert chain == [
        ("monitor/M1", "MON", f"EVT-disability-{seq}-{seq}"),  # the event: rule M1 asked through the gateway
        ("monitor", "MON", aid),  # the alert raised
        ("officer-wang", "MON", "-"),  # the street office lists its alerts
        ("officer-wang", "CASE", aid),  # assigned
        ("officer-wang", "CASE", aid),  # the caseworker's CASE query
        ("officer-wang", "CASE", aid),  # the visit
        ("officer-wang", "CASE", aid),  # closed: enrolled
        ("officer-wang", "MON", "-"),  # the closed alert listed
    ]
    assert lines[-1] == f"{len(earlier) + 8} recorded accesses to this resident"


RULES = [f"M{i}" for i in range(1, 13)]


def _dept_db(hub: Hub, dept: str) -> sqlite3.Connection:
    return sqlite3.connect(hub.settings.data_dir / "departments" / f"{dept}.sqlite")


async def _all_alerts(hub: Hub, rule: str) -> list[dict[str, Any]]:
    body = await gql(
        hub,
        f"query($f: AlertFilter) {{ alerts(filter: $f, first: 500) {{ alerts {{ {ALERT_FIELDS} }} hasMore }} }}",
        "hangzhou-cw",
        f={"ruleId": rule},
    )
    assert "errors" not in body, body
    assert body["data"]["alerts"]["hasMore"] is False
    found: list[dict[str, Any]] = body["data"]["alerts"]["alerts"]
    return found


@pytest.mark.parametrize("rule", RULES)
async def test_rule_fires_on_demo_events(mon: Hub, rule: str) -> None:
    state = mon.app.state.hub
    alerts = [a for a in await _all_alerts(mon, rule) if a["source"] != "sweep"]
    assert alerts, f"{rule} raised no alert on the demo events"
    spec = state.rules.rules[rule]
    outcomes = {f"{e['department']}:{e['seq']}": e for e in state.alerts.events()}
    for a in alerts:
        assert a["eventKind"] in spec.triggers
        assert outcomes[a["source"]]["outcome"] == "alerted" and rule in outcomes[a["source"]]["reason"]
        held = {m["coordinate"] for m in a["matched"]}
        assert {c.coordinate for c in spec.all} <= held
        if spec.any:
            assert held & {c.coordinate for c in spec.any}
        assert {p["id"] for p in a["programmes"]} <= {s.programme.id for s in spec.suggest}


@pytest.mark.parametrize("rule", RULES)
async def test_rule_does_not_fire_when_its_conditions_fail(mon: Hub, rule: str) -> None:
    """An event that triggers the rule for a resident who does not meet its conditions raises no alert for it."""
    state = mon.app.state.hub
    spec = state.rules.rules[rule]
    misses = [
        e
        for e in state.alerts.events()
        if rule in json.loads(e["rules"]) and e["outcome"] != "rejected" and not _matched(e["reason"], rule)
    ]
    if not misses:  # every demo event of its kinds matched (M5: all victims are alive): write one that cannot
        with closing(_dept_db(mon, "public_security")) as db:
            dead = db.execute(
                "SELECT id_number FROM residents WHERE status = 'deceased' ORDER BY id_number"
            ).fetchone()[0]
        emit_event(mon.settings, spec.triggers[0], dead, clock=mon.clock)
        await settle(mon)
        misses = [
            e for e in state.alerts.events() if rule in json.loads(e["rules"]) and not _matched(e["reason"], rule)
        ]
    assert misses
    sources = {a["source"] for a in await _all_alerts(mon, rule)}
    for e in misses:
        assert f"{e['department']}:{e['seq']}" not in sources


def _matched(reason: str, rule: str) -> bool:
    return reason.startswith("matched ") and rule in reason.removeprefix("matched ").split(", ")


async def test_malformed_events_are_rejected_and_the_reader_goes_on(mon: Hub) -> None:
    state = mon.app.state.hub
    with closing(_dept_db(mon, "hrss")) as db:
        n = db.execute("SELECT max(seq) FROM change_events").fetchone()[0]
        rows = [
            (n + 1, "330113195203180177", "unemployment_registered", "2026-10-01"),  # bad check digit
            (n + 2, GOLDEN, "disability_changed", "2026-10-01"),  # not hrss' to publish
            (n + 3, GOLDEN, "unemployment_registered", "2099-01-01"),  # in the future
            (n + 4, GOLDEN, "unemployment_registered", "2026-10-01"),  # fine
        ]
        db.executemany(
            "INSERT INTO change_events (seq, id_number, kind, occurred_on, recorded_at) "
            "VALUES (?, ?, ?, ?, '2026-10-02')",
            rows,
        )
        db.commit()
    await settle(mon)
    got = {e["seq"]: (e["outcome"], e["reason"]) for e in state.alerts.events("hrss") if e["seq"] > n}
    assert got == {
        n + 1: ("rejected", "bad ID number: the ID number's check character is wrong"),
        n + 2: ("rejected", "disability_changed is not published by hrss"),
        n + 3: ("rejected", "occurred_on 2099-01-01 is in the future"),
        n + 4: ("no_match", "no rule's conditions held"),
    }
    assert state.alerts.position("hrss") == n + 4


async def test_one_open_alert_per_rule_and_resident(mon: Hub) -> None:
    """The same kind of event again while the alert is open adds to its history; it raises no second alert."""
    [first, *_] = await _all_alerts(mon, "M2")
    dept, seq = emit_event(mon.settings, "hospital_discharge", first["idNumber"], clock=mon.clock)
    await settle(mon)
    same = [a for a in await _all_alerts(mon, "M2") if a["idNumber"] == first["idNumber"]]
    assert [a["id"] for a in same] == [first["id"]]
    assert same[0]["history"][-1]["action"] == "matched_again"
    assert same[0]["history"][-1]["detail"] == f"{dept}:{seq} (hospital_discharge) matched M2 again"


async def test_a_department_down_delays_its_events_and_loses_none(mon: Hub) -> None:
    state = mon.app.state.hub
    path = mon.settings.data_dir / "departments" / "traffic.sqlite"
    away = path.with_suffix(".away")
    with closing(_dept_db(mon, "public_security")) as db:
        someone = db.execute("SELECT id_number FROM residents ORDER BY id_number LIMIT 1").fetchone()[0]
    before = state.alerts.position("traffic")
    path.rename(away)
    state.sources["traffic"].engine.dispose()  # no pooled connection to the old file: the department is gone
    try:
        with closing(sqlite3.connect(away)) as db:
            db.execute(
                "INSERT INTO change_events (seq, id_number, kind, occurred_on, recorded_at) "
                "VALUES (?, ?, 'vehicle_registered', '2026-10-01', '2026-10-01')",
                (before + 1, someone),
            )
            db.commit()
        await asyncio.sleep(0.5)  # several polls: the department does not answer
        assert state.alerts.position("traffic") == before
    finally:
        away.rename(path)
    state.sources["traffic"].breaker.success()  # let the next poll through at once instead of after the reset
    await settle(mon)
    assert state.alerts.position("traffic") == before + 1
    assert [e["seq"] for e in state.alerts.events("traffic")][-1] == before + 1
