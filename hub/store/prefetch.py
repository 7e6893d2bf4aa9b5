"""The request path's small reads of the hub database, taken together on PostgreSQL (issue 16).

Every GraphQL request reads its client's row (``ClientStore``), its approved-operations mode (``OperationStore``)
and, for a lookup by ID number, the lookup-miss budget it has spent (``MissLedger``). On SQLite each is read
inline on the event loop; on PostgreSQL each took a worker-thread hand-off of its own and a pooled connection.
There, ``HubState.authenticate`` reads all three in one hand-off and one connection, and leaves the mode and the
budget here for the same request: nothing is cached across requests, so a disable, a mode change or a miss
recorded by any process counts from the next request on, as before."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True)
class Prefetched:
    """What this request read of its client's operations mode and lookup-miss budget, with its client row."""

    client_id: str
    mode: str
    spent: int


# the request's own (each request runs in its own task and context); set by ``HubState.authenticate``
PREFETCHED: ContextVar[Prefetched | None] = ContextVar("hub_prefetched", default=None)


def prefetched(client_id: str) -> Prefetched | None:
    """This request's reads, if they were taken together for ``client_id``."""
    found = PREFETCHED.get()
    return found if found is not None and found.client_id == client_id else None
