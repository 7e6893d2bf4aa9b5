"""PostgreSQL ``LISTEN/NOTIFY`` for department outboxes: a hint that wakes the reader early, never the truth.

A department whose database is PostgreSQL adds a trigger to its ``change_events`` outbox (``install_trigger``, or
the SQL in docs/monitoring.md): each new row NOTIFYs the channel ``hub_change_events`` with its sequence number
and nothing else (no ID number, no kind). The hub LISTENs on one connection per such department and, on a
notification, cuts the reader's sleep short. The cursor in the hub's database stays the truth: a lost
notification (a dropped connection, a trigger switched off, a notification sent while the hub was down) only
means the event waits for the next poll (``HUB_MONITOR_INTERVAL``). A dropped connection is reopened after a
pause; meanwhile the reader simply polls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import psycopg
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from hub.errors import ConfigError

log = logging.getLogger("hub.monitor")

CHANNEL = "hub_change_events"

TRIGGER_SQL = (
    f"""CREATE OR REPLACE FUNCTION {CHANNEL}_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('{CHANNEL}', NEW.seq::text);  -- the sequence number only: no ID number leaves this way
  RETURN NULL;
END $$""",
    "DROP TRIGGER IF EXISTS change_events_notify ON change_events",
    f"""CREATE TRIGGER change_events_notify AFTER INSERT ON change_events
  FOR EACH ROW EXECUTE FUNCTION {CHANNEL}_notify()""",
)


def install_trigger(url: str) -> None:
    """Add the NOTIFY trigger to a PostgreSQL department's outbox (run by the department, with its own rights;
    the hub's connection is read-only). ``hub monitor install-trigger URL`` runs this; ``--sql`` prints
    :data:`TRIGGER_SQL` for a DBA instead. Idempotent: run again, it replaces the function and the trigger."""
    shown = make_url(url).render_as_string(hide_password=True)
    if not is_postgres(url):
        raise ConfigError(
            f"{shown} is not PostgreSQL: only a PostgreSQL department can NOTIFY; the hub polls the others' "
            "outboxes every HUB_MONITOR_INTERVAL seconds, with no trigger needed"
        )
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            if conn.execute(text("SELECT to_regclass('change_events')")).scalar() is None:
                raise ConfigError(
                    f"{shown} has no change_events table: the department's outbox comes first "
                    "(docs/monitoring.md, 'Change events'); then install the trigger"
                )
            for stmt in TRIGGER_SQL:
                conn.execute(text(stmt))
    except DBAPIError as exc:
        first = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else type(exc).__name__
        raise ConfigError(f"could not install the trigger at {shown}: {first}") from None
    finally:
        engine.dispose()


def conninfo(url: str) -> str:
    """A libpq URI for psycopg from a SQLAlchemy URL (``postgresql+psycopg://...``)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def is_postgres(url: str) -> bool:
    return make_url(url).get_backend_name() == "postgresql"


class Listener:
    """One department's LISTEN connection. ``on_hint(department, seq)`` is called for each notification."""

    def __init__(self, department: str, url: str, on_hint: Callable[[str, int], None], *, retry: float = 2.0) -> None:
        self.department, self.url, self.on_hint, self.retry = department, url, on_hint, retry
        self.listening = asyncio.Event()  # set while the connection is open and LISTENing (tests, /readyz later)
        self.connections = 0
        self.backend_pid = 0

    async def run(self) -> None:
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(
                    conninfo(self.url), autocommit=True, connect_timeout=5, application_name="hub-monitor-listen"
                )
                async with conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self.connections += 1
                    self.backend_pid = conn.info.backend_pid
                    self.listening.set()
                    async for note in conn.notifies():
                        with contextlib.suppress(ValueError):
                            self.on_hint(self.department, int(note.payload))
            except asyncio.CancelledError:
                raise
            except (psycopg.Error, OSError) as exc:
                # only the class: the message can name the server; the reader keeps polling meanwhile
                log.info("monitor: LISTEN on %s lost (%s); polling meanwhile", self.department, type(exc).__name__)
            finally:
                self.listening.clear()
            await asyncio.sleep(self.retry)
