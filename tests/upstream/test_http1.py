"""The hub's HTTP/1.1 client for subgraph POSTs (hub/upstream/http1.py) against a scripted server on 127.0.0.1:
keep-alive reuse, the answer forms a peer may use, the byte cap, refused encodings, and a peer that closed an idle
connection."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from hub.upstream.bounded import AnswerTooLarge
from hub.upstream.http1 import JsonPoster

Script = Callable[[int, bytes], bytes | None]  # (request number, request bytes) -> raw answer; None: close


@asynccontextmanager
async def scripted(script: Script) -> AsyncIterator[tuple[str, list[bytes], list[int]]]:
    """A server answering each request with ``script``; yields its URL, the requests and each one's connection."""
    requests: list[bytes] = []
    conns: list[int] = []
    count = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal count
        me = count
        count += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                )
                body = await reader.readexactly(length)
                requests.append(head + body)
                conns.append(me)
                answer = script(len(requests), body)
                if answer is None:
                    break
                writer.write(answer)
                await writer.drain()
                if b"\r\nconnection: close\r\n" in answer.split(b"\r\n\r\n")[0] + b"\r\n":
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/graphql", requests, conns
    finally:
        server.close()


def ok(payload: object, *headers: str) -> bytes:
    body = json.dumps(payload).encode()
    head = ["HTTP/1.1 200 OK", "content-type: application/json", f"content-length: {len(body)}", *headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def chunked(payload: object) -> bytes:
    body = json.dumps(payload).encode()
    parts = [body[:5], body[5:]]
    chunks = b"".join(f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in parts)
    return b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n"


async def test_json_post_and_keep_alive() -> None:
    async with scripted(lambda n, body: ok({"n": n, "got": json.loads(body)})) as (url, requests, conns):
        poster = JsonPoster(url)
        for i in range(3):
            status, payload = await poster.post({"query": "q", "variables": {"i": i, "名": "张"}}, {"x-a": "b"}, 10_000)
            assert (status, payload) == (200, {"n": i + 1, "got": {"query": "q", "variables": {"i": i, "名": "张"}}})
        assert conns == [0, 0, 0]  # one connection, reused
        head = requests[0].split(b"\r\n\r\n")[0].decode()
        assert head.startswith("POST /graphql HTTP/1.1\r\n")
        assert "accept-encoding: identity" in head and "x-a: b" in head and f"host: {url[7:].split('/')[0]}" in head
        poster.close()


async def test_chunked_and_until_close_answers() -> None:
    answers = {1: chunked({"a": 1}), 2: b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n" + json.dumps({"b": 2}).encode()}

    async with scripted(lambda n, body: answers.get(n, ok({"c": n}))) as (url, _, conns):
        poster = JsonPoster(url)
        assert await poster.post({}, {}, 1000) == (200, {"a": 1})
        # an answer without a length runs until the peer closes: read whole, and the connection is not reused
        assert await poster.post({}, {}, 1000) == (200, {"b": 2})
        assert await poster.post({}, {}, 1000) == (200, {"c": 3})
        assert conns == [0, 0, 1]
        poster.close()


async def test_the_byte_cap_and_refused_encodings() -> None:
    big = {"s": "x" * 5000}
    cases = {1: ok(big), 2: chunked(big), 3: ok({"a": 1}, "content-encoding: gzip")}
    async with scripted(lambda n, body: cases[n]) as (url, _, _):
        poster = JsonPoster(url)
        with pytest.raises(AnswerTooLarge, match="declares 5009 bytes, more than 1000"):
            await poster.post({}, {}, 1000)
        with pytest.raises(AnswerTooLarge, match="larger than 1000 bytes"):
            await poster.post({}, {}, 1000)
        with pytest.raises(ValueError, match="an encoded answer \\(gzip\\) was not asked for"):
            await poster.post({}, {}, 1000)
        with pytest.raises(ValueError, match="line break"):
            await poster.post({}, {"x": "a\r\nevil: 1"}, 1000)


async def test_a_connection_the_peer_closed_while_idle_is_replaced() -> None:
    def script(n: int, body: bytes) -> bytes | None:
        return None if n == 2 else ok({"n": n})  # the 2nd request: the peer closes without answering

    async with scripted(script) as (url, requests, conns):
        poster = JsonPoster(url)
        assert await poster.post({}, {}, 1000) == (200, {"n": 1})
        # the pooled connection is closed by the peer on the next request: sent once more on a fresh one
        assert await poster.post({}, {}, 1000) == (200, {"n": 3})
        assert conns == [0, 0, 1]
        # a fresh connection that closes without an answer is a failure, not retried
        poster.close()

    async with scripted(lambda n, body: None) as (url, requests, _):
        with pytest.raises(asyncio.IncompleteReadError):
            await JsonPoster(url).post({}, {}, 1000)
        assert len(requests) == 1


async def test_not_http_is_a_value_error() -> None:
    async with scripted(lambda n, body: b"SSH-2.0-x\r\n\r\n") as (url, _, _):
        with pytest.raises(ValueError, match="not an HTTP/1.x answer"):
            await JsonPoster(url).post({}, {}, 1000)
    with pytest.raises(ValueError, match="not an http"):
        JsonPoster("ftp://x/")
