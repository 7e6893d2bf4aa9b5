"""The ``Actor``: who is asking, passed to policy and audit."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Actor:
    client_id: str
    department: str
    area: str  # GB/T 2260 area-code prefix of the client's jurisdiction, e.g. "330113" or "3301"
    purposes: tuple[str, ...]
    roles: tuple[str, ...] = ()
    officer: str = ""
    token_id: str = ""
    # registered for these purposes, but the token's scope left them out (the error says so, not "not registered")
    outside_scope: tuple[str, ...] = ()

    def has_role(self, role: str) -> bool:
        return role in self.roles
