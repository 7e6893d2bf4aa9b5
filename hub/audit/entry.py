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
