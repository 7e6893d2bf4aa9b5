"""The alert subscription over a real server (uvicorn, a real WebSocket, graphql-transport-ws): token, purpose MON
and officer checked at connect, the area on every alert, each delivery audited; the legacy graphql-ws refused.
The golden scenario: the M1 alert for 330113195203180176 arrives at a 临平 office subscriber and not at 西湖's."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from hub.app import create_app
from hub.db import audit_entries
from hub.demo.events import emit_event
from hub.demo.generate import GenerateResult
from tests.conftest import make_settings, serve, working_clock
from tests.monitor.test_monitor import GOLDEN, STORY

CLIENTS = {
    "linping-cw": ("civil_affairs", "330113", ["MON", "CASE"], ["caseworker"]),
    "xihu-cw": ("civil_affairs", "330106", ["MON", "CASE"], ["caseworker"]),
    "linping-plain": ("civil_affairs", "330113", ["MON", "CASE"], []),
}
SUBSCRIPTION = "subscription New { alertCreated { id ruleId idNumber areaName estimatedMonthly programmes { id } } }"


class Served:
    def __init__(self, app: Any, url: str, secrets: dict[str, str]) -> None:
        self.app, self.url, self.secrets = app, url, secrets
        self.ws_url = url.replace("http://", "ws://") + "/graphql"

    def token(self, client: str) -> str:
        r = httpx.post(
            f"{self.url}/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(client, self.secrets[client]),
        )
        assert r.status_code == 200, r.text
        return str(r.json()["access_token"])

    def entries(self, after: int = -1) -> list[dict[str, Any]]:
        with self.app.state.hub.engine.connect() as conn:
            rows = conn.execute(
                select(audit_entries.c.entry).where(audit_entries.c.seq > after).order_by(audit_entries.c.seq)
            )
            return [json.loads(r[0]) for r in rows]

    def last_seq(self) -> int:
        with self.app.state.hub.engine.connect() as conn:
            found = conn.execute(select(audit_entries.c.seq).order_by(audit_entries.c.seq.desc()).limit(1)).scalar()
        return -1 if found is None else int(found)


@pytest.fixture(scope="module")
def served(dept_data: tuple[Path, GenerateResult], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("subscription")
    shutil.copytree(dept_data[0] / "departments", root / "departments")
    settings = make_settings(root, monitor=True, monitor_interval=0.05)
    app = create_app(settings, sign_interval=3600, clock=working_clock())
    secrets = {cid: app.state.hub.clients.add(cid, *spec)[1] for cid, spec in CLIENTS.items()}
    with serve(app) as url:
        yield Served(app, url, secrets)


async def open_socket(served: Served, client: str, officer: str = "officer-li") -> ClientConnection:
    ws = await connect(served.ws_url, subprotocols=["graphql-transport-ws"])  # type: ignore[list-item]
    init = {"Authorization": f"Bearer {served.token(client)}", "X-Hub-Purpose": "MON", "X-Hub-Officer": officer}
    await ws.send(json.dumps({"type": "connection_init", "payload": init}))
    return ws


async def subscribed(served: Served, client: str) -> ClientConnection:
    ws = await open_socket(served, client)
    assert json.loads(await asyncio.wait_for(ws.recv(), 10)) == {"type": "connection_ack"}
    await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIPTION}}))
    return ws


async def wait_caught_up(served: Served) -> None:
    from tests.monitor.test_monitor import settle

    class _H:  # settle() reads hub.settings and hub.app
        settings = served.app.state.hub.settings
        app = served.app

    await settle(_H())  # type: ignore[arg-type]


async def test_golden_alert_reaches_linping_not_xihu(served: Served) -> None:
    await wait_caught_up(served)  # the demo's own events are handled before anyone subscribes
    feed = served.app.state.hub.alert_feed
    already = feed.following
    linping, xihu = await subscribed(served, "linping-cw"), await subscribed(served, "xihu-cw")
    for _ in range(200):  # both subscriptions are following: their cursors are set
        if feed.following >= already + 2:
            break
        await asyncio.sleep(0.05)
    assert feed.following == already + 2
    before = served.last_seq()
    state = served.app.state.hub
    emit_event(state.settings, "disability_changed", GOLDEN, category=4, grade=2, clock=state.clock)
    message = json.loads(await asyncio.wait_for(linping.recv(), 20))
    assert message["type"] == "next" and message["id"] == "1"
    alert = message["payload"]["data"]["alertCreated"]
    assert (alert["ruleId"], alert["idNumber"], alert["areaName"]) == ("M1", GOLDEN, "临平区运河街道")
    assert {p["id"] for p in alert["programmes"]} == STORY and alert["estimatedMonthly"] == 2000
    receipt = message["payload"]["extensions"]["receipt"]
    with pytest.raises(TimeoutError):  # 西湖's office is told nothing of a 临平 resident
        await asyncio.wait_for(xihu.recv(), 1.5)
    # the delivery was audited before it was sent: the alert id as case reference, the resident as a pseudonym
    [delivered] = [e for e in served.entries(before) if e.get("route") == "subscription"]
    assert delivered["client_id"] == "linping-cw" and delivered["officer"] == "officer-li"
    assert (delivered["purpose"], delivered["case_ref"], delivered["decision"]) == ("MON", alert["id"], "allow")
    assert delivered["subject_count"] == 1 and delivered["operation_name"] == "New"
    assert served.entries(receipt["seq"] - 1)[0]["request_id"] == delivered["request_id"]  # the receipt names it
    await linping.send(json.dumps({"id": "1", "type": "complete"}))
    await linping.close()
    await xihu.close()


async def test_subscription_started_is_audited_and_denied_without_role(served: Served) -> None:
    before = served.last_seq()
    ws = await subscribed(served, "xihu-cw")
    for _ in range(200):  # the start is audited before the subscription follows
        if any(e.get("subscription") == "started" for e in served.entries(before)):
            break
        await asyncio.sleep(0.05)
    [started] = [e for e in served.entries(before) if e.get("subscription") == "started"]
    assert (started["client_id"], started["decision"], started["purpose"]) == ("xihu-cw", "allow", "MON")
    await ws.close()
    # a client without the caseworker role is refused at connect, and the refusal is audited
    plain = await open_socket(served, "linping-plain")
    with pytest.raises(ConnectionClosed) as closed:
        await asyncio.wait_for(plain.recv(), 10)
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4403, "Forbidden: ROLE_REQUIRED")
    refused = [e for e in served.entries(before) if e.get("operation_name") == "connection_init"]
    assert [(e["client_id"], e["decision"], e["reasons"]) for e in refused] == [
        ("linping-plain", "deny", ["ROLE_REQUIRED"])
    ]


@pytest.mark.parametrize(
    ("purpose", "officer", "token", "reason"),
    [
        ("CASE", "officer-li", True, "Forbidden: FORBIDDEN"),  # alerts are subscribed to under MON
        ("MON", "", True, "Forbidden: OFFICER_REQUIRED"),
        ("MON", "officer-li", False, "Forbidden: TOKEN_MALFORMED"),
    ],
)
async def test_connect_checks_purpose_officer_token(
    served: Served, purpose: str, officer: str, token: bool, reason: str
) -> None:
    ws = await connect(served.ws_url, subprotocols=["graphql-transport-ws"])  # type: ignore[list-item]
    init = {"X-Hub-Purpose": purpose, "X-Hub-Officer": officer, "X-Hub-Case": "AL20261201-00000000"}
    init["Authorization"] = f"Bearer {served.token('linping-cw')}" if token else "Bearer"
    await ws.send(json.dumps({"type": "connection_init", "payload": init}))
    with pytest.raises(ConnectionClosed) as closed:
        await asyncio.wait_for(ws.recv(), 10)
    assert closed.value.rcvd is not None and (closed.value.rcvd.code, closed.value.rcvd.reason) == (4403, reason)


async def test_subscribe_before_ack_and_legacy_protocol_are_refused(served: Served) -> None:
    with pytest.raises(InvalidStatus) as refused:  # the legacy graphql-ws protocol is not served at all
        await connect(served.ws_url, subprotocols=["graphql-ws"])  # type: ignore[list-item]
    assert refused.value.response.status_code == 403
    ws = await connect(served.ws_url, subprotocols=["graphql-transport-ws"])  # type: ignore[list-item]
    await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIPTION}}))
    with pytest.raises(ConnectionClosed) as closed:
        await asyncio.wait_for(ws.recv(), 10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401


async def test_queries_are_not_served_on_the_socket_nor_subscriptions_by_post(served: Served) -> None:
    ws = await open_socket(served, "linping-cw")
    assert json.loads(await asyncio.wait_for(ws.recv(), 10)) == {"type": "connection_ack"}
    await ws.send(json.dumps({"id": "q", "type": "subscribe", "payload": {"query": "{ alerts { hasMore } }"}}))
    message = json.loads(await asyncio.wait_for(ws.recv(), 10))
    assert (message["type"], message["payload"][0]["extensions"]["code"]) == ("error", "BAD_REQUEST")
    await ws.close()
    r = httpx.post(
        f"{served.url}/graphql",
        json={"query": SUBSCRIPTION},
        headers={"authorization": f"Bearer {served.token('linping-cw')}", "x-hub-purpose": "MON",
                 "x-hub-officer": "officer-li"},
    )  # fmt: skip
    assert r.status_code == 400 and r.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
