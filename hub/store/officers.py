"""Officer accounts for the privacy officers' console, in the hub database (table ``officers``, docs/console.md).

Officers are people, not department clients: a login, a display name, the department they work for, roles
(``officer``, a privacy officer, opens the console; ``caseworker`` does not), a scrypt hash of the password made by
the same function as client secrets (``hub.store.clients.hash_secret``), an optional RFC 6238 TOTP secret, an
optional identity-provider subject (OIDC sign-in maps a claim to the account) and a disabled flag.

A TOTP code is accepted for the current 30-second step or the one before (clock drift), and never for a step at
or before the last one accepted, so a code seen once (or an older one) does not sign in again. The TOTP secret is
stored sealed (AES-256-GCM, the key ``<key dir>/totp-seal.key``, the login as associated data, so a sealed secret
copied to another account's row does not open); a secret stored in the clear by an earlier hub is sealed at its
account's next TOTP check.
"""

from __future__ import annotations

import base64
import builtins
import hmac
import json
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA1
from cryptography.hazmat.primitives.twofactor.totp import TOTP
from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from hub.clock import Clock, system_clock
from hub.db import officers
from hub.departments import DEPARTMENTS
from hub.errors import ConfigError, RequestError
from hub.store.clients import SCRYPT_N, check_secret, hash_secret

OFFICER_ROLE = "officer"  # a privacy officer: opens the console
ROLES = (OFFICER_ROLE, "caseworker")
MIN_PASSWORD = 12
TOTP_STEP = 30
TOTP_DIGITS = 6
TOTP_ISSUER = "hub console"
log = logging.getLogger("hub.console")
SEALED = "sealed:v1:"  # a sealed TOTP secret: this prefix, then base64url(12-byte nonce + AES-GCM ciphertext)
_LOGIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


@dataclass(frozen=True)
class Officer:
    login: str
    display_name: str
    department: str
    roles: tuple[str, ...]
    disabled: bool
    has_password: bool
    has_totp: bool
    oidc_subject: str | None

    @property
    def name(self) -> str:
        return self.login

    @property
    def status(self) -> str:
        return "disabled" if self.disabled else "active"

    @property
    def may_use_console(self) -> bool:
        return not self.disabled and OFFICER_ROLE in self.roles


def _totp(secret_b32: str) -> TOTP:
    return TOTP(base64.b32decode(secret_b32), TOTP_DIGITS, SHA1(), TOTP_STEP)  # noqa: S303 - RFC 6238 authenticator apps use HMAC-SHA-1


def totp_code(secret_b32: str, at: datetime) -> str:
    """The code an authenticator app shows at ``at`` (used by the tests and nothing else in the hub)."""
    return _totp(secret_b32).generate(int(at.timestamp())).decode()


def _row(m: object) -> Officer:
    r = m._mapping  # type: ignore[attr-defined]
    return Officer(
        login=r["login"],
        display_name=r["display_name"],
        department=r["department"],
        roles=tuple(x for x in r["roles"].split(",") if x),
        disabled=bool(r["disabled"]),
        has_password=bool(r["password_hash"]),
        has_totp=bool(r["totp_secret"]),
        oidc_subject=r["oidc_subject"],
    )


def check_login(login: str) -> str:
    if not _LOGIN.match(login):
        raise RequestError("officer login: 1 to 64 letters, digits, '.', '_', '@' or '-'", code="BAD_ARGUMENT")
    return login


class OfficerStore:
    def __init__(
        self, engine: Engine, clock: Clock = system_clock, scrypt_n: int = SCRYPT_N, seal_key: bytes | None = None
    ) -> None:
        """``seal_key``: the key ring's ``totp_seal_key()``; without it the store manages accounts and passwords
        but can neither enrol nor check a TOTP secret."""
        self.engine, self.clock, self.scrypt_n = engine, clock, scrypt_n
        self._aead = AESGCM(seal_key) if seal_key is not None else None
        self._dummy = hash_secret(secrets.token_urlsafe(16), scrypt_n)  # same time for unknown logins

    def _sealer(self) -> AESGCM:
        if self._aead is None:
            raise ConfigError("TOTP secrets are sealed with the key folder's totp-seal.key: open the store with it")
        return self._aead

    def _seal(self, login: str, secret_b32: str) -> str:
        nonce = secrets.token_bytes(12)
        sealed = self._sealer().encrypt(nonce, secret_b32.encode(), login.encode())
        return SEALED + base64.urlsafe_b64encode(nonce + sealed).decode()

    def _unseal(self, login: str, stored: str) -> str:
        if not stored.startswith(SEALED):
            return stored  # stored in the clear by a hub before sealing; sealed at the next check
        raw = base64.urlsafe_b64decode(stored.removeprefix(SEALED))
        try:
            return self._sealer().decrypt(raw[:12], raw[12:], login.encode()).decode()
        except InvalidTag:
            raise ConfigError(
                f"officer {login}'s TOTP secret does not open with this key folder's totp-seal.key (another hub's "
                "key, or the secret was moved from another account): enrol again with `hub officers totp`"
            ) from None

    def _hash(self, password: str) -> str:
        if len(password) < MIN_PASSWORD:
            raise RequestError(f"password: at least {MIN_PASSWORD} characters", code="BAD_ARGUMENT")
        return hash_secret(password, self.scrypt_n)

    def add(
        self,
        login: str,
        password: str | None,
        *,
        display_name: str = "",
        department: str = "audit_office",
        roles: tuple[str, ...] = (OFFICER_ROLE,),
        oidc_subject: str | None = None,
        password_hash: str | None = None,
    ) -> Officer:
        """A new account. ``password`` None: no local password (sign-in through the identity provider only);
        ``password_hash``: an existing scrypt hash (the officers.json import)."""
        check_login(login)
        if department not in DEPARTMENTS:
            raise RequestError(f"unknown department {department!r}", code="BAD_ARGUMENT")
        unknown = sorted(set(roles) - set(ROLES))
        if unknown or not roles:
            raise RequestError(f"roles: one or more of {', '.join(ROLES)}", code="BAD_ARGUMENT")
        stored = password_hash if password_hash is not None else (self._hash(password) if password else "")
        now = self.clock()
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(officers).values(
                        login=login,
                        display_name=(display_name or login)[:120],
                        department=department,
                        roles=",".join(sorted(set(roles))),
                        password_hash=stored,
                        totp_secret="",
                        totp_last_step=0,
                        oidc_subject=oidc_subject or None,
                        disabled=False,
                        created_at=now,
                        updated_at=now,
                    )
                )
        except IntegrityError:
            raise RequestError(
                f"officer {login!r} (or that identity-provider subject) already exists", code="BAD_ARGUMENT"
            ) from None
        found = self.get(login)
        assert found is not None
        return found

    def get(self, login: str) -> Officer | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(officers).where(officers.c.login == login)).first()
        return None if row is None else _row(row)

    def by_subject(self, subject: str) -> Officer | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(officers).where(officers.c.oidc_subject == subject)).first()
        return None if row is None else _row(row)

    def list(self) -> builtins.list[Officer]:
        with self.engine.connect() as conn:
            return [_row(r) for r in conn.execute(select(officers).order_by(officers.c.login))]

    def _update(self, login: str, **values: object) -> None:
        with self.engine.begin() as conn:
            done = conn.execute(
                update(officers).where(officers.c.login == login).values(**values, updated_at=self.clock())
            ).rowcount
        if not done:
            raise RequestError(f"no officer {login!r}", code="NOT_FOUND")

    def set_disabled(self, login: str, disabled: bool = True) -> None:
        self._update(login, disabled=disabled)

    def set_password(self, login: str, password: str) -> None:
        self._update(login, password_hash=self._hash(password))

    def set_subject(self, login: str, subject: str | None) -> None:
        try:
            self._update(login, oidc_subject=subject or None)
        except IntegrityError:
            raise RequestError("another officer has that identity-provider subject", code="BAD_ARGUMENT") from None

    def enrol_totp(self, login: str) -> str:
        """A new TOTP secret for the account (replacing any earlier one): the ``otpauth://`` URI to show once."""
        secret = base64.b32encode(secrets.token_bytes(20)).decode()
        self._update(login, totp_secret=self._seal(login, secret), totp_last_step=0)
        return _totp(secret).get_provisioning_uri(login, TOTP_ISSUER)

    def remove_totp(self, login: str) -> None:
        self._update(login, totp_secret="", totp_last_step=0)

    def totp_secret(self, login: str) -> str:
        """The account's TOTP secret (base32), unsealed; "" when it has none. A secret still in the clear is
        sealed now."""
        with self.engine.connect() as conn:
            stored = str(conn.execute(select(officers.c.totp_secret).where(officers.c.login == login)).scalar() or "")
        if not stored:
            return ""
        secret = self._unseal(login, stored)
        if not stored.startswith(SEALED):
            with self.engine.begin() as conn:
                conn.execute(
                    update(officers)
                    .where(officers.c.login == login, officers.c.totp_secret == stored)
                    .values(totp_secret=self._seal(login, secret))
                )
        return secret

    def check_totp(self, login: str, code: str) -> bool:
        """Whether ``code`` is the account's code for this step or the one before, not used before (the step is
        then marked used, atomically, so two sign-ins with one code cannot both pass)."""
        try:
            secret = self.totp_secret(login)
        except ConfigError as exc:  # the operator's to fix (logged); the sign-in is refused like a wrong code
            log.error("TOTP check for officer %s: %s", login, exc.message)
            return False
        code = code.strip()
        if not secret or not (len(code) == TOTP_DIGITS and code.isdigit()):
            return False
        now = int(self.clock().timestamp()) // TOTP_STEP
        totp = _totp(secret)
        for step in (now, now - 1):
            if hmac.compare_digest(totp.generate(step * TOTP_STEP).decode(), code):
                with self.engine.begin() as conn:
                    taken = conn.execute(
                        update(officers)
                        .where(officers.c.login == login, officers.c.totp_last_step < step)
                        .values(totp_last_step=step)
                    ).rowcount
                return bool(taken)
        return False

    def authenticate(self, login: str, password: str, code: str = "") -> Officer | None:
        """The officer, if the password is theirs and, for an account with TOTP, the code is current and unused.
        One scrypt whether or not the login exists (same time)."""
        with self.engine.connect() as conn:
            stored = conn.execute(select(officers.c.password_hash).where(officers.c.login == login)).scalar()
        if not stored:
            check_secret(password, self._dummy)
            return None
        if not check_secret(password, str(stored)):
            return None
        officer = self.get(login)
        if officer is not None and officer.has_totp and not self.check_totp(login, code):
            return None
        return officer

    def import_json(self, path: Path) -> builtins.list[str]:
        """Accounts from the old ``<data_dir>/console/officers.json`` (hashes kept as they are; accounts already
        in the database are left alone). The file is renamed ``officers.json.imported`` afterwards. The logins
        imported."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        imported = []
        for login, row in sorted(data.items() if isinstance(data, dict) else []):
            if not isinstance(row, dict) or self.get(login) is not None:
                continue
            roles = tuple(r for r in row.get("roles", []) if r in ROLES) or ("caseworker",)
            self.add(
                login,
                None,
                department=str(row.get("department", "audit_office")),
                roles=roles,
                password_hash=str(row.get("hash", "")),
            )
            if row.get("status") == "disabled":
                self.set_disabled(login)
            imported.append(login)
        path.rename(path.with_name(path.name + ".imported"))
        return imported
