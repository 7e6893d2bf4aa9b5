"""A small HTTP/1.1 keep-alive client for the hub's JSON POSTs to department subgraphs.

Measured on the peer benchmark's federated request (docs/federation.md, "What a federated request costs"),
httpx's connection pool, anyio stream wrappers and request/response models were about half of the gateway's CPU
per request; the request itself is always the same shape (one JSON POST, one JSON answer). This client does
exactly that over asyncio streams, with the same boundary rules as :func:`hub.upstream.bounded.post_json`:

* the answer is read under a byte cap (``AnswerTooLarge``, a ``ValueError``), whether it declares its length
  (``Content-Length`` larger than the cap is refused before reading) or streams it (chunked, or until close);
* an encoded answer is refused (we ask for ``identity``), so a compressed bomb is never inflated;
* the whole call's deadline is the caller's (``hub.upstream.guard.guarded``): a cancelled call closes its
  connection, so a peer dripping bytes holds nothing after the deadline;
* failures are ``OSError``/``EOFError`` (the connection), ``ValueError`` (the answer): all in
  ``hub.upstream.guard.HTTP_FAILURES``.

A connection goes back to the pool only after its answer was read whole and the peer did not ask to close it.
A request on a reused connection that the peer had already closed (keep-alive race) is sent once more on a
fresh connection, and only when not a byte of an answer came back.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from typing import Any
from urllib.parse import urlsplit

from hub.upstream.bounded import AnswerTooLarge

MAX_HEADER_BYTES = 64 * 1024
MAX_IDLE = 64  # idle keep-alive connections kept per origin (the gateway's concurrency towards one department)

_Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class _Stale(Exception):
    """A reused connection was closed by the peer before any answer byte came back."""


class JsonPoster:
    """POSTs JSON to one URL over pooled HTTP/1.1 connections (one event loop)."""

    def __init__(self, url: str, ssl_context: ssl.SSLContext | None = None) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url}")
        self.host = parts.hostname
        self.tls = parts.scheme == "https"
        self.port = parts.port or (443 if self.tls else 80)
        self.path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        default_port = 443 if self.tls else 80
        self.authority = parts.hostname if self.port == default_port else f"{parts.hostname}:{self.port}"
        if ":" in parts.hostname:  # an IPv6 literal
            self.authority = f"[{parts.hostname}]" + ("" if self.port == default_port else f":{self.port}")
        self.ssl = (ssl_context or ssl.create_default_context()) if self.tls else None
        self._idle: list[_Conn] = []

    async def _connect(self) -> _Conn:
        return await asyncio.open_connection(
            self.host, self.port, ssl=self.ssl, server_hostname=self.host if self.tls else None, limit=MAX_HEADER_BYTES
        )

    def close(self) -> None:
        while self._idle:
            self._idle.pop()[1].close()

    async def post(self, body: Any, headers: dict[str, str], max_bytes: int) -> tuple[int, Any]:
        """POST ``body`` as JSON; return the status and the parsed JSON answer (at most ``max_bytes`` of it)."""
        payload = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        head = [
            f"POST {self.path} HTTP/1.1",
            f"host: {self.authority}",
            "content-type: application/json",
            "accept: application/json",
            "accept-encoding: identity",
            f"content-length: {len(payload)}",
        ]
        for name, value in headers.items():
            if "\r" in name or "\n" in name or "\r" in value or "\n" in value:
                raise ValueError("a header holds a line break")
            head.append(f"{name}: {value}")
        request = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + payload
        while self._idle:
            conn = self._idle.pop()
            if conn[0].at_eof() or conn[1].is_closing():
                conn[1].close()
                continue
            try:
                return await self._exchange(conn, request, max_bytes, reused=True)
            except _Stale:
                continue
        return await self._exchange(await self._connect(), request, max_bytes, reused=False)

    async def _exchange(self, conn: _Conn, request: bytes, max_bytes: int, *, reused: bool) -> tuple[int, Any]:
        reader, writer = conn
        keep = False
        try:
            try:
                writer.write(request)
                await writer.drain()
                line = await reader.readuntil(b"\r\n")
            except (asyncio.IncompleteReadError, ConnectionError) as exc:
                if reused and not getattr(exc, "partial", b""):  # closed by the peer while idle: not a failure
                    raise _Stale from None
                raise
            status, headers = await self._head(reader, line)
            while 100 <= status < 200:  # an interim answer: the real one follows
                status, headers = await self._head(reader, await reader.readuntil(b"\r\n"))
            data, keep = await self._body(reader, headers, max_bytes)
            if headers.get("connection", "").lower() == "close":
                keep = False
            return status, json.loads(data)
        finally:
            if keep and len(self._idle) < MAX_IDLE:
                self._idle.append(conn)
            else:
                writer.close()

    @staticmethod
    async def _head(reader: asyncio.StreamReader, line: bytes) -> tuple[int, dict[str, str]]:
        parts = line.split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            raise ValueError("not an HTTP/1.x answer")
        status = int(parts[1])
        headers: dict[str, str] = {}
        size = len(line)
        while True:
            line = await reader.readuntil(b"\r\n")
            size += len(line)
            if size > MAX_HEADER_BYTES:
                raise ValueError("the answer's headers are too large")
            if line == b"\r\n":
                return status, headers
            name, sep, value = line.partition(b":")
            if not sep:
                raise ValueError("a malformed header line in the answer")
            key = name.strip().lower().decode("latin-1")
            text = value.strip().decode("latin-1")
            headers[key] = f"{headers[key]}, {text}" if key in headers else text

    @staticmethod
    async def _body(reader: asyncio.StreamReader, headers: dict[str, str], max_bytes: int) -> tuple[bytes, bool]:
        """The answer's body (under the cap) and whether the connection can carry another request."""
        encoding = headers.get("content-encoding", "identity").lower()
        if encoding not in ("", "identity"):
            raise ValueError(f"an encoded answer ({encoding}) was not asked for")
        if "chunked" in headers.get("transfer-encoding", "").lower():
            chunks: list[bytes] = []
            size = 0
            while True:
                line = await reader.readuntil(b"\r\n")
                n = int(line.split(b";", 1)[0].strip() or b"x", 16)
                if n == 0:
                    while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers
                        pass
                    return b"".join(chunks), True
                size += n
                if size > max_bytes:
                    raise AnswerTooLarge(f"the answer is larger than {max_bytes} bytes")
                chunks.append(await reader.readexactly(n))
                if await reader.readexactly(2) != b"\r\n":
                    raise ValueError("a malformed chunk in the answer")
        declared = headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                raise ValueError("a malformed content-length in the answer")
            if int(declared) > max_bytes:
                raise AnswerTooLarge(f"the answer declares {declared} bytes, more than {max_bytes}")
            return await reader.readexactly(int(declared)), True
        chunks, size = [], 0  # until the peer closes
        while chunk := await reader.read(65536):
            size += len(chunk)
            if size > max_bytes:
                raise AnswerTooLarge(f"the answer is larger than {max_bytes} bytes")
            chunks.append(chunk)
        return b"".join(chunks), False
