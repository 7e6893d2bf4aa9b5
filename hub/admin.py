"""The operator's administrative commands are audit entries too.

Who may ask the hub for data is decided by the client registry, the household authorizations and the console's
officer accounts; a change to any of them changes who can see residents' data. So each change made from the
command line (``hub clients ...``, ``hub authorizations ...``, ``hub officers ...``, ``hub keys rotate``) is
appended to the audit log like a request: ``route: "admin"``, the action as the reason
(``ADMIN_CLIENT_ADD``, ...), what changed in ``admin`` (names and codes only: never a secret, a password, a TOTP
seed or a household id), and the operating-system account that ran the command as the officer (``os:<user>``).

A change whose entry cannot be written is reported as an error by the command (the change itself is already
made: the registry and the log are two databases, and the command says so)."""

from __future__ import annotations

import getpass
import time
import uuid
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hub.settings import Settings

ROUTE = "admin"


def operator() -> str:
    """The account running the command, as the entry's officer."""
    try:
        return f"os:{getpass.getuser()}"[:80]
    except (KeyError, OSError):  # no name for this uid (a container): the uid stays unknown rather than guessed
        return "os:unknown"


def record_admin(settings: Settings, action: str, **what: str) -> int:
    """Append one entry for an administrative change; returns its sequence number."""
    from hub.audit.store import open_audit_log
    from hub.gateway import Exchange, audit_body

    body = audit_body(Exchange(request_id=uuid.uuid4().hex, started=time.perf_counter()))
    body.update(
        officer=operator(),
        decision="allow",
        reasons=[f"ADMIN_{action.upper().replace('-', '_')}"],
        route=ROUTE,
        admin={"action": action, **what},
    )
    for key in ("client_id", "department", "area"):
        if key in what:
            body[key] = what[key]
    log = open_audit_log(settings)
    try:
        [seq] = log.write([(body, [])])
    finally:
        log.engine.dispose()
    return int(seq)
