"""Signing keys, generated at first run and kept in ``<data_dir>/keys`` (never in the repository).

* Token keys (ES256, P-256) sign access tokens; the newest is active. After ``hub keys rotate`` the old
  key stays in the JWKS until every token it signed has expired, then ``prune`` drops it.
* The audit key (Ed25519) signs audit tree heads; ``audit-public.pem`` is what offline verifiers need.
* The pseudonym key (32 random bytes) keys the HMAC that turns ID numbers into audit pseudonyms.
* The perturbation key (32 random bytes, kept beside it) keys the record keys of the cell-key method that
  perturbs statistics (``hub/schema/statistics.py``). Whoever holds it could undo the perturbation.
* The audit digest keys (32 random bytes each, ``audit-digest/<created>.key``, the newest active) key the
  request and result digests of audit entries (entry v2, docs/audit.md). They sit beside the pseudonym key,
  are generated under the same lock, and ``rotate_digest_key`` adds a new one while keeping the old ones, which
  are needed to confirm the digests of older entries.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from joserfc.jwk import ECKey, KeySet

from hub.errors import ConfigError
from hub.files import write_private_file

TOKEN_ALG = "ES256"  # noqa: S105 (an algorithm name, not a secret)


@contextlib.contextmanager
def _locked(key_dir: Path) -> Iterator[None]:
    """Serialise key generation between processes sharing one data directory (several `hub serve`)."""
    key_dir.mkdir(parents=True, exist_ok=True)
    with open(key_dir / ".lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@dataclass(frozen=True)
class TokenKey:
    kid: str
    created: int
    key: ECKey


class KeyRing:
    def __init__(self, key_dir: Path) -> None:
        self.dir = key_dir
        self.tokens_dir = key_dir / "tokens"
        self._cached: tuple[tuple[str, ...], list[TokenKey]] | None = None

    # -- token keys -------------------------------------------------------------------------------------
    def token_keys(self) -> list[TokenKey]:
        """The token keys, oldest first. Read from disk only when the folder's listing changes (a key file is
        written whole under its final name and never modified), so a rotation by another process is seen at
        once and an unchanged set costs one directory listing, not a PEM parse per request."""
        try:
            names = tuple(sorted(n for n in os.listdir(self.tokens_dir) if n.endswith(".pem")))
        except FileNotFoundError:
            names = ()
        if self._cached is not None and self._cached[0] == names:
            return list(self._cached[1])
        out = []
        for name in names:
            pem = self.tokens_dir / name
            created_s, _, kid = pem.stem.partition("-")
            key = ECKey.import_key(pem.read_bytes(), parameters={"kid": kid, "use": "sig", "alg": TOKEN_ALG})
            out.append(TokenKey(kid=kid, created=int(created_s), key=key))
        out.sort(key=lambda k: k.created)
        self._cached = (names, out)
        return list(out)

    def rotate(self, now: float | None = None) -> TokenKey:
        """Create a new active token key."""
        with _locked(self.dir):
            return self._rotate(now)

    def _rotate(self, now: float | None) -> TokenKey:
        created = int(now if now is not None else time.time())
        existing = self.token_keys()
        if existing and existing[-1].created >= created:
            created = existing[-1].created + 1
        kid = secrets.token_hex(8)
        private = ec.generate_private_key(ec.SECP256R1())
        pem = private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        write_private_file(self.tokens_dir / f"{created:012d}-{kid}.pem", pem)
        return self.token_keys()[-1]

    def ensure(self) -> None:
        """Generate whatever key is missing. Several processes starting at once on one data directory
        agree on one set of keys: generation happens under a file lock and each file appears whole."""
        with _locked(self.dir):
            if not self.token_keys():
                self._rotate(None)
            self.audit_private_key()
            self.pseudonym_key()
            self.perturbation_key()
            if not self.digest_keys():
                self._new_digest_key(None)

    def active(self) -> TokenKey:
        keys = self.token_keys()
        if not keys:
            raise ConfigError("no token key; run `hub keys init`")
        return keys[-1]

    def prune(self, token_ttl: int, now: float | None = None) -> list[str]:
        """Drop retired keys whose tokens have all expired; returns the dropped kids."""
        now = time.time() if now is None else now
        keys = self.token_keys()
        dropped = []
        for old, newer in zip(keys, keys[1:], strict=False):
            if newer.created + token_ttl + 60 < now:
                for pem in self.tokens_dir.glob(f"*-{old.kid}.pem"):
                    pem.unlink()
                dropped.append(old.kid)
        return dropped

    def keyset(self) -> KeySet:
        return KeySet([k.key for k in self.token_keys()])

    def jwks(self) -> dict[str, object]:
        return {"keys": [k.key.as_dict(private=False) for k in self.token_keys()]}

    # -- audit and pseudonym keys --------------------------------------------------------------------------
    def audit_private_key(self) -> ed25519.Ed25519PrivateKey:
        path = self.dir / "audit-private.pem"
        if not path.exists():
            private = ed25519.Ed25519PrivateKey.generate()
            with contextlib.suppress(FileExistsError):  # another process got there first: use its key
                write_private_file(
                    path,
                    private.private_bytes(
                        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
                    ),
                )
                public = self.dir / "audit-public.pem"
                public.unlink(missing_ok=True)
                write_private_file(
                    public,
                    private.public_key().public_bytes(
                        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
                    ),
                    mode=0o644,
                )
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        assert isinstance(key, ed25519.Ed25519PrivateKey)
        return key

    @property
    def audit_public_path(self) -> Path:
        return self.dir / "audit-public.pem"

    def _random_key(self, name: str) -> bytes:
        """32 random bytes kept in ``<key dir>/<name>``, made on first use (the first writer wins a race)."""
        path = self.dir / name
        if not path.exists():
            with contextlib.suppress(FileExistsError):
                write_private_file(path, secrets.token_bytes(32))
        return path.read_bytes()

    def pseudonym_key(self) -> bytes:
        return self._random_key("pseudonym.key")

    def console_session_key(self) -> bytes:
        """32 random bytes that sign the privacy officers' console session cookies (hub/console/)."""
        return self._random_key("console-session.key")

    def totp_seal_key(self) -> bytes:
        """32 random bytes (AES-256-GCM) that seal the console officers' TOTP secrets in the hub database, so a copy
        of the database alone does not give an attacker the second factor (hub/store/officers.py)."""
        return self._random_key("totp-seal.key")

    def perturbation_key(self) -> bytes:
        return self._random_key("perturbation.key")

    # -- audit digest keys (entry v2) ----------------------------------------------------------------------
    @property
    def digest_dir(self) -> Path:
        return self.dir / "audit-digest"

    def digest_keys(self) -> dict[str, bytes]:
        """Every audit digest key by its id (``hub.audit.entry.digest_key_id``), oldest first."""
        from hub.audit.entry import digest_key_id

        try:
            names = sorted(n for n in os.listdir(self.digest_dir) if n.endswith(".key"))
        except FileNotFoundError:
            return {}
        keys = [(self.digest_dir / n).read_bytes() for n in names]
        return {digest_key_id(k): k for k in keys}

    def digest_key(self) -> bytes:
        """The active audit digest key (the newest), generated on first use."""
        keys = self.digest_keys()
        if not keys:
            with _locked(self.dir):
                keys = self.digest_keys()
                if not keys:
                    self._new_digest_key(None)
                    keys = self.digest_keys()
        return list(keys.values())[-1]

    def rotate_digest_key(self, now: float | None = None) -> str:
        """Make a new active audit digest key; returns its id. The old keys stay (older entries need them)."""
        with _locked(self.dir):
            return self._new_digest_key(now)

    def _new_digest_key(self, now: float | None) -> str:
        from hub.audit.entry import digest_key_id

        created = int(now if now is not None else time.time())
        names = sorted(self.digest_dir.glob("*.key")) if self.digest_dir.exists() else []
        if names:
            created = max(created, int(names[-1].stem) + 1)
        key = secrets.token_bytes(32)
        write_private_file(self.digest_dir / f"{created:012d}.key", key)
        return digest_key_id(key)
