"""Local officer accounts for the console (``hub console add-officer``), for a hub without an identity provider.

Officers are people, not department clients: an account is a name, a scrypt password hash (as client secrets
are, ``hub.store.clients``), roles (only ``officer`` opens the console) and the department the officer works
for. The accounts are kept in ``<data_dir>/console/officers.json`` (mode 0600), rewritten whole on each change.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from hub.departments import DEPARTMENTS
from hub.errors import RequestError
from hub.store.clients import check_secret, hash_secret

OFFICER_ROLE = "officer"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MIN_PASSWORD = 12


@dataclass(frozen=True)
class Officer:
    name: str
    department: str
    roles: tuple[str, ...]
    status: str

    @property
    def may_use_console(self) -> bool:
        return self.status == "active" and OFFICER_ROLE in self.roles


class OfficerStore:
    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / "console" / "officers.json"
        self._dummy = hash_secret(secrets.token_urlsafe(16))

    def _read(self) -> dict[str, dict[str, object]]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        return data if isinstance(data, dict) else {}

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, dict[str, object]]]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.parent / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                data = self._read()
                yield data
                tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    json.dump(data, f, indent=1, sort_keys=True)
                os.replace(tmp, self.path)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def add(
        self, name: str, password: str, *, department: str = "audit_office", roles: tuple[str, ...] = (OFFICER_ROLE,)
    ) -> Officer:
        if not _NAME.match(name):
            raise RequestError("officer name: 1 to 64 letters, digits, '.', '_' or '-'", code="BAD_ARGUMENT")
        if len(password) < MIN_PASSWORD:
            raise RequestError(f"password: at least {MIN_PASSWORD} characters", code="BAD_ARGUMENT")
        if department not in DEPARTMENTS:
            raise RequestError(f"unknown department {department!r}", code="BAD_ARGUMENT")
        with self._locked() as data:
            if name in data:
                raise RequestError(f"officer {name!r} already exists", code="BAD_ARGUMENT")
            data[name] = {
                "hash": hash_secret(password),
                "department": department,
                "roles": sorted(set(roles)),
                "status": "active",
            }
        officer = self.get(name)
        assert officer is not None
        return officer

    def set_status(self, name: str, status: str) -> None:
        with self._locked() as data:
            if name not in data:
                raise RequestError(f"no officer {name!r}", code="NOT_FOUND")
            data[name]["status"] = status

    def get(self, name: str) -> Officer | None:
        row = self._read().get(name)
        if not isinstance(row, dict):
            return None
        roles = row.get("roles")
        return Officer(
            name,
            str(row.get("department", "")),
            tuple(str(r) for r in roles) if isinstance(roles, list) else (),
            str(row.get("status", "")),
        )

    def list(self) -> list[Officer]:
        return [o for o in (self.get(n) for n in sorted(self._read())) if o is not None]

    def authenticate(self, name: str, password: str) -> Officer | None:
        """The officer, if the password is theirs (one scrypt whether or not the name exists: same time)."""
        row = self._read().get(name)
        stored = str(row.get("hash", "")) if isinstance(row, dict) else ""
        if not stored:
            check_secret(password, self._dummy)
            return None
        return self.get(name) if check_secret(password, stored) else None
