"""Audit entries as values: canonical encoding, pseudonyms and tree-head messages. Pure; no I/O."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from hub.audit.merkle import leaf_hash

GENESIS = "0" * 64  # the ``prev`` of entry 0
HEAD_PREFIX = b"hub-audit-tree-head/v1\n"


def canonical(obj: Any) -> bytes:
    """Canonical JSON: sorted keys, no whitespace, UTF-8. The leaf is SHA-256(0x00 || canonical(entry))."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def entry_leaf(entry_text: str) -> bytes:
    return leaf_hash(entry_text.encode("utf-8"))


def pseudonym(key: bytes, id_number: str) -> str:
    """Keyed pseudonym of an ID number (HMAC-SHA256, hex). The plain number is never stored."""
    return hmac.new(key, id_number.encode("ascii", "replace"), hashlib.sha256).hexdigest()


def head_message(tree_size: int, root: bytes, signed_at_ms: int) -> bytes:
    """The bytes an Ed25519 tree-head signature covers."""
    return HEAD_PREFIX + f"{tree_size}\n{root.hex()}\n{signed_at_ms}\n".encode("ascii")


# -- entry format v2 (docs/audit.md "What each field discloses") ---------------------------------------------
ENTRY_VERSION = 2
DIGEST_PREFIX = b"hub-audit-digest/v2\n"
MAX_STRING = 256  # characters in any one string of an entry body
MAX_ITEMS = 5_000  # items in any one list or object of an entry body
MAX_DEPTH = 6
MAX_ENTRY_BYTES = 512 * 1024  # an encoded entry body larger than this is replaced by a minimal one


def digest_key_id(key: bytes) -> str:
    """A short public name for a digest key (entries say which key made their digests)."""
    return hmac.new(key, b"hub-audit-digest-key-id", hashlib.sha256).hexdigest()[:16]


def keyed_digest(key: bytes, kind: str, request_id: str, payload: bytes) -> str:
    """HMAC-SHA256 over one request's bytes, bound to the request id, so that equal answers in two entries
    do not give equal digests and nobody without the key can confirm a guess of ``payload``."""
    msg = DIGEST_PREFIX + kind.encode("ascii") + b"\n" + request_id.encode("ascii", "replace") + b"\n" + payload
    return hmac.new(key, msg, hashlib.sha256).hexdigest()


class _Drop(Exception):
    pass


def _plain(value: Any, depth: int) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if abs(value) > 2**53:  # beyond what every JSON reader keeps exactly
            raise _Drop
        return value
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise _Drop
        return value
    if isinstance(value, str):
        if len(value) > MAX_STRING:
            raise _Drop
        return value
    if depth >= MAX_DEPTH:
        raise _Drop
    if isinstance(value, list | tuple):
        if len(value) > MAX_ITEMS:
            raise _Drop
        return [_plain(v, depth + 1) for v in value]
    if isinstance(value, dict):
        if len(value) > MAX_ITEMS or not all(isinstance(k, str) and len(k) <= MAX_STRING for k in value):
            raise _Drop
        return {k: _plain(v, depth + 1) for k, v in value.items()}
    raise _Drop  # graphql-core's Undefined, enums, bytes, dates, objects: nothing but plain JSON values


def plain_body(body: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The entry body with only plain, bounded JSON values: each top-level field that is not is replaced by
    ``null``; the names of the fields replaced are returned (they become reason codes)."""
    out: dict[str, Any] = {}
    dropped: list[str] = []
    for k, v in body.items():
        try:
            out[k] = _plain(v, 0)
        except (_Drop, RecursionError):
            out[k] = None
            dropped.append(k)
    return out, dropped
