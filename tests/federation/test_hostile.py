"""A hostile department subgraph and a hostile remote hub, as small real servers on 127.0.0.1: nothing they send
reaches the consumer unchecked, and nothing they send can hold the hub's memory or time."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from hub.demo.subgraph import build_schema
from hub.ids import make_id
from hub.sources.sql import readonly_engine
from tests.conftest import serve, without_receipt
from tests.live import Fed, FedHub, running
from tests.sources.test_subgraph import _ids

Answer = Callable[[dict[str, Any]], Awaitable[Response]]
NOBODY = make_id("110101", date(1990, 3, 7), 1)  # valid, and not in this region's data
CAP = 1_000_000


class Hostile:
    """What the hostile server answers next (``answer``), and every body it received."""

    def __init__(self, sdl: str = "") -> None:
        self.sdl = sdl
        self.bodies: list[dict[str, Any]] = []
        self.answer: Answer | None = None

    def app(self) -> Starlette:
        async def graphql(request: Request) -> Response:
            body = json.loads(await request.body())
            if "_service" in body["query"]:
                return JSONResponse({"data": {"_service": {"sdl": self.sdl}}})
            self.bodies.append(body)
            assert self.answer is not None
            return await self.answer(body)

        async def token(request: Request) -> Response:
            return JSONResponse({"access_token": "t", "token_type": "Bearer", "expires_in": 300})

        routes = [Route("/graphql", graphql, methods=["POST"]), Route("/oauth/token", token, methods=["POST"])]
        return Starlette(routes=routes)


def reply(data: Any, headers: dict[str, str] | None = None, **extra: Any) -> Answer:
    async def answer(body: dict[str, Any]) -> Response:
        return JSONResponse({"data": data, **extra}, headers=headers)

    return answer


def huge(prefix: bytes, total: int, suffix: bytes) -> Answer:
    """A valid JSON answer of ``total`` bytes: a string of spaces between ``prefix`` and ``suffix``."""

    async def answer(body: dict[str, Any]) -> Response:
        async def chunks() -> AsyncIterator[bytes]:
            yield prefix
            for _ in range(total // 65_536):
                yield b" " * 65_536
            yield suffix

        return StreamingResponse(chunks(), media_type="application/json")

    return answer


def drip(prefix: bytes, every: float) -> Answer:
    """An answer that never ends: one byte every ``every`` seconds."""

    async def answer(body: dict[str, Any]) -> Response:
        async def chunks() -> AsyncIterator[bytes]:
            yield prefix
            for _ in range(600):
                await asyncio.sleep(every)
                yield b" "

        return StreamingResponse(chunks(), media_type="application/json")

    return answer


# A deadline that a loaded machine meets for the tests that expect an answer (a 2 s one failed them under load 10);
# the tests of the bounds set BOUND_DEADLINE for their own request.
ANSWER_DEADLINE = 10.0
BOUND_DEADLINE = 2.0


@contextlib.contextmanager
def deadline(upstream: Any, seconds: float) -> Iterator[None]:
    """``upstream``'s whole-call deadline set to ``seconds`` for the block."""
    before, upstream.timeout = upstream.timeout, seconds
    try:
        yield
    finally:
        upstream.timeout = before


# -- a hostile remote hub ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def evil_hub() -> Iterator[tuple[Hostile, str]]:
    h = Hostile()
    with serve(h.app()) as url:
        yield h, url


@pytest.fixture(scope="module")
async def hub_e(fed: Fed, evil_hub: tuple[Hostile, str]) -> AsyncIterator[FedHub]:
    settings = fed.settings(
        "evil-remote",
        remote_hubs={"evil": evil_hub[1]},
        remote_credentials={"evil": ("region-a", "s")},
        source_timeout=ANSWER_DEADLINE,
        source_max_bytes=CAP,
        breaker_threshold=100,
    )
    async with running(settings) as h:
        yield h


async def test_remote_answer_is_completed_from_the_selection_only(evil_hub: tuple[Hostile, str], hub_e: FedHub) -> None:
    evil, _ = evil_hub
    person = {
        "name": "王某",
        "annualWageIncome": 91000,
        "x": "<script>alert(1)</script>",
        "tax": {"annualWageIncome": 91000, "businessIncome": 0},
    }
    error = {"message": "Traceback: /srv/hub/app.py line 3", "path": ["person", "tax"], "extensions": {"code": "X_1"}}
    evil.answer = reply({"person": person, "people": [1]}, {"x-request-id": "forged-id-../../etc"}, errors=[error])
    r = await hub_e.query(f'{{ person(idNumber: "{NOBODY}") {{ name }} }}')
    body = r.json()
    assert body["data"] == {"person": {"name": "王某"}}
    assert [(e["message"], e["path"], e["extensions"]["code"]) for e in body["errors"]] == [
        ("evil: the region's hub did not answer this field", ["person", "tax"], "UPSTREAM_UNAVAILABLE")
    ]
    assert "Traceback" not in r.text and "script" not in r.text and "91000" not in r.text
    entry = hub_e.audit(r.headers["x-request-id"])
    assert entry["remote"] == [
        {
            "hub": "evil",
            "request_id": "",
            "dropped": ["people", "person.annualWageIncome", "person.tax", "person.x"],
            "errors": ["X_1"],
        }
    ]
    assert entry["subject_count"] == 1 and "forged" not in json.dumps(entry)
    assert [(b["query"], b["variables"]) for b in evil.bodies[-1:]] == [
        (f'{{\n  person(idNumber: "{NOBODY}") {{\n    name\n  }}\n}}', {})
    ]


@pytest.mark.parametrize(
    "person",
    [
        {"name": 42},  # not a String
        {"name": None, "idNumber": NOBODY},  # null in a non-null field
        {"idNumber": "110101199003070000", "name": "x"},  # another resident than the one asked
        [{"name": "x"}],  # a list where an object belongs
    ],
)
async def test_remote_answer_that_does_not_fit_is_unavailable(
    evil_hub: tuple[Hostile, str], hub_e: FedHub, person: Any
) -> None:
    evil, _ = evil_hub
    evil.answer = reply({"person": person}, {"x-request-id": "0" * 32})
    q = f'{{ person(idNumber: "{NOBODY}") {{ idNumber name }} }}'
    r = await hub_e.query(q)
    body = r.json()
    entry = hub_e.audit(r.headers["x-request-id"])
    assert body["data"] == {"person": None}
    assert [e["extensions"]["code"] for e in body["errors"]] == ["UPSTREAM_UNAVAILABLE"]
    assert entry["upstream_failures"] == ["hub:evil"] and entry["subject_count"] == 0
    assert entry["remote"] == [{"hub": "evil", "request_id": "0" * 32, "failed": True}]


@pytest.mark.parametrize("kind", ["huge", "drip"])
async def test_remote_answer_is_bounded(evil_hub: tuple[Hostile, str], hub_e: FedHub, kind: str) -> None:
    evil, _ = evil_hub
    if kind == "huge":  # 20 MB, valid JSON: a name of 20 million spaces
        evil.answer = huge(b'{"data": {"person": {"name": "', 20_000_000, b'"}}}')
    else:
        evil.answer = drip(b'{"data": {"person": {"name": "', 0.2)
    [remote] = hub_e.app.state.hub.remotes.hubs
    with deadline(remote, BOUND_DEADLINE):
        started = time.monotonic()
        r = await hub_e.query(f'{{ person(idNumber: "{NOBODY}") {{ name }} }}')
        elapsed = time.monotonic() - started
    body = r.json()
    assert body["data"] == {"person": None} and body["errors"][0]["extensions"]["code"] == "UPSTREAM_UNAVAILABLE"
    # huge: refused (a valid 20 MB answer read whole would have been accepted), so the cap stopped it; drip: the
    # whole-call deadline (2 s) ended it, not the 120 s the drip takes. Room for a loaded machine: a bound near
    # the deadline failed once under load 17.
    assert elapsed < 10.0, elapsed
    assert hub_e.audit(r.headers["x-request-id"])["upstream_failures"] == ["hub:evil"]


# -- a hostile department subgraph --------------------------------------------------------------------------------


def _sdl(fed: Fed, code: str) -> str:
    schema = build_schema(code, readonly_engine(f"sqlite:///{fed.root / 'departments' / f'{code}.sqlite'}"))
    result = schema.execute_sync("{ _service { sdl } }")
    assert result.data is not None
    sdl: str = result.data["_service"]["sdl"]
    return sdl


@pytest.fixture(scope="module")
def evil_edu(fed: Fed) -> Iterator[tuple[Hostile, str]]:
    h = Hostile(_sdl(fed, "education"))
    with serve(h.app()) as url:
        yield h, url + "/graphql"


@pytest.fixture(scope="module")
async def hub_s(fed: Fed, evil_edu: tuple[Hostile, str]) -> AsyncIterator[FedHub]:
    settings = fed.settings(
        "evil-subgraph",
        department_urls={"education": evil_edu[1]},
        source_timeout=ANSWER_DEADLINE,
        source_max_bytes=CAP,
        breaker_threshold=100,
    )
    async with running(settings) as h:
        yield h


def _row(id_number: str, **over: Any) -> dict[str, Any]:
    row = {"idNumber": id_number, "enrolled": True, "stage": "primary", "school": "S", "aidReceived": False}
    return {**row, "dropoutFlag": False, **over}


def entities(make: Callable[[list[str], dict[str, Any]], list[Any]]) -> Answer:
    async def answer(body: dict[str, Any]) -> Response:
        ids = [r["idNumber"] for r in body["variables"]["r"]]
        return JSONResponse({"data": {"_entities": make(ids, body)}})

    return answer


async def test_subgraph_rows_must_answer_the_resident_asked(
    fed: Fed, evil_edu: tuple[Hostile, str], hub_s: FedHub
) -> None:
    evil, _ = evil_edu
    ids = _ids(fed, 3)
    q = "query($ids: [String!]!) { people(idNumbers: $ids) { name education { stage school } } }"
    honest = entities(lambda got, _: [{"enrolment": [_row(i)]} for i in got])
    evil.answer = honest
    r = await hub_s.query(q, variables={"ids": ids})
    assert [p["education"] for p in r.json()["data"]["people"]] == [{"stage": "primary", "school": "S"}] * 3
    for bad in (
        lambda got, _: [{"enrolment": [_row(got[0])]} for _ in got],  # every resident given the first's row
        lambda got, _: [{"enrolment": [_row(i, stage=None)]} for i in got],  # null in a non-null column
        lambda got, _: [{"enrolment": [_row(i, school=7)]} for i in got],  # not a string
        lambda got, _: [{"enrolment": {"idNumber": i}} for i in got],  # an object where a list belongs
        lambda got, _: [{"enrolment": [{"idNumber": i}]} for i in got],  # columns asked for are missing
    ):
        evil.answer = entities(bad)
        r = await hub_s.query(q, variables={"ids": ids})
        body = r.json()
        assert [p["education"] for p in body["data"]["people"]] == [None] * 3, body
        assert {e["extensions"]["code"] for e in body["errors"]} == {"UPSTREAM_UNAVAILABLE"}
        assert hub_s.audit(r.headers["x-request-id"])["upstream_failures"] == ["education"]
        assert all(p["name"] for p in body["data"]["people"])  # other departments are unaffected


async def test_subgraph_predicates_are_answered_at_the_department(
    fed: Fed, evil_edu: tuple[Hostile, str], hub_s: FedHub
) -> None:
    evil, _ = evil_edu
    ids = _ids(fed, 2)
    evil.answer = entities(lambda got, _: [{"p0": i == got[0], "p1": False} for i in got])
    q = "query($ids: [String!]!) { people(idNumbers: $ids) { education { isFullTimeStudent droppedOut } } }"
    r = await hub_s.query(q, variables={"ids": ids})
    body = r.json()
    assert "errors" not in body, body
    assert body["data"]["people"] == [
        {"education": {"isFullTimeStudent": ids[0] == sorted(ids)[0], "droppedOut": False}},
        {"education": {"isFullTimeStudent": ids[1] == sorted(ids)[0], "droppedOut": False}},
    ]
    sent = evil.bodies[-1]
    assert "enrolled" not in sent["query"] and "dropoutFlag" not in sent["query"]  # no compared column asked
    assert "enrolmentMatches(where: $w0)" in sent["query"] and "enrolmentMatches(where: $w1)" in sent["query"]
    assert sorted((json.loads(sent["variables"][w]) for w in ("w0", "w1")), key=json.dumps) == sorted(
        [
            {"op": "is_true", "args": [{"column": "dropout_flag"}]},
            {"op": "is_true", "args": [{"column": "enrolled"}]},
        ],
        key=json.dumps,
    )
    assert "predicates_in_hub" not in hub_s.audit(r.headers["x-request-id"])
    evil.answer = entities(lambda got, _: [{"p0": None, "p1": False} for _ in got])  # not a yes/no
    r = await hub_s.query(q, variables={"ids": ids})
    assert {e["extensions"]["code"] for e in r.json()["errors"]} == {"UPSTREAM_UNAVAILABLE"}


async def test_predicate_threshold_is_sent_and_the_fallback_is_named(fed: Fed, tmp_path: Path) -> None:
    med = Hostile(_sdl(fed, "medical_security"))
    med.answer = entities(lambda got, _: [{"p0": True} for _ in got])
    pid = _ids(fed, 1)[0]
    q = f'{{ person(idNumber: "{pid}") {{ medical {{ outOfPocket12mAtLeast(threshold: 20000) }} }} }}'
    with serve(med.app()) as url:
        async with running(fed.settings("med-at-dept", department_urls={"medical_security": url + "/graphql"})) as h:
            r = await h.query(q, purpose="MON")
            assert without_receipt(r.json()) == {"data": {"person": {"medical": {"outOfPocket12mAtLeast": True}}}}, (
                r.text
            )
            assert "oop12m" not in med.bodies[-1]["query"]
            assert json.loads(med.bodies[-1]["variables"]["w0"]) == {
                "op": ">=",
                "args": [{"column": "oop_12m"}, {"value": 20000}],
            }
        # the fallback: the department sends the compared column, the hub evaluates; the audit entry says so
        med.answer = entities(lambda got, _: [{"medical": [{"idNumber": i, "oop12m": "25000.00"}]} for i in got])
        settings = fed.settings(
            "med-in-hub", department_urls={"medical_security": url + "/graphql"}, predicates_in_hub="medical_security"
        )
        async with running(settings) as h:
            r = await h.query(q, purpose="MON")
            assert without_receipt(r.json()) == {"data": {"person": {"medical": {"outOfPocket12mAtLeast": True}}}}, (
                r.text
            )
            assert "medical { idNumber oop12m }" in med.bodies[-1]["query"]
            assert h.audit(r.headers["x-request-id"])["predicates_in_hub"] == ["medical_security"]


@pytest.mark.parametrize("kind", ["huge", "drip"])
async def test_subgraph_answer_is_bounded(fed: Fed, evil_edu: tuple[Hostile, str], hub_s: FedHub, kind: str) -> None:
    evil, _ = evil_edu
    pid = _ids(fed, 1)[0]
    row = json.dumps(_row(pid, school="")).encode()
    head, tail = row.split(b'"school": ""')
    if kind == "huge":  # 20 MB of valid JSON: one school name of 20 million spaces
        evil.answer = huge(
            b'{"data": {"_entities": [{"enrolment": [' + head + b'"school": "', 20_000_000, b'"' + tail + b"]}]}}"
        )
    else:
        evil.answer = drip(b'{"data": {"_entities": [', 0.2)
    with deadline(hub_s.source("education"), BOUND_DEADLINE):
        started = time.monotonic()
        r = await hub_s.query(f'{{ person(idNumber: "{pid}") {{ name education {{ school }} }} }}')
        elapsed = time.monotonic() - started
    body = r.json()
    assert body["data"]["person"]["name"] and body["data"]["person"]["education"] is None
    assert body["errors"][0]["extensions"]["code"] == "UPSTREAM_UNAVAILABLE"
    # huge: refused (a valid 20 MB answer read whole would have been accepted), so the cap stopped it; drip: the
    # whole-call deadline (2 s) ended it, not the 120 s the drip takes. Room for a loaded machine: a bound near
    # the deadline failed once under load 17.
    assert elapsed < 10.0, elapsed
