"""Checkpoints in the C2SP formats: signed notes, ``tlog-checkpoint`` and Ed25519 ``cosignature/v1``.

A checkpoint is a signed note (https://c2sp.org/signed-note) whose body is three lines (origin, tree size in
decimal, base64 root hash) and optional extension lines; after a blank line come signature lines
``— <key name> <base64(4-byte key id || signature)>``. The log signs the body with Ed25519 (key id: the first
four bytes of SHA-256(name || 0x0A || 0x01 || public key)). A witness cosigns it (https://c2sp.org/tlog-cosignature):
key id with 0x04, and the signature is an 8-byte big-endian POSIX time followed by an Ed25519 signature over
``cosignature/v1\\ntime <t>\\n`` + the body. Pure; no I/O. Shaped like sigstore-python's Rekor checkpoint:
``Checkpoint.from_text`` / ``to_text`` / ``verify``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from dataclasses import dataclass, field, replace

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from hub.errors import HubError

ED25519 = 0x01  # signed-note signature type of the log's own Ed25519 signature
COSIGNATURE_V1 = 0x04  # tlog-cosignature: Ed25519 cosignature/v1 (timestamped)
DASH = "\u2014"  # "—", the first character of every signature line
MAX_NOTE = 64 * 1024


class CheckpointError(HubError):
    """A checkpoint or key that cannot be parsed, or whose signature does not verify."""

    code = "BAD_CHECKPOINT"
    status = 400


def key_id(name: str, alg: int, public_key: bytes) -> bytes:
    """The 4-byte key id of a signed-note key: SHA-256(name || 0x0A || alg || public key)[:4]."""
    return hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([alg]) + public_key).digest()[:4]


def raw_key(key: Ed25519PublicKey) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def _check_name(name: str) -> str:
    if not name or any(c.isspace() for c in name) or "+" in name:
        raise CheckpointError(f"key name {name!r} must be non-empty, without spaces or '+'")
    return name


@dataclass(frozen=True)
class Verifier:
    """A signed-note verifier key: name, signature type (0x01 log, 0x04 cosigner) and the raw Ed25519 key."""

    name: str
    alg: int
    public_key: bytes

    @property
    def id(self) -> bytes:
        return key_id(self.name, self.alg, self.public_key)

    def to_text(self) -> str:
        """The vkey form: ``<name>+<hex key id>+<base64(alg || key)>``."""
        return f"{self.name}+{self.id.hex()}+{base64.b64encode(bytes([self.alg]) + self.public_key).decode()}"

    @classmethod
    def of(cls, name: str, alg: int, key: Ed25519PublicKey) -> Verifier:
        return cls(_check_name(name), alg, raw_key(key))

    @classmethod
    def from_text(cls, text: str) -> Verifier:
        parts = text.strip().split("+", 2)  # the base64 key may itself contain "+"
        if len(parts) != 3:
            raise CheckpointError("a verifier key has the form <name>+<hex key id>+<base64 key>")
        name, hex_id, b64 = parts
        try:
            raw = base64.b64decode(b64, validate=True)
            kid = bytes.fromhex(hex_id)
        except (binascii.Error, ValueError):
            raise CheckpointError("the verifier key is not valid hex and base64") from None
        if len(raw) != 33 or raw[0] not in (ED25519, COSIGNATURE_V1):
            raise CheckpointError("only Ed25519 (0x01) and Ed25519 cosignature (0x04) verifier keys are supported")
        v = cls(_check_name(name), raw[0], raw[1:])
        if v.id != kid:
            raise CheckpointError(f"the verifier key for {name} has a wrong key id")
        return v

    def key(self) -> Ed25519PublicKey:
        return Ed25519PublicKey.from_public_bytes(self.public_key)


@dataclass(frozen=True)
class NoteSignature:
    name: str
    key_id: bytes
    signature: bytes  # for a cosignature: 8-byte timestamp || Ed25519 signature

    def to_text(self) -> str:
        return f"{DASH} {self.name} {base64.b64encode(self.key_id + self.signature).decode()}\n"

    @classmethod
    def from_line(cls, line: str) -> NoteSignature:
        parts = line.split(" ")
        if len(parts) != 3 or parts[0] != DASH or not parts[1]:
            raise CheckpointError(f"malformed signature line {line[:80]!r}")
        try:
            raw = base64.b64decode(parts[2], validate=True)
        except binascii.Error:
            raise CheckpointError("a signature line is not valid base64") from None
        if len(raw) < 5:
            raise CheckpointError("a signature line is too short")
        return cls(parts[1], raw[:4], raw[4:])


def cosigned_message(body: str, timestamp: int) -> bytes:
    return f"cosignature/v1\ntime {timestamp}\n".encode() + body.encode("utf-8")


@dataclass(frozen=True)
class Checkpoint:
    """A C2SP ``tlog-checkpoint``: origin, tree size, root hash (and extension lines), with its signatures."""

    origin: str
    tree_size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()
    signatures: tuple[NoteSignature, ...] = field(default=())

    # -- text ----------------------------------------------------------------------------------------------
    def body(self) -> str:
        """The note text that is signed: every line ends in a newline."""
        lines = [self.origin, str(self.tree_size), base64.b64encode(self.root_hash).decode(), *self.extensions]
        return "".join(line + "\n" for line in lines)

    def to_text(self) -> str:
        return self.body() + "\n" + "".join(s.to_text() for s in self.signatures)

    @classmethod
    def from_text(cls, text: str) -> Checkpoint:
        if len(text) > MAX_NOTE:
            raise CheckpointError("the checkpoint is too large")
        if not text.endswith("\n") or "\n\n" not in text:
            raise CheckpointError("a checkpoint is a note body, a blank line and signature lines, each ending in \\n")
        body, _, sigs = text.partition("\n\n")
        lines = body.split("\n")
        if len(lines) < 3:
            raise CheckpointError("a checkpoint body has an origin, a tree size and a root hash line")
        origin, size, root, *ext = lines
        if not origin or any(ord(c) < 0x20 for c in origin):
            raise CheckpointError("the checkpoint origin line is empty or has control characters")
        if not size.isascii() or not size.isdigit() or (size != "0" and size.startswith("0")) or len(size) > 19:
            raise CheckpointError(f"the tree size {size[:20]!r} is not a decimal without leading zeros")
        try:
            root_hash = base64.b64decode(root, validate=True)
        except binascii.Error:
            raise CheckpointError("the root hash is not base64") from None
        if len(root_hash) != 32:
            raise CheckpointError("the root hash is not 32 bytes")
        if any(not e for e in ext):
            raise CheckpointError("empty extension line")
        sig_lines = sigs[:-1].split("\n") if sigs else []
        if not sig_lines:
            raise CheckpointError("the checkpoint carries no signature")
        signatures = tuple(NoteSignature.from_line(s) for s in sig_lines)
        return cls(origin, int(size), root_hash, tuple(ext), signatures)

    # -- signing -----------------------------------------------------------------------------------------
    def sign(self, name: str, key: Ed25519PrivateKey) -> Checkpoint:
        """Add the log's own Ed25519 signature (type 0x01) under ``name`` (normally the origin)."""
        kid = key_id(_check_name(name), ED25519, raw_key(key.public_key()))
        sig = NoteSignature(name, kid, key.sign(self.body().encode("utf-8")))
        return replace(self, signatures=(*self.signatures, sig))

    def cosign(self, name: str, key: Ed25519PrivateKey, timestamp: int) -> NoteSignature:
        """A witness's ``cosignature/v1`` over this checkpoint at POSIX time ``timestamp``."""
        kid = key_id(_check_name(name), COSIGNATURE_V1, raw_key(key.public_key()))
        signed = key.sign(cosigned_message(self.body(), timestamp))
        return NoteSignature(name, kid, struct.pack(">Q", timestamp) + signed)

    def with_signatures(self, extra: tuple[NoteSignature, ...] | list[NoteSignature]) -> Checkpoint:
        have = {(s.name, s.key_id) for s in self.signatures}
        return replace(self, signatures=(*self.signatures, *(s for s in extra if (s.name, s.key_id) not in have)))

    # -- verifying ---------------------------------------------------------------------------------------
    def _matching(self, v: Verifier) -> list[NoteSignature]:
        return [s for s in self.signatures if s.name == v.name and s.key_id == v.id]

    def verify(self, v: Verifier) -> None:
        """Check the log's signature by ``v`` (type 0x01); ``CheckpointError`` if none verifies."""
        if v.alg != ED25519:
            raise CheckpointError(f"{v.name} is not a log (Ed25519) key")
        for s in self._matching(v):
            try:
                v.key().verify(s.signature, self.body().encode("utf-8"))
                return
            except InvalidSignature:
                continue
        raise CheckpointError(f"the checkpoint carries no valid signature by {v.name}")

    def verify_cosignature(self, v: Verifier) -> int:
        """Check a ``cosignature/v1`` by witness ``v``; return its timestamp. ``CheckpointError`` if none."""
        if v.alg != COSIGNATURE_V1:
            raise CheckpointError(f"{v.name} is not a witness (cosignature/v1) key")
        for s in self._matching(v):
            if len(s.signature) != 8 + 64:
                continue
            (timestamp,) = struct.unpack(">Q", s.signature[:8])
            try:
                v.key().verify(s.signature[8:], cosigned_message(self.body(), timestamp))
                return int(timestamp)
            except InvalidSignature:
                continue
        raise CheckpointError(f"the checkpoint carries no valid cosignature by witness {v.name}")
