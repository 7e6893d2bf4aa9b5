"""Witnesses (C2SP ``tlog-witness``): the ``hub witness`` server, and the hub's side that asks for cosignatures.

A witness keeps, per log origin, the last checkpoint it cosigned (a small SQLite file of its own). On
``POST /add-checkpoint`` it checks the log's signature, that the old size the log names is the size it last
cosigned, and the RFC 9162 consistency proof from there; only then does it store the new checkpoint and return
an Ed25519 ``cosignature/v1`` with its clock's time. So a log that was shortened, or rewritten, after a
checkpoint was witnessed cannot get a cosignature again, and the witnessed checkpoint it cannot take back
names what was removed (``hub audit verify --checkpoint``).

The hub pushes a checkpoint to every witness in ``HUB_WITNESSES`` whenever it signs a tree head, and keeps the
cosignatures in ``witnessed_checkpoints``.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from hub.audit.checkpoint import COSIGNATURE_V1, ED25519, Checkpoint, CheckpointError, NoteSignature, Verifier
from hub.audit.merkle import MerkleTree, ProofError, verify_consistency
from hub.clock import Clock, system_clock
from hub.errors import ConfigError
from hub.files import write_private_file

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response

log = logging.getLogger("hub.witness")

MAX_BODY = 16 * 1024
MAX_PROOF_LINES = 63


# -- the witness's own state -------------------------------------------------------------------------------
class WitnessStore:
    """The latest cosigned checkpoint per origin, in a SQLite file. Check and update are one transaction."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        with contextlib.closing(self._connect()) as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS latest (origin TEXT PRIMARY KEY, tree_size INTEGER NOT NULL, "
                "root_hash BLOB NOT NULL, checkpoint TEXT NOT NULL, cosigned_at TEXT NOT NULL)"
            )

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=10)
        conn.execute("PRAGMA synchronous=FULL")
        return conn

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One immediate transaction (the check and the update are one step: the spec's rollback race), committed
        when the block ends, rolled back if it raises."""
        with self._lock, contextlib.closing(self._connect()) as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def latest(self, origin: str) -> tuple[int, bytes] | None:
        with contextlib.closing(self._connect()) as conn:
            row = conn.execute("SELECT tree_size, root_hash FROM latest WHERE origin = ?", (origin,)).fetchone()
        return None if row is None else (int(row[0]), bytes(row[1]))


class WitnessRefusal(Exception):
    def __init__(self, status: int, message: str, body: str | None = None, media_type: str = "text/plain") -> None:
        super().__init__(message)
        self.status, self.body, self.media_type = status, body if body is not None else message + "\n", media_type


def parse_request(body: bytes) -> tuple[int, list[bytes], Checkpoint]:
    """The add-checkpoint body: ``old <size>``, proof lines (base64), a blank line, the checkpoint."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise WitnessRefusal(400, "the body is not UTF-8") from None
    head, sep, note = text.partition("\n\n")
    if not sep:
        raise WitnessRefusal(400, "the body needs an old size line, proof lines, a blank line and the checkpoint")
    lines = head.split("\n")
    first = lines[0]
    digits = first[4:]
    if not first.startswith("old ") or not digits.isascii() or not digits.isdigit() or len(digits) > 19:
        raise WitnessRefusal(400, "the first line must be 'old <size>'")
    if digits != "0" and digits.startswith("0"):
        raise WitnessRefusal(400, "the old size has leading zeros")
    if len(lines) - 1 > MAX_PROOF_LINES:
        raise WitnessRefusal(400, f"more than {MAX_PROOF_LINES} consistency proof lines")
    proof = []
    for line in lines[1:]:
        try:
            h = base64.b64decode(line, validate=True)
        except binascii.Error:
            raise WitnessRefusal(400, "a consistency proof line is not base64") from None
        if len(h) != 32:
            raise WitnessRefusal(400, "a consistency proof hash is not 32 bytes")
        proof.append(h)
    try:
        checkpoint = Checkpoint.from_text(note)
    except CheckpointError as exc:
        raise WitnessRefusal(400, exc.message) from None
    return int(digits), proof, checkpoint


class Witness:
    """Checks and cosigns checkpoints of the logs it knows (origin -> the log's verifier key)."""

    def __init__(
        self,
        name: str,
        key: Ed25519PrivateKey,
        logs: Mapping[str, Verifier],
        store: WitnessStore,
        clock: Clock = system_clock,
    ) -> None:
        self.name, self.key, self.logs, self.store, self.clock = name, key, dict(logs), store, clock
        self.verifier = Verifier.of(name, COSIGNATURE_V1, key.public_key())

    def add_checkpoint(self, old: int, proof: Sequence[bytes], cp: Checkpoint) -> NoteSignature:
        trusted = self.logs.get(cp.origin)
        if trusted is None:
            raise WitnessRefusal(404, f"unknown log origin {cp.origin!r}")
        try:
            cp.verify(trusted)
        except CheckpointError:
            raise WitnessRefusal(403, "no signature on the checkpoint verifies with the log's key") from None
        if old > cp.tree_size:
            raise WitnessRefusal(400, f"old size {old} is larger than the checkpoint's size {cp.tree_size}")
        with self.store.transaction() as conn:  # persisted before the cosignature leaves
            row = conn.execute("SELECT tree_size, root_hash FROM latest WHERE origin = ?", (cp.origin,)).fetchone()
            size, root = (0, b"") if row is None else (int(row[0]), bytes(row[1]))
            if old != size:
                raise WitnessRefusal(
                    409, f"old size {old} is not the latest cosigned size {size}", f"{size}\n", "text/x.tlog.size"
                )
            if old == 0 and proof:
                raise WitnessRefusal(422, "the consistency proof must be empty when the old size is 0")
            if old == cp.tree_size and row is not None and root != cp.root_hash:
                raise WitnessRefusal(
                    409, f"a different root hash was cosigned at size {old}", f"{size}\n", "text/x.tlog.size"
                )
            if 0 < old < cp.tree_size:
                try:
                    verify_consistency(old, cp.tree_size, proof, root, cp.root_hash)
                except ProofError:
                    log.warning("log %s: inconsistent checkpoint %d -> %d refused", cp.origin, old, cp.tree_size)
                    raise WitnessRefusal(422, "the consistency proof does not verify") from None
            now = self.clock()
            conn.execute(
                "INSERT INTO latest (origin, tree_size, root_hash, checkpoint, cosigned_at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (origin) DO UPDATE SET tree_size = excluded.tree_size, "
                "root_hash = excluded.root_hash, checkpoint = excluded.checkpoint, "
                "cosigned_at = excluded.cosigned_at",
                (cp.origin, cp.tree_size, cp.root_hash, cp.to_text(), now.isoformat()),
            )
        return cp.cosign(self.name, self.key, int(now.timestamp()))


def create_witness_app(witness: Witness) -> Starlette:
    # starlette here, not at the top: every `hub` command imports this module for its arguments
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse, Response
    from starlette.routing import Route

    async def add_checkpoint(request: Request) -> Response:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_BODY:
            return PlainTextResponse("the body is too large\n", status_code=413)
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY:
                return PlainTextResponse("the body is too large\n", status_code=413)
        try:
            old, proof, cp = parse_request(body)
            import anyio

            sig = await anyio.to_thread.run_sync(witness.add_checkpoint, old, proof, cp)
        except WitnessRefusal as r:
            return Response(r.body, status_code=r.status, headers={"content-type": r.media_type})
        return PlainTextResponse(sig.to_text())

    async def key(request: Request) -> Response:
        return PlainTextResponse(witness.verifier.to_text() + "\n")

    app = Starlette(
        routes=[Route("/add-checkpoint", add_checkpoint, methods=["POST"]), Route("/key", key, methods=["GET"])]
    )
    app.state.witness = witness
    return app


def witness_key(key_dir: Path) -> Ed25519PrivateKey:
    """The witness's Ed25519 key, ``<key_dir>/witness-private.pem`` (created, mode 0600, on first use)."""
    path = key_dir / "witness-private.pem"
    if not path.exists():
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        try:
            write_private_file(path, pem)
        except FileExistsError:
            pass
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{path} is not an Ed25519 private key")
    return key


def log_verifier(spec: str) -> tuple[str, Verifier]:
    """``--log <origin>=<key>``: the key is a vkey (``origin+id+base64``) or a PEM file of the log's public key."""
    origin, sep, value = spec.partition("=")
    if not sep or not origin or not value:
        raise ConfigError(f"--log {spec!r}: expected <origin>=<public key (vkey or PEM file)>", code="BAD_ARGUMENT")
    try:
        if "+" in value and not Path(value).exists():
            v = Verifier.from_text(value)
        else:
            key = serialization.load_pem_public_key(Path(value).read_bytes())
            if not isinstance(key, Ed25519PublicKey):
                raise ConfigError(f"--log {origin}: {value} is not an Ed25519 public key", code="BAD_ARGUMENT")
            v = Verifier.of(origin, ED25519, key)
    except (CheckpointError, OSError, ValueError) as exc:
        raise ConfigError(f"--log {origin}: {exc}", code="BAD_ARGUMENT") from None
    if v.name != origin or v.alg != ED25519:
        raise ConfigError(f"--log {origin}: the key is not the Ed25519 key named {origin}", code="BAD_ARGUMENT")
    return origin, v


# -- the hub's side: asking witnesses for cosignatures -------------------------------------------------------
@dataclass(frozen=True)
class WitnessConfig:
    verifier: Verifier
    url: str


def parse_witnesses(value: str) -> list[WitnessConfig]:
    """``HUB_WITNESSES``: comma-separated ``<witness vkey>=<base URL>``."""
    out = []
    for item in filter(None, (p.strip() for p in value.split(","))):
        vkey, sep, url = item.partition("=")
        if not sep or not url.startswith(("http://", "https://")):
            raise ConfigError(f"HUB_WITNESSES: {item[:60]!r} is not <witness vkey>=<http(s) URL>", code="BAD_SETTING")
        try:
            v = Verifier.from_text(vkey)
        except CheckpointError as exc:
            raise ConfigError(f"HUB_WITNESSES: {exc.message}", code="BAD_SETTING") from None
        if v.alg != COSIGNATURE_V1:
            raise ConfigError(f"HUB_WITNESSES: {v.name} is not a cosignature (0x04) key", code="BAD_SETTING")
        out.append(WitnessConfig(v, url.rstrip("/")))
    return out


def _post(url: str, body: bytes) -> tuple[int, str]:
    import httpx

    r = httpx.post(url + "/add-checkpoint", content=body, timeout=5.0)
    return r.status_code, r.text


def push(cp: Checkpoint, tree: MerkleTree, w: WitnessConfig, known: int) -> NoteSignature | None:
    """Ask witness ``w`` to cosign the log's checkpoint ``cp`` (``tree``: the log's leaves, at least as many),
    starting from the size ``known`` it last cosigned for us; on 409 retry once from the size it names.
    Returns the verified cosignature, or None (logged)."""
    old = known
    for _ in range(2):
        if old > cp.tree_size:
            log.error(
                "witness %s has cosigned size %d, larger than the log's %d: the log was shortened",
                w.verifier.name,
                old,
                cp.tree_size,
            )
            return None
        proof = tree.consistency_proof(old, cp.tree_size) if 0 < old < cp.tree_size else []
        body = f"old {old}\n" + "".join(base64.b64encode(p).decode() + "\n" for p in proof) + "\n" + cp.to_text()
        status, text = _post(w.url, body.encode("utf-8"))
        if status == 409 and text.strip().isdigit():
            old = int(text.strip())
            continue
        if status != 200:
            log.error(
                "witness %s refused the checkpoint of size %d: %d %s",
                w.verifier.name,
                cp.tree_size,
                status,
                text.strip()[:200],
            )
            return None
        try:
            sigs = [NoteSignature.from_line(line) for line in text.splitlines() if line]
            cp.with_signatures(sigs).verify_cosignature(w.verifier)
        except CheckpointError as exc:
            log.error("witness %s answered without a valid cosignature: %s", w.verifier.name, exc.message)
            return None
        return next(s for s in sigs if s.name == w.verifier.name and s.key_id == w.verifier.id)
    return None


def push_all(engine: Engine, witnesses: Sequence[WitnessConfig], cp: Checkpoint, tree: MerkleTree, clock: Clock) -> int:
    """Push the signed checkpoint ``cp`` to every witness not yet cosigning its size; store the cosignatures in
    ``engine``'s ``witnessed_checkpoints``. Never raises."""
    from sqlalchemy import func, insert, select

    from hub.db import witnessed_checkpoints as wc

    done = 0
    for w in witnesses:
        try:
            with engine.connect() as conn:
                known = conn.execute(
                    select(func.max(wc.c.tree_size)).where(wc.c.witness == w.verifier.to_text())
                ).scalar()
            if known is not None and known >= cp.tree_size:
                continue
            sig = push(cp, tree, w, known or 0)
            if sig is None:
                continue
            with engine.begin() as conn:
                conn.execute(
                    insert(wc).values(
                        tree_size=cp.tree_size,
                        witness=w.verifier.to_text(),
                        signature=sig.to_text(),
                        received_at=clock().astimezone(UTC),
                    )
                )
            done += 1
        except Exception:
            log.exception("asking witness %s to cosign size %d failed", w.verifier.name, cp.tree_size)
    return done


def cosignatures(engine: Engine, tree_size: int) -> list[NoteSignature]:
    from sqlalchemy import select

    from hub.db import witnessed_checkpoints as wc

    with engine.connect() as conn:
        rows = conn.execute(select(wc.c.signature).where(wc.c.tree_size == tree_size).order_by(wc.c.witness))
        return [NoteSignature.from_line(r[0].rstrip("\n")) for r in rows]


def witnessed_sizes(engine: Engine) -> list[tuple[int, str, datetime]]:
    """(tree size, witness vkey, received at) of every stored cosignature, oldest first."""
    from sqlalchemy import select

    from hub.db import witnessed_checkpoints as wc

    with engine.connect() as conn:
        rows = conn.execute(select(wc.c.tree_size, wc.c.witness, wc.c.received_at).order_by(wc.c.tree_size))
        return [(r[0], r[1], r[2]) for r in rows]


# -- ``hub witness ...`` --------------------------------------------------------------------------------------
def add_witness_commands(sub: Any) -> None:
    w = sub.add_parser("witness", help="a C2SP tlog-witness for hub audit logs").add_subparsers(
        dest="sub", required=True
    )
    s = w.add_parser("serve", help="serve POST /add-checkpoint, cosigning consistent checkpoints")
    s.add_argument("--key-dir", required=True, help="folder of the witness key (created) and, by default, its store")
    s.add_argument("--name", default="hub-witness", help="the witness's key name (default: hub-witness)")
    s.add_argument("--store", help="the SQLite file of cosigned checkpoints (default: <key-dir>/witness.sqlite)")
    s.add_argument(
        "--log",
        action="append",
        required=True,
        help="<origin>=<the log's key: its vkey (hub audit checkpoint --vkey) or public key PEM file>; repeatable",
    )
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=7380)
    s.set_defaults(fn=cmd_witness_serve)
    k = w.add_parser("key", help="print the witness's verifier key (for HUB_WITNESSES and --witness-key)")
    k.add_argument("--key-dir", required=True)
    k.add_argument("--name", default="hub-witness")
    k.set_defaults(fn=cmd_witness_key)


def make_witness(args: Any, clock: Clock = system_clock) -> Witness:
    key_dir = Path(args.key_dir)
    logs = dict(log_verifier(spec) for spec in args.log)
    key = witness_key(key_dir)
    store = WitnessStore(Path(args.store) if args.store else key_dir / "witness.sqlite")
    return Witness(args.name, key, logs, store, clock)


def cmd_witness_serve(args: Any) -> int:
    import uvicorn

    witness = make_witness(args)
    print(f"witness {witness.verifier.to_text()} for {', '.join(sorted(witness.logs))}", flush=True)
    uvicorn.run(create_witness_app(witness), host=args.host, port=args.port, log_level="info")
    return 0


def cmd_witness_key(args: Any) -> int:
    print(Verifier.of(args.name, COSIGNATURE_V1, witness_key(Path(args.key_dir)).public_key()).to_text())
    return 0
