"""What a consumer can check from outside: the latest checkpoint, and the inclusion proof of its own receipt.

``GET /audit/checkpoint`` (public, like the audit key): the newest signed tree head as a C2SP checkpoint, with
the witnesses' cosignatures the hub holds for it. ``?size=N`` for an older signed size.

``GET /audit/receipt?seq=N`` (Bearer token, any purpose): the RFC 9162 inclusion proof of entry N, only for
the client that made that request, against a checkpoint (one is signed now if no head covers the entry yet).
Neither discloses anything about residents: hashes, sizes and signatures only.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import anyio
from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from hub.audit.witness import cosignatures
from hub.db import audit_entries
from hub.errors import HubError, RequestError

if TYPE_CHECKING:
    from hub.audit.head import SignedHead
    from hub.audit.log import AuditLog
    from hub.state import HubState


def _error(exc: HubError) -> JSONResponse:
    headers = {"www-authenticate": 'Bearer error="invalid_token"'} if exc.status == 401 else None
    return JSONResponse({"error": {"code": exc.code, "message": exc.message}}, status_code=exc.status, headers=headers)


def _int_param(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    if not raw.isascii() or not raw.isdigit() or len(raw) > 12:
        raise RequestError(f"{name} must be a non-negative integer", code="BAD_ARGUMENT")
    return int(raw)


def checkpoint_text(audit: AuditLog, head: SignedHead) -> str:
    """``head`` as the log's signed checkpoint, with the witnesses' cosignatures the hub holds for it."""
    return audit.checkpoint(head).with_signatures(cosignatures(audit.engine, head.tree_size)).to_text()


async def checkpoint_endpoint(request: Request) -> Response:
    state: HubState = request.app.state.hub
    try:
        size = _int_param(request, "size")
        heads = await anyio.to_thread.run_sync(state.audit.heads)
        if size is not None:
            heads = [h for h in heads if h.tree_size == size]
        if not heads:
            what = f"at size {size}" if size is not None else "yet"
            raise HubError(f"no signed checkpoint {what}", code="NOT_FOUND")
        text = await anyio.to_thread.run_sync(checkpoint_text, state.audit, heads[-1])
    except HubError as exc:
        if exc.code == "NOT_FOUND":
            exc.status = 404
        return _error(exc)
    return PlainTextResponse(text, headers={"cache-control": "no-store"})


def _own_entry(audit: AuditLog, seq: int, client_id: str) -> bytes:
    with audit.engine.connect() as conn:
        row = conn.execute(
            select(audit_entries.c.entry, audit_entries.c.leaf_hash).where(audit_entries.c.seq == seq)
        ).first()
    owner = json.loads(row[0]).get("client_id") if row is not None else None
    if row is None or not client_id or owner != client_id:  # another client's entry looks like a missing one
        err = HubError(f"no audit entry {seq} recorded for a request of client {client_id}", code="NOT_FOUND")
        err.status = 404
        raise err
    return bytes(row[1])


def receipt_proof(audit: AuditLog, seq: int, client_id: str) -> dict[str, Any]:
    leaf = _own_entry(audit, seq, client_id)
    heads = audit.heads()
    head = heads[-1] if heads and heads[-1].tree_size > seq else audit.sign_head()
    tree = audit.tree()
    return {
        "seq": seq,
        "leafHash": leaf.hex(),
        "treeSize": head.tree_size,
        "path": [p.hex() for p in tree.inclusion_proof(seq, head.tree_size)],
        "rootHash": head.root_hash.hex(),
        "checkpoint": checkpoint_text(audit, head),
    }


async def receipt_endpoint(request: Request) -> Response:
    from hub.gateway import authenticate

    state: HubState = request.app.state.hub
    try:
        actor = await authenticate(state, request)
        seq = _int_param(request, "seq")
        if seq is None:
            raise RequestError("give the receipt's sequence number: ?seq=N", code="BAD_ARGUMENT")
        out = await anyio.to_thread.run_sync(receipt_proof, state.audit, seq, actor.client_id)
    except HubError as exc:
        return _error(exc)
    return JSONResponse(out, headers={"cache-control": "no-store"})
