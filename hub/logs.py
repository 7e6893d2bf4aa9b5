"""Logs that carry the request id (docs/operations.md): ``HUB_LOG_FORMAT=json`` writes one JSON object per line,
``text`` (the default) a readable line. Every record logged while a request is handled, in whatever task the
request started (loaders, department calls), carries that request's id: the same id as the ``x-request-id``
header, ``extensions.requestId`` and the audit entry's ``request_id``.

What is logged is unchanged: resident ID numbers, secrets and keys are never logged in either format."""

from __future__ import annotations

import json
import logging
import sys
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from hub.errors import ConfigError

LOG_FORMATS = ("text", "json")

REQUEST_ID: ContextVar[str] = ContextVar("hub_request_id", default="")


def new_request_id() -> str:
    """A fresh id for the request being handled, bound to the logs of everything it does from here on."""
    request_id = uuid.uuid4().hex
    REQUEST_ID.set(request_id)
    return request_id


class RequestIdFilter(logging.Filter):
    """Puts the current request's id on every record (``-`` outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", ""):
            record.request_id = REQUEST_ID.get() or "-"
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC, ISO 8601), level, logger, message, request_id, the ``http`` block
    of access records, and the exception's traceback when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": _request_id(record),
        }
        http = getattr(record, "http", None)
        if http is not None:
            out["http"] = http
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


def _request_id(record: logging.LogRecord) -> str | None:
    bound = getattr(record, "request_id", "") or REQUEST_ID.get()
    return None if bound in ("", "-") else str(bound)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


def log_handler(fmt: str) -> logging.Handler:
    if fmt not in LOG_FORMATS:
        raise ConfigError(f"HUB_LOG_FORMAT: {fmt!r} is not one of {', '.join(LOG_FORMATS)}", code="BAD_SETTING")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    handler.addFilter(RequestIdFilter())
    return handler


def configure_logging(fmt: str, level: int = logging.INFO) -> None:
    """The root logger writes to stderr in ``fmt`` (``hub serve``; uvicorn's own loggers propagate to it)."""
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(log_handler(fmt))
    root.setLevel(level)
    logging.getLogger("alembic").setLevel(logging.WARNING)  # not a line per migration plugin at every start
