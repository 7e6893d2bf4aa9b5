"""Structured logs carry the request id: the access line and a department's failure logged inside the request
have the same id as the answer's x-request-id header and its audit entry."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from hub.errors import ConfigError
from hub.logs import JsonFormatter, RequestIdFilter, log_handler
from hub.settings import Settings
from tests.conftest import Hub
from tests.ops.conftest import OwnHub

QUERY = "query($id: String!) { person(idNumber: $id) { name tax { incomeBand } } }"


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """The hub's loggers written as JSON lines into a buffer, as ``HUB_LOG_FORMAT=json`` writes them."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    logger = logging.getLogger("hub")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        yield buffer
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def records(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


async def test_access_line_carries_the_request_id(hub: Hub, json_lines: io.StringIO, audit_tail: Any) -> None:
    r = await hub.query(QUERY, variables={"id": hub.data.golden_id})
    assert r.status_code == 200
    request_id = r.headers["x-request-id"]
    [access] = [x for x in records(json_lines) if x["logger"] == "hub.access" and x["http"]["route"] == "/graphql"]
    assert access["request_id"] == request_id == audit_tail()[-1]["request_id"]
    expected = {"method": "POST", "route": "/graphql", "status": 200, "duration_ms": 0}
    assert access["http"] | {"duration_ms": 0} == expected
    assert access["level"] == "INFO" and access["message"] == "POST /graphql 200"
    assert hub.data.golden_id not in json_lines.getvalue()
    # outside a GraphQL request there is no request id, and never the previous request's
    await hub.client.get("/livez")
    livez = [x for x in records(json_lines) if x["logger"] == "hub.access" and x["http"]["route"] == "/livez"]
    assert livez[-1]["request_id"] is None


async def test_a_department_failure_is_logged_with_its_request_id(own_hub: OwnHub, json_lines: io.StringIO) -> None:
    async with own_hub(department_urls={"tax": "sqlite:////nonexistent/dir/tax.sqlite"}) as hub:
        first = await hub.query(QUERY, variables={"id": hub.data.golden_id})
        second = await hub.query(QUERY, variables={"id": hub.data.golden_id})
    ids = [first.headers["x-request-id"], second.headers["x-request-id"]]
    failures = [x for x in records(json_lines) if x["logger"] == "hub.sources"]
    assert [x["request_id"] for x in failures] == ids  # logged in the loader's task, still bound to its request
    assert failures[0]["message"] == "department tax failed: OperationalError"
    assert failures[0]["level"] == "WARNING"


def test_text_format_carries_the_request_id() -> None:
    handler = log_handler("text")
    record = logging.LogRecord("hub.gateway", logging.WARNING, __file__, 1, "something %s", ("odd",), None)
    assert handler.filter(record)
    assert handler.format(record).endswith(" WARNING hub.gateway [-] something odd")


def test_log_format_is_checked() -> None:
    assert Settings.from_env({"HUB_LOG_FORMAT": "json"}).log_format == "json"
    with pytest.raises(ConfigError) as err:
        Settings.from_env({"HUB_LOG_FORMAT": "xml"})
    assert err.value.code == "BAD_SETTING" and "HUB_LOG_FORMAT" in err.value.message
