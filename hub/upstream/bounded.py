"""Bounded answers from a department subgraph or a remote hub: read streamed, under a byte cap.

The caller also bounds the whole call by a deadline (``anyio.fail_after``): httpx's own timeout applies to
each read, so a peer dripping a byte at a time would otherwise hold the request open indefinitely. The cap
counts decoded bytes (after any ``Content-Encoding``), so a compressed bomb is stopped at the same size.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

DEFAULT_MAX_BYTES = 4_000_000


class AnswerTooLarge(ValueError):
    """The peer's answer is larger than ``HUB_SOURCE_MAX_BYTES``; it was not read further."""


async def post_json(
    client: httpx.AsyncClient, url: str, *, json_body: Any, headers: dict[str, str], max_bytes: int
) -> tuple[httpx.Response, Any]:
    """POST ``json_body`` and read the JSON answer, at most ``max_bytes`` of it (``AnswerTooLarge`` beyond).
    Returns the response (status, headers; its body already consumed) and the parsed JSON (``ValueError``
    if it is not JSON)."""
    async with client.stream("POST", url, json=json_body, headers=headers) as r:
        declared = r.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_bytes:
            raise AnswerTooLarge(f"the answer declares {declared} bytes, more than {max_bytes}")
        chunks: list[bytes] = []
        size = 0
        async for chunk in r.aiter_bytes():
            size += len(chunk)
            if size > max_bytes:
                raise AnswerTooLarge(f"the answer is larger than {max_bytes} bytes")
            chunks.append(chunk)
    return r, json.loads(b"".join(chunks))
