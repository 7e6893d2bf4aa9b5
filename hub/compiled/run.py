"""Run a compiled tree: load through the resolvers' own functions, then assemble the answer in one pass.

Loading goes through what the resolvers use (``load_household``, the request's batched loaders with the same keys,
``HubContext.authorization_scopes`` and ``refusals``, the predicates' conditions), in the steps of ``load_people``
and ``people_from_rows``, so the statements, row scope, household authorizations and what the audit entry records
(residents touched, not found, failed departments) are the resolvers' own. What it does not do is build a
strawberry object per resident and record: assembly runs each selected field's getter (its disclosure form,
``hub.policy.forms``, the code ``build`` runs) on the department's rows and writes the answer directly, with
graphql-core's rules for errors (located at the field's path, a null propagated to the nearest nullable field).

Error order: graphql-core appends an error when the awaitable that raises it settles. Errors raised within one
awaited unit (a root field, one person's household, one household's members or size) come in document order, as
assembled here. When errors come from more than one such unit their order follows the event loop's scheduling;
the runner then gives the request to graphql-core (``Fallback``), on a fresh set of loaders, so the answer is
exactly graphql-core's.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import gc
import time
from collections.abc import Awaitable, Iterable, Iterator, Sequence
from itertools import repeat
from typing import Any

from graphql import ExecutionResult, GraphQLSchema, OperationDefinitionNode
from graphql.execution.values import VariableValues, get_argument_values

from hub.compiled.assemble import Assembler, Fallback
from hub.compiled.plan import Key, Kind, Selection
from hub.departments import households as household_table
from hub.departments import residents
from hub.errors import HubError, RequestError
from hub.schema import departments as d
from hub.schema.build import check_id
from hub.schema.context import HubContext
from hub.schema.people import (
    PS,
    RECORD_FIELDS,
    Household,
    household_scope,
    load_household,
    person_columns,
    register_loads,
    resident_scope,
    residents_by_id,
    settle,
)
from hub.schema.records import (
    Selected,
    build,
    record_selections,
    row_columns,
    selection_here,
)

_paused = 0  # requests under way with the collector paused
_since = 0.0  # when it was paused, or last collected while paused
_holding: contextvars.ContextVar[bool] = contextvars.ContextVar("hub_gc_paused", default=False)  # this request
MAX_PAUSE = 5.0  # seconds: requests that overlap without end still let the collector run this often


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """The cyclic garbage collector paused while requests are under way (reentrant: requests overlap). The
    GraphQL endpoint holds it for the whole request (``hub.app.graphql_endpoint``); a compiled run within it holds
    nothing more, and holds it for its own part when it runs otherwise.

    A large request allocates hundreds of thousands of objects (the departments' rows, the answer) that all stay
    alive until its response is sent: collections in the middle of it free nothing and traverse an ever larger
    heap (a quarter to a third of the time of 1,000 to 4,000 households). Reference counting still frees
    everything acyclic, and when the pause ends the request's objects are gone (the compiled path breaks the
    cycles that held its rows); cyclic garbage made meanwhile waits for the next collection after the last request
    ends, or, when requests overlap without a break for longer than ``MAX_PAUSE``, for a full collection as one of
    them ends (the objects frozen after start-up are not traversed)."""
    global _paused, _since
    if _holding.get() or (_paused == 0 and not gc.isenabled()):
        yield  # this request holds it already; or paused by someone else (a test, the operator): leave it so
        return
    if _paused == 0:
        _since = time.monotonic()
    _paused += 1
    gc.disable()
    token = _holding.set(True)
    try:
        yield
    finally:
        _holding.reset(token)
        _paused -= 1
        if _paused == 0:
            gc.enable()
        elif time.monotonic() - _since > MAX_PAUSE:
            _since = time.monotonic()
            gc.collect()  # every generation: under load without a break the collector is never enabled again


# A department record of one resident: an error (refused, or its department failed), or its rows (None: not
# loaded, as no field read from them is selected) and the answers of its predicates.
Record = Exception | tuple[list[Any] | None, dict[str, Any]]


class PersonView:
    """A resident: the public-security row and the selected department records (what ``Person`` would hold)."""

    __slots__ = ("records", "row")

    def __init__(self, row: Any, records: dict[str, Record]) -> None:
        self.row, self.records = row, records


_NO_RECORDS: dict[str, Record] = {}


class _Loaded:
    """What the loading phase found, by (object id, response key): async fields' values or their errors."""

    def __init__(self) -> None:
        self.values: dict[tuple[int, str], Any] = {}
        self.keep: list[Any] = []  # the objects keyed by id, alive until assembly is done


async def _gather(*aws: Awaitable[Any]) -> list[Any]:
    return list(await asyncio.gather(*aws, return_exceptions=True))


async def people_views(c: HubContext, info: Any, id_numbers: Sequence[str]) -> list[PersonView | None]:
    """``load_people``'s steps: residents by ID number, in order (None where not found or out of scope)."""
    found, rows = await residents_by_id(c, info, id_numbers)
    people = iter(await record_views(c, info, rows))
    return [next(people) if rs else None for rs in found]


async def record_views(c: HubContext, info: Any, rows: Sequence[Any]) -> list[PersonView]:
    """``people_from_rows``'s steps (the same loads, refusals and predicate batches), without building objects."""
    wanted = record_selections(c.selections, info, RECORD_FIELDS)
    if not wanted:
        return [PersonView(r, _NO_RECORDS) for r in rows]
    variables = info._raw_info.variable_values
    scopes = await c.authorization_scopes([r.household_id for r in rows])
    everyone = [r.id_number for r in rows]
    plans = []
    for gql_name, selected in wanted.items():
        _, cls = RECORD_FIELDS[gql_name]
        provider = d.RECORD_TABLES[cls][0]
        refused = c.refusals(scopes, provider, len(rows))
        # (a refusal is an exception, always true; the same list for every department that refuses nobody)
        allowed = everyone if not any(refused) else [i for i, e in zip(everyone, refused, strict=True) if e is None]
        rows_future, asked = register_loads(c, info, cls, selected, allowed, variables)
        plans.append((gql_name, refused, rows_future, asked))
    names: list[str] = []
    columns: list[list[Record]] = []
    for gql_name, refused, rows_future, asked in plans:
        loaded, failure, answered = await settle(rows_future, asked)
        names.append(gql_name)
        columns.append(_records(len(rows), refused, loaded, failure, answered))
    return [
        PersonView(r, dict(zip(names, recs, strict=True)))
        for r, recs in zip(rows, zip(*columns, strict=True), strict=True)
    ]


_NO_ANSWERS: dict[str, Any] = {}  # a record's predicate answers when none is selected (only ever read)


def _records(
    n: int,
    refused: list[HubError | None],
    loaded: list[list[Any]] | None,
    failure: HubError | None,
    answered: dict[str, list[bool] | HubError],
) -> list[Record]:
    """One department's record of each of ``n`` residents: its refusal or the department's failure, else (its rows
    or None when not loaded, its predicates' answers: each a bool, or the predicate's error)."""
    if failure is None and not any(refused):  # everyone allowed: ``loaded`` and the answers are in their order
        own: Iterable[Any] = repeat(None, n) if loaded is None else loaded
        if not answered:
            return [(r, _NO_ANSWERS) for r in own]
        fields = list(answered)
        values = [a if isinstance(a, list) else [a] * n for a in answered.values()]
        return [(r, dict(zip(fields, v, strict=True))) for r, v in zip(own, zip(*values, strict=True), strict=True)]
    out: list[Record] = []
    i = 0
    for refusal in refused:
        if refusal is not None or failure is not None:
            out.append(refusal or failure)  # type: ignore[arg-type]
            continue
        answers = {f: a if isinstance(a, HubError) else a[i] for f, a in answered.items()}
        out.append((None if loaded is None else loaded[i], answers))
        i += 1
    return out


async def households_by_id(c: HubContext, info: Any, ids: Sequence[str]) -> list[Household | None]:
    """``load_household``'s steps for many households at once (one future instead of one coroutine each; the
    loader, its key and so its statement are the same)."""
    where, name = household_scope(c)
    here = selection_here(c.selections, info)
    columns = tuple(sorted({*row_columns(Household, here), "household_id"}))
    found = await c.rows_many(PS, household_table, "household_id", ids, where, name, columns)
    below = Selected(here.nested.get("members", frozenset()), ())
    member_columns = person_columns(below, "relation_code") if "members" in here.names else ("id_number",)
    return [
        build(Household, rows, here, row=rows[0], member_columns=member_columns) if rows else None for rows in found
    ]


async def load(tree: Selection, schema: GraphQLSchema, values: VariableValues, c: HubContext, loaded: _Loaded) -> None:
    query = schema.query_type
    assert query is not None

    async def root(k: Key) -> None:
        try:
            args = get_argument_values(query.fields[k.name], k.nodes[0], values)
            info: Any = k.info
            if k.kind is Kind.PERSON:
                check_id(args["idNumber"], "idNumber")
                found: Any = (await people_views(c, info, [args["idNumber"]]))[0]
            elif k.kind is Kind.PEOPLE:
                ids = args["idNumbers"]
                if len(ids) > c.max_batch:
                    raise RequestError(
                        f"idNumbers: at most {c.max_batch} per request, got {len(ids)}", code="BATCH_TOO_LARGE"
                    )
                for i, v in enumerate(ids):
                    check_id(v, f"idNumbers[{i}]")
                found = await people_views(c, info, ids)
            else:
                hid = args["householdId"]
                if not 1 <= len(hid) <= 20 or not hid.isalnum():
                    raise RequestError("householdId: 1 to 20 letters or digits", code="BAD_ARGUMENT")
                found = await load_household(c, info, hid)
        except Exception as exc:  # noqa: BLE001 (reported at the field's path, as graphql-core does)
            loaded.values[(0, k.key)] = exc
            return
        loaded.values[(0, k.key)] = found
        assert k.sub is not None
        if k.kind is Kind.ROOT_HOUSEHOLD:
            await households(k.sub, [found] if found is not None else [])
        else:
            await persons(k.sub, [p for p in (found if k.kind is Kind.PEOPLE else [found]) if p is not None])

    async def persons(sel: Selection, found: list[PersonView]) -> None:
        if found:
            await _gather(*(household_of(k, found) for k in sel.keys if k.kind is Kind.HOUSEHOLD))

    async def household_of(k: Key, found: list[PersonView]) -> None:
        try:
            results: list[Any] = await households_by_id(c, k.info, [p.row.household_id for p in found])
        except Exception as exc:  # noqa: BLE001 (each person's household fails alike, as with one load each)
            results = [exc] * len(found)
        loaded.keep.extend(found)
        for p, h in zip(found, results, strict=True):
            loaded.values[(id(p), k.key)] = h
        assert k.sub is not None
        await households(k.sub, [h for h in results if isinstance(h, Household)])

    async def households(sel: Selection, found: list[Household]) -> None:
        wanted = [k for k in sel.keys if k.kind in (Kind.SIZE, Kind.MEMBERS)]
        if not found or not wanted:
            return
        loaded.keep.extend(found)
        where, name = resident_scope(c)  # ``Household._member_rows``: one load shared by size and members
        by_columns: dict[tuple[str, ...], list[Household]] = {}
        for h in found:
            by_columns.setdefault(h.member_columns, []).append(h)
        rows: dict[int, list[Any] | Exception] = {}
        for columns, hs in by_columns.items():
            ids = [h.row.household_id for h in hs]
            try:
                for h, rs in zip(
                    hs, await c.rows_many(PS, residents, "household_id", ids, where, name, columns), strict=True
                ):
                    rows[id(h)] = rs
            except Exception as exc:  # noqa: BLE001
                for h in hs:
                    rows[id(h)] = exc
        await _gather(*(members_of(k, found, rows) for k in wanted))

    async def members_of(k: Key, found: list[Household], rows: dict[int, list[Any] | Exception]) -> None:
        if k.kind is Kind.SIZE:
            for h in found:
                rs = rows[id(h)]
                loaded.values[(id(h), k.key)] = rs if isinstance(rs, Exception) else len(rs)
            return
        ordered: dict[int, list[Any]] = {}
        for h in found:
            rs = rows[id(h)]
            if isinstance(rs, Exception):
                loaded.values[(id(h), k.key)] = rs
                continue
            ordered[id(h)] = sorted(rs, key=lambda r: (r.relation_code, r.id_number))  # head first, as ``members``
            c.subjects.update(r.id_number for r in ordered[id(h)])
        every = [r for h in found if id(h) in ordered for r in ordered[id(h)]]
        try:
            people = await record_views(c, k.info, every)
        except Exception as exc:  # noqa: BLE001
            for h in found:
                loaded.values.setdefault((id(h), k.key), exc)
            return
        i = 0
        for h in found:
            if id(h) in ordered:
                n = len(ordered[id(h)])
                loaded.values[(id(h), k.key)] = people[i : i + n]
                i += n
        assert k.sub is not None
        await persons(k.sub, people)

    await _gather(*(root(k) for k in tree.keys if k.kind is not Kind.TYPENAME))


async def run_tree(
    tree: Selection,
    schema: GraphQLSchema,
    operation: OperationDefinitionNode,
    values: VariableValues,
    context: HubContext,
) -> ExecutionResult:
    """The answer graphql-core would give, or ``Fallback`` (nothing returned; the context's loads are kept)."""
    loaded = _Loaded()
    assembler = Assembler(loaded.values)
    with gc_paused():
        await load(tree, schema, values, context, loaded)
        try:
            data = assembler.root(tree)
        except Fallback:
            raise
        except Exception as exc:  # a getter failed on a value (graphql-core reports it its own way)
            raise Fallback(f"{type(exc).__name__} while assembling") from exc
        if len(assembler.units) > 1:
            raise Fallback("errors from more than one awaited unit")
        # What the answer was assembled from is freed now, while the collector is still paused: the request's
        # loaders (their rows) and what ``load`` found are held in reference cycles (a loader's fetch closes over
        # the context that holds it; ``load``'s functions over one another), which reference counting alone
        # never frees. Left to the collector, they were its next collection's work (a third of a million objects
        # traversed at 1,000 households). Nothing reads them after execution (a later step asks its source).
        context.loaders.clear()
        loaded.values.clear()
        loaded.keep.clear()
    return ExecutionResult(data, assembler.errors or None)
