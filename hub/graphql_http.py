"""GraphQL over HTTP media types (docs/operations.md, "Standard answers").

The GraphQL-over-HTTP specification lets a client choose the answer's media type with ``Accept``:

* ``application/graphql-response+json``: the status says what happened. A request error (the request was
  refused before execution: parse, validation, limits, policy) is 4xx and its body has no ``data`` entry; an
  executed operation is 200, with partial data and field errors in the body.
* ``application/json``: every answer to a *well-formed* GraphQL-over-HTTP request is 200 (the errors are in the
  body), so a client that stops at a non-2xx status (generated clients do) still reads ``extensions.code`` and
  the denied coordinates. Refusals before the request is well formed (no or a bad token, the ``X-Hub-*``
  headers, a body that is too large, not JSON or not a GraphQL request) keep their 4xx status, as do 429 and
  every 5xx (``AUDIT_UNAVAILABLE``: nothing was released; retry).

A request with no ``Accept`` header, with only wildcards, or with no media type the hub serves gets the hub's
answers as they were before this module (status per error code, ``application/json``): ``LEGACY``."""

from __future__ import annotations

from typing import Any

GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"
APPLICATION_JSON = "application/json"
LEGACY = ""  # no preference expressed: the hub's own status per code, as application/json
SERVED = (GRAPHQL_RESPONSE_JSON, APPLICATION_JSON)


def negotiate(accept: str | None) -> str:
    """The media type to answer in: the served type the client ranks highest (``q``, then order), or ``LEGACY``."""
    if not accept:
        return LEGACY
    best, best_q = LEGACY, 0.0
    for item in accept.split(",")[:20]:
        media, *params = (p.strip() for p in item.split(";"))
        media = media.lower()
        if media not in SERVED:
            continue
        q = 1.0
        for param in params:
            key, _, raw = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(raw.strip())
                except ValueError:
                    q = 0.0
        if q > best_q:
            best, best_q = media, q
    return best


def status_for(media: str, status: int, well_formed: bool) -> int:
    """The HTTP status to send, for the hub's own ``status`` of the answer."""
    if media == APPLICATION_JSON and well_formed and 400 <= status < 500 and status != 429:
        return 200
    return status


def shaped(media: str, status: int, body: dict[str, Any]) -> dict[str, Any]:
    """The body as the media type wants it: a graphql-response+json request error has no ``data`` entry."""
    if media == GRAPHQL_RESPONSE_JSON and status >= 400 and body.get("data", 0) is None:
        return {k: v for k, v in body.items() if k != "data"}
    return body


def content_type(media: str) -> str:
    return f"{media or APPLICATION_JSON}; charset=utf-8" if media == GRAPHQL_RESPONSE_JSON else APPLICATION_JSON
