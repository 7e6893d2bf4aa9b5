"""Open the audit log of a configured hub (for the CLI and tools)."""

from __future__ import annotations

from hub.audit.log import AuditLog
from hub.auth.keys import KeyRing
from hub.db import hub_engine, upgrade
from hub.settings import Settings


def open_audit_log(settings: Settings) -> AuditLog:
    upgrade(settings.database_url)
    ring = KeyRing(settings.key_dir)
    ring.ensure()
    return AuditLog(
        hub_engine(settings.database_url),
        ring.audit_private_key(),
        ring.pseudonym_key(),
        digest_key=ring.digest_key(),
    )
