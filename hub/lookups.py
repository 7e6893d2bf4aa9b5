"""Lookups by ID number are not an existence oracle.

``person(idNumber:)``, ``people(idNumbers:)`` and ``household(householdId:)`` answer null for a resident (or
household) who does not exist and for one outside the caller's jurisdiction alike, so the answer never says which.
But null versus data still says whether a candidate ID number belongs to a resident in the area: a consumer holding
a masked ID number (area code + last 4) recovered the full number in 2 requests, by asking for all ~3,500 candidates
at once and seeing which one answered. Two rules close this (docs/policies.md, "Lookups by ID number"):

* **Mostly misses.** A request whose ID numbers mostly come back null (at least ``MIN_MISSES`` and more than
  half of the distinct ID numbers asked) is refused whole with ``LOOKUP_MOSTLY_MISSED``: nothing is returned, not
  even the residents found.
* **Budget.** Each client may miss at most ``HUB_LOOKUP_MISS_BUDGET`` ID numbers within
  ``HUB_LOOKUP_MISS_WINDOW`` seconds. Misses are recorded in the hub's own database (table ``lookup_misses``),
  so every hub process sharing the database shares the budget. A lookup that would pass the budget is refused
  with ``LOOKUP_BUDGET_EXHAUSTED``; once the budget is spent, every lookup by ID number is refused before any
  department is asked, found or not, until old misses leave the window (otherwise a refusal would itself answer
  the question).

Both refusals are audited with their code, and officers see them flagged ``ID_PROBING``. A miss is a null
answer that carries no error (a department that is down does not count against the caller).
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import anyio
from graphql import (
    DocumentNode,
    ExecutionResult,
    OperationDefinitionNode,
    value_from_ast_untyped,
)
from sqlalchemy import Connection, Engine, func, insert, select

from hub.clock import Clock, system_clock
from hub.db import lookup_misses
from hub.errors import ForbiddenError
from hub.graphql_walk import Walker, with_defaults
from hub.sources.sql import bind_value, hub_inline, try_query
from hub.store.prefetch import prefetched

SINGLE = {"person": "idNumber", "household": "householdId"}  # root fields that look up one resident or household
MIN_MISSES = 2  # a single mistyped ID number is not refused; two or more misses out of a mostly-missing list are


class LookupRefused(ForbiddenError):
    code = "LOOKUP_MOSTLY_MISSED"


class LookupBudgetExhausted(ForbiddenError):
    code = "LOOKUP_BUDGET_EXHAUSTED"
    status = 429


@dataclass
class IdLookups:
    """The lookups by ID of one operation (root fields ``person``, ``people`` and ``household``): response key ->
    (field, the ID numbers or household ids asked, in order). A household id missed counts as an ID number missed:
    the same rules, the same budget."""

    fields: dict[str, tuple[str, list[str]]] = field(default_factory=dict)

    @classmethod
    def of(
        cls, document: DocumentNode, operation: OperationDefinitionNode, variables: Mapping[str, Any] | None
    ) -> IdLookups:
        values = with_defaults(operation, variables)
        out = cls()
        for key, nodes in Walker.of(document, values).response_keys(operation.selection_set).items():
            name = nodes[0].name.value
            if name not in SINGLE and name != "people":
                continue
            args = {a.name.value: value_from_ast_untyped(a.value, values) for a in nodes[0].arguments or ()}
            asked = args.get(SINGLE[name]) if name in SINGLE else args.get("idNumbers")
            ids = [asked] if name in SINGLE else asked
            if isinstance(ids, list) and all(isinstance(i, str) for i in ids):
                out.fields[key] = (name, list(ids))
        return out

    def __bool__(self) -> bool:
        return bool(self.fields)

    def outcome(self, result: ExecutionResult) -> tuple[set[str], set[str]]:
        """(distinct ID numbers asked, those that came back null without an error)."""
        data = result.data or {}
        failed = {tuple(e.path[:2]) for e in result.errors or [] if e.path}
        asked: set[str] = set()
        missed: set[str] = set()
        for key, (name, ids) in self.fields.items():
            asked.update(ids)
            answer = data.get(key)
            if name in SINGLE:
                if answer is None and (key,) not in failed:
                    missed.add(ids[0])
                continue
            if not isinstance(answer, list) or len(answer) != len(ids):
                continue  # the whole list failed (e.g. too many ID numbers): an error, not misses
            for n, (id_number, value) in enumerate(zip(ids, answer, strict=True)):
                if value is None and (key, n) not in failed:
                    missed.add(id_number)
        return asked, missed


# ``MissLedger.spent``'s statement, as read inline on SQLite (``before``)
SPENT_SQL = "SELECT coalesce(sum(misses), 0) FROM lookup_misses WHERE client_id = ? AND at > ?"


class MissLedger:
    """Per-client misses in the hub's database; the clock is injectable (tests, several processes)."""

    def __init__(self, engine: Engine, budget: int, window: float, clock: Clock = system_clock) -> None:
        self.engine, self.budget, self.window = engine, budget, timedelta(seconds=window)
        self.clock = clock
        self.inline = hub_inline(engine)  # the request path's read of the budget spent, on SQLite (``before``)

    def spent(self, client_id: str, conn: Connection | None = None) -> int:
        since = self.clock() - self.window
        with self.engine.connect() if conn is None else nullcontext(conn) as c:
            total = c.execute(
                select(func.coalesce(func.sum(lookup_misses.c.misses), 0)).where(
                    lookup_misses.c.client_id == client_id, lookup_misses.c.at > since
                )
            ).scalar_one()
        return int(total)

    def record(self, client_id: str, misses: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(insert(lookup_misses).values(client_id=client_id, at=self.clock(), misses=misses))

    async def before(self, client_id: str) -> int:
        """Refuse before execution when the budget is spent; return what is spent."""
        pre = prefetched(client_id)  # read with the client's row (PostgreSQL, hub/store/prefetch.py)
        if pre is not None:
            spent = pre.spent
        else:
            since = bind_value(lookup_misses.c.at, self.clock() - self.window)
            found = try_query(self.inline, SPENT_SQL, (client_id, since))
            spent = int(found[0][0]) if found is not None else await anyio.to_thread.run_sync(self.spent, client_id)
        if spent >= self.budget:
            raise LookupBudgetExhausted(
                f"client {client_id} has used its budget of {self.budget} ID numbers not found or out of area; "
                "lookups by ID number are refused until older misses leave the window"
            )
        return spent

    async def after(self, client_id: str, spent: int, asked: set[str], missed: set[str]) -> None:
        """Record this request's misses, then refuse it if they are most of it or pass the budget."""
        if not missed:
            return
        await anyio.to_thread.run_sync(self.record, client_id, len(missed))
        if len(missed) >= MIN_MISSES and 2 * len(missed) > len(asked):
            raise LookupRefused(
                f"{len(missed)} of the {len(asked)} ID numbers asked were not found or are outside your "
                "jurisdiction; a lookup that mostly misses is refused"
            )
        if spent + len(missed) > self.budget:
            raise LookupBudgetExhausted(
                f"this request would pass client {client_id}'s budget of {self.budget} ID numbers not found or "
                "out of area"
            )
