"""The signed tree head: one type that parses, prints, signs and verifies itself. Pure; no I/O.

A :class:`SignedHead` is the log's Ed25519 signature over :func:`hub.audit.entry.head_message` (tree size, root
hash, signing time in milliseconds). The same value is stored in ``tree_heads`` (:meth:`SignedHead.from_row`),
written to and read from export files (:meth:`SignedHead.to_json` / :meth:`SignedHead.from_json`), served to
privacy officers (``hub.schema.oversight.SignedTreeHead.of``) and, as a C2SP checkpoint
(:meth:`SignedHead.to_checkpoint`), sent to witnesses and consumers. Shaped like sigstore-python's Rekor
checkpoint: ``from_json`` / ``to_json`` / ``verify``.

The audit keys' helpers (PEM loading, fingerprints) live here too: a head is verified with them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from hub.audit.checkpoint import Checkpoint, CheckpointError, raw_key
from hub.audit.entry import head_message
from hub.errors import RequestError

__all__ = [
    "HeadError",
    "SignedHead",
    "head_at",
    "is_hex",
    "key_fingerprint",
    "load_public_key",
    "public_key_from_pem",
    "signed_at_ms",
]

_HEX = frozenset("0123456789abcdef")


class HeadError(CheckpointError):
    """A tree head that cannot be parsed, or whose signature does not verify (``tree_size`` when known)."""

    def __init__(self, message: str, tree_size: int | None = None) -> None:
        super().__init__(message)
        self.tree_size = tree_size


def signed_at_ms(at: datetime) -> int:
    """The millisecond timestamp a head signature covers (a naive time is taken as UTC)."""
    at = at if at.tzinfo else at.replace(tzinfo=UTC)
    return int(at.timestamp() * 1000)


def is_hex(value: object, nbytes: int) -> bool:
    """``value`` is ``nbytes`` bytes in lowercase hex."""
    return isinstance(value, str) and len(value) == 2 * nbytes and set(value) <= _HEX


@dataclass(frozen=True)
class SignedHead:
    """A signed tree head: the Merkle root over the first ``tree_size`` entries, signed at ``signed_at``."""

    tree_size: int
    root_hash: bytes
    signed_at: datetime  # timezone-aware; the signature covers it to the millisecond
    key_id: str
    signature: bytes

    @property
    def signed_at_ms(self) -> int:
        return signed_at_ms(self.signed_at)

    def message(self) -> bytes:
        """The bytes the signature covers."""
        return head_message(self.tree_size, self.root_hash, self.signed_at_ms)

    # -- signing and verifying -------------------------------------------------------------------------
    @classmethod
    def sign(cls, tree_size: int, root_hash: bytes, at: datetime, key_id: str, key: Ed25519PrivateKey) -> SignedHead:
        """Sign the head of ``tree_size`` leaves with ``root_hash`` at ``at`` (cut to the millisecond)."""
        at = at.replace(microsecond=at.microsecond // 1000 * 1000)
        return cls(tree_size, root_hash, at, key_id, key.sign(head_message(tree_size, root_hash, signed_at_ms(at))))

    def verifies(self, public_key: Ed25519PublicKey) -> bool:
        try:
            public_key.verify(self.signature, self.message())
        except (InvalidSignature, ValueError):
            return False
        return True

    def verify(self, public_key: Ed25519PublicKey) -> None:
        """:class:`HeadError` unless ``public_key`` made the signature."""
        if not self.verifies(public_key):
            raise HeadError(f"tree head at size {self.tree_size}: bad signature", self.tree_size)

    # -- stored, printed and parsed forms ---------------------------------------------------------------
    @classmethod
    def from_row(cls, row: Any) -> SignedHead:
        """A ``tree_heads`` row (SQLite gives naive times: they are UTC)."""
        at = row.signed_at if row.signed_at.tzinfo else row.signed_at.replace(tzinfo=UTC)
        return cls(int(row.tree_size), bytes(row.root_hash), at, str(row.key_id), bytes(row.signature))

    def to_json(self) -> dict[str, Any]:
        """The head line of an export file (``hub-audit-export/v1``, docs/audit.md)."""
        return {
            "tree_size": self.tree_size,
            "root_hash": self.root_hash.hex(),
            "signed_at": self.signed_at.isoformat(timespec="milliseconds"),
            "signed_at_ms": self.signed_at_ms,
            "key_id": self.key_id,
            "signature": self.signature.hex(),
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> SignedHead:
        """Parse a head line; :class:`HeadError` (with ``tree_size`` once it is known) if it is malformed or its
        ``signed_at`` and ``signed_at_ms`` disagree. The signature is not checked here."""
        size, ms = d.get("tree_size"), d.get("signed_at_ms")
        root, sig, key_id, at = d.get("root_hash"), d.get("signature"), d.get("key_id"), d.get("signed_at")
        if (
            type(size) is not int
            or type(ms) is not int
            or not is_hex(root, 32)
            or not is_hex(sig, 64)
            or not isinstance(key_id, str)
            or not isinstance(at, str)
        ):
            raise HeadError("not a valid tree head line")
        assert isinstance(root, str) and isinstance(sig, str)
        try:
            when: datetime | None = datetime.fromisoformat(at)
        except ValueError:
            when = None
        if when is None or signed_at_ms(when) != ms:
            raise HeadError(f"signed_at {at} does not match signed_at_ms {ms}", size)
        when = when if when.tzinfo else when.replace(tzinfo=UTC)
        return cls(size, bytes.fromhex(root), when, key_id, bytes.fromhex(sig))

    def to_checkpoint(self, origin: str) -> Checkpoint:
        """This head's tree as an (unsigned) C2SP checkpoint of ``origin``."""
        return Checkpoint(origin, self.tree_size, self.root_hash)


def head_at(heads: Sequence[SignedHead], size: int | None, *, hint: str = "") -> SignedHead:
    """The head a proof is made against: the one at ``size``, or the latest (``heads`` in order of size).
    ``RequestError`` (``NOT_FOUND``) when there is none; ``hint`` follows the message when nothing is signed."""
    if not heads:
        raise RequestError(f"no tree head has been signed yet{hint}", code="NOT_FOUND")
    if size is None:
        return heads[-1]
    for h in heads:
        if h.tree_size == size:
            return h
    raise RequestError(f"no signed tree head at size {size}", code="NOT_FOUND")


# -- the audit key -----------------------------------------------------------------------------------------
def public_key_from_pem(pem: bytes) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(pem)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    return public_key_from_pem(path.read_bytes())


def key_fingerprint(key: Ed25519PublicKey) -> str:
    """SHA-256 of the raw 32-byte public key, hex: compare it with the fingerprint you were given."""
    return hashlib.sha256(raw_key(key)).hexdigest()
