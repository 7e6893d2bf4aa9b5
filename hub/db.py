"""The hub's own database: clients, household authorizations, the audit log and its signed tree heads.

Nothing here is department data. The schema is created and changed only by alembic migrations
(``migrations/``); ``target_metadata`` there is this module's ``metadata``.
"""

from __future__ import annotations

import sys
from dataclasses import fields
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    Engine,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
)
from sqlalchemy.engine import Row, make_url

T = TypeVar("T")

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
    }
)

clients = Table(
    "clients",
    metadata,
    Column("client_id", String(64), primary_key=True),
    Column("department", String(40), nullable=False),
    Column("area", String(12), nullable=False),
    Column("purposes", Text, nullable=False),  # JSON list of purpose ids
    Column("roles", Text, nullable=False),  # JSON list of roles
    Column("secret_hash", String(200), nullable=False),
    Column("status", String(10), nullable=False),  # active | disabled
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

authorizations = Table(
    "authorizations",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("household_id", String(20), nullable=False, index=True),
    Column("department", String(40), nullable=False),  # the verification body the household authorized
    Column("scope", Text, nullable=False),  # JSON list of provider departments covered, or ["*"]
    Column("signer", String(80), nullable=False),  # who signed (member or guardian), as recorded on paper
    Column("valid_from", Date, nullable=False),
    Column("valid_to", Date, nullable=False),
    Column("document_sha256", String(64), nullable=False),
    Column("recorded_by", String(80), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True)),
)

audit_entries = Table(
    "audit_entries",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=False),  # leaf index, gap-free from 0
    Column("request_id", String(40), nullable=False, index=True),
    Column("at", DateTime(timezone=True), nullable=False, index=True),
    Column("client_id", String(64), nullable=False),
    Column("department", String(40), nullable=False, index=True),
    Column("officer", String(80), nullable=False, index=True),
    Column("purpose", String(20), nullable=False),
    Column("case_ref", String(80), nullable=False),
    Column("decision", String(10), nullable=False),  # allow | deny | error
    Column("entry", Text, nullable=False),  # canonical JSON; the leaf is SHA-256(0x00 || entry)
    Column("leaf_hash", LargeBinary(32), nullable=False),
)

audit_subjects = Table(
    "audit_subjects",
    metadata,
    Column("seq", Integer, nullable=False),
    Column("subject", String(64), nullable=False),  # keyed HMAC pseudonym of an ID number
    Index("ix_audit_subjects_subject_seq", "subject", "seq"),
)

tree_heads = Table(
    "tree_heads",
    metadata,
    Column("tree_size", Integer, primary_key=True, autoincrement=False),
    Column("root_hash", LargeBinary(32), nullable=False),
    Column("signed_at", DateTime(timezone=True), nullable=False),
    Column("key_id", String(64), nullable=False),
    Column("signature", LargeBinary(64), nullable=False),
)

# Cosignatures of the hub's checkpoints by witnesses (HUB_WITNESSES; docs/audit.md "Checkpoints and witnesses")
witnessed_checkpoints = Table(
    "witnessed_checkpoints",
    metadata,
    Column("tree_size", Integer, primary_key=True, autoincrement=False),
    Column("witness", String(300), primary_key=True),  # the witness's verifier key (vkey)
    Column("signature", Text, nullable=False),  # its cosignature line, "— <name> <base64>"
    Column("received_at", DateTime(timezone=True), nullable=False),
)

archives = Table(
    "archives",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("first_seq", Integer, nullable=False),
    Column("last_seq", Integer, nullable=False),
    Column("file", Text, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("archived_at", DateTime(timezone=True), nullable=False),
    Column("verified", Boolean, nullable=False),
)

# Monitoring (docs/monitoring.md): the cursor per department outbox, what became of each event, alerts.
# approved operations (persisted documents, docs/operations.md): a consumer submits the documents it needs, a
# privacy officer approves them, and clients switched to "require" run only approved ones
operations = Table(
    "operations",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("document_id", String(71), nullable=False),  # "sha256:<hex>" of the exact text
    Column("client_id", String(64), nullable=False),
    Column("purpose", String(20), nullable=False),
    Column("text", Text, nullable=False),
    Column("status", String(10), nullable=False),  # pending | approved | retired
    Column("submitted_by", String(80), nullable=False),
    Column("submitted_at", DateTime(timezone=True), nullable=False),
    Column("approved_by", String(80), nullable=False),  # "" until approved
    Column("approved_at", DateTime(timezone=True)),
    Column("retired_by", String(80), nullable=False),  # "" until retired
    Column("retired_at", DateTime(timezone=True)),
    Index("uq_operations_document_client_purpose", "document_id", "client_id", "purpose", unique=True),
)

operation_modes = Table(
    "operation_modes",
    metadata,
    Column("client_id", String(64), primary_key=True),
    Column("mode", String(10), nullable=False),  # off | log | require (no row: off)
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# rate limits (hub/ratelimit.py): one token bucket per key, shared by every hub process on this database
rate_buckets = Table(
    "rate_buckets",
    metadata,
    Column("key", String(120), primary_key=True),  # "graphql:<client id>", "token:<address>", "token-client:<id>"
    Column("tokens", Float, nullable=False),
    Column("updated", Float, nullable=False),  # seconds since the epoch, by the hub's clock
    Column("allowed", Boolean, nullable=False),  # whether the last request taken from it was let through
)

monitor_cursors = Table(
    "monitor_cursors",
    metadata,
    Column("department", String(40), primary_key=True),
    Column("position", Integer, nullable=False),  # the last outbox seq handled
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

monitor_events = Table(
    "monitor_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("department", String(40), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("kind", String(40), nullable=False),
    Column("outcome", String(12), nullable=False),  # alerted | no_match | rejected (no ID number kept here)
    Column("rules", Text, nullable=False),  # JSON list of the rule ids evaluated
    Column("reason", Text, nullable=False),
    Column("handled_at", DateTime(timezone=True), nullable=False),
    Index("uq_monitor_events_department_seq", "department", "seq", unique=True),
)

alerts = Table(
    "alerts",
    metadata,
    Column("id", String(32), primary_key=True),  # also the caseworker's case reference (X-Hub-Case)
    Column("rule_id", String(20), nullable=False),
    Column("id_number", String(18), nullable=False, index=True),  # the caseworker visits; the log keeps pseudonyms
    Column("area_code", String(12), nullable=False, index=True),
    Column("area_name", String(100), nullable=False),
    Column("source", String(60), nullable=False),  # "<department>:<seq>" of the event, or "sweep"
    Column("event_kind", String(40), nullable=False),
    Column("occurred_on", Date, nullable=False),
    Column("matched", Text, nullable=False),  # JSON: conditions met, in the form disclosed
    Column("programmes", Text, nullable=False),  # JSON: suggested programmes with reasons and amounts
    Column("estimated_monthly", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("due_on", Date, nullable=False),
    Column("status", String(10), nullable=False),  # new | assigned | visited | closed
    Column("assigned_to", String(80), nullable=False),
    Column("disposition", String(20), nullable=False),  # enrolled | referred | no_need | false_positive
    Column("open_key", String(60)),  # "<rule>:<id number>" while open, NULL once closed: one open alert each
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # the cursor of ``alerts(after:)`` and the subscription: strictly increasing in commit order (assigned under a
    # lock held to the commit, hub/monitor/alerts.py), unlike created_at, which two alerts can share
    Column("seq", Integer, nullable=False),
    Index("uq_alerts_open_key", "open_key", unique=True),
    Index("uq_alerts_seq", "seq", unique=True),
)

# One row per (department, event, rule) evaluated while that event's batch is in flight: a batch handled again
# after a crash reuses these verdicts instead of asking the rule again (no second evaluation entry in the audit
# log) and re-creates the same alert id. Removed when the cursor passes the event.
monitor_evaluations = Table(
    "monitor_evaluations",
    metadata,
    Column("department", String(40), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("rule_id", String(20), primary_key=True),
    Column("verdict", Text, nullable=False),  # JSON: found, and the match as disclosed (no ID number)
    Column("alert_id", String(32), nullable=False),  # the alert this verdict created ("": none)
    Column("entry_written", Boolean, nullable=False),  # the alert's own audit entry is in the log
    Column("evaluated_at", DateTime(timezone=True), nullable=False),
)

alert_history = Table(
    "alert_history",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("alert_id", String(32), nullable=False, index=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", String(160), nullable=False),  # client/officer, or "monitor"
    Column("action", String(20), nullable=False),  # created | matched_again | assigned | visited | closed
    Column("detail", Text, nullable=False),
)


lookup_misses = Table(
    "lookup_misses",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("client_id", String(64), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("misses", Integer, nullable=False),  # ID numbers of one request that were not found or out of area
    Index("ix_lookup_misses_client_id_at", "client_id", "at"),
)


# officers who sign in to the console (hub/store/officers.py, docs/console.md): people, not department clients
officers = Table(
    "officers",
    metadata,
    Column("login", String(64), primary_key=True),
    Column("display_name", String(120), nullable=False),
    Column("department", String(40), nullable=False),
    Column("roles", String(200), nullable=False),  # comma-separated: officer (privacy officer), caseworker
    Column("password_hash", String(200), nullable=False),  # scrypt, as client secrets; "" for identity-provider only
    Column("totp_secret", String(64), nullable=False),  # base32 RFC 6238 secret; "" when not enrolled
    Column("totp_last_step", Integer, nullable=False),  # the last time step a code was accepted for (no replay)
    Column("oidc_subject", String(255), unique=True),  # the identity provider's claim value mapped to this account
    Column("disabled", Boolean, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)


def hub_engine(url: str, busy_timeout: float = 5.0) -> Engine:
    """The hub's own engine. SQLite runs in WAL mode with full fsync so a commit is durable."""
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        if u.database:
            Path(u.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(u, connect_args={"check_same_thread": False, "timeout": busy_timeout})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    return create_engine(u, pool_pre_ping=True, pool_size=10, max_overflow=10)


def open_hub_db(url: str, busy_timeout: float = 5.0) -> Engine:
    """The hub database, brought to the latest migration, and its engine: how every part of the hub opens it."""
    upgrade(url)
    return hub_engine(url, busy_timeout)


def upgrade(url: str) -> None:
    """Bring the hub database to the latest migration."""
    from alembic import command

    command.upgrade(alembic_config(url), "head")


def alembic_config(url: str):  # type: ignore[no-untyped-def]
    from alembic.config import Config

    root = Path(__file__).resolve().parent.parent
    cfg = Config(stdout=sys.stdout)  # not alembic's default, bound to sys.stdout when alembic.config was imported
    cfg.set_main_option("script_location", str(root / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def from_row(cls: type[T], row: Row[Any], **given: Any) -> T:
    """The dataclass ``cls`` from one table row: each field from the column of its name, except those ``given``
    (decoded JSON, values derived from other columns)."""
    m = row._mapping
    return cls(**{f.name: given[f.name] if f.name in given else m[f.name] for f in fields(cls)})  # type: ignore[arg-type]
