"""Run a compiled tree: load through the resolvers' own functions, then assemble the answer in one pass.

Loading calls what the resolvers call (``load_people``, ``load_household``, ``people_from_rows``, the request's
batched loaders), so the statements, row scope, household authorizations, disclosure forms (the fields' getters,
``hub.policy.forms``) and what the audit entry records (residents touched, not found, failed departments) are the
resolvers' own. Assembly replaces graphql-core's completion: one walk over the built objects per response key,
with graphql-core's rules for errors (located at the field's path, a null propagated to the nearest nullable
field).

Error order: graphql-core appends an error when the awaitable that raises it settles. Errors raised within one
awaited unit (a root field, one person's household, one household's members or size) come in document order, as
assembled here. When errors come from more than one such unit their order follows the event loop's scheduling;
the runner then gives the request to graphql-core (``Fallback``), on a fresh set of loaders, so the answer is
exactly graphql-core's.
"""

from __future__ import annotations

import asyncio
from typing import Any

from graphql import ExecutionResult, GraphQLError, GraphQLSchema, OperationDefinitionNode, located_error
from graphql.execution.values import VariableValues, get_argument_values

from hub.compiled.plan import Key, Kind, Selection
from hub.errors import RequestError
from hub.schema.build import check_id
from hub.schema.context import HubContext
from hub.schema.people import (
    PS,
    Household,
    Person,
    load_household,
    load_people,
    people_from_rows,
    resident_scope,
)
from hub.departments import residents


class Fallback(Exception):
    """The compiled runner cannot promise graphql-core's answer for this request."""


class _Null(Exception):
    """A non-null field failed: its parent becomes null (the error is already located)."""

    def __init__(self, error: GraphQLError) -> None:
        self.error = error


class _Loaded:
    """What the loading phase found, by (object id, response key): async fields' values or their errors."""

    def __init__(self) -> None:
        self.values: dict[tuple[int, str], Any] = {}
        self.keep: list[Any] = []  # the objects keyed by id, alive until assembly is done


async def _gather(*aws: Any) -> list[Any]:
    return list(await asyncio.gather(*aws, return_exceptions=True))


async def load(
    tree: Selection, schema: GraphQLSchema, values: VariableValues, c: HubContext, loaded: _Loaded
) -> None:
    query = schema.query_type
    assert query is not None

    async def root(k: Key) -> None:
        try:
            node = k.nodes[0]
            args = get_argument_values(query.fields[k.name], node, values)
            info: Any = k.info
            if k.kind is Kind.PERSON:
                check_id(args["idNumber"], "idNumber")
                found: Any = (await load_people(c, info, [args["idNumber"]]))[0]
            elif k.kind is Kind.PEOPLE:
                ids = args["idNumbers"]
                if len(ids) > c.max_batch:
                    raise RequestError(
                        f"idNumbers: at most {c.max_batch} per request, got {len(ids)}", code="BATCH_TOO_LARGE"
                    )
                for i, v in enumerate(ids):
                    check_id(v, f"idNumbers[{i}]")
                found = await load_people(c, info, ids)
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

    async def persons(sel: Selection, found: list[Person]) -> None:
        if not found:
            return
        await _gather(*(household_of(k, found) for k in sel.keys if k.kind is Kind.HOUSEHOLD))

    async def household_of(k: Key, found: list[Person]) -> None:
        results = await _gather(*(load_household(c, k.info, p.row.household_id) for p in found))  # type: ignore[arg-type]
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
        where, name = resident_scope(c)
        by_columns: dict[tuple[str, ...], list[Household]] = {}
        for h in found:
            by_columns.setdefault(h.member_columns, []).append(h)
        rows: dict[int, list[Any] | Exception] = {}
        for columns, hs in by_columns.items():
            ids = [h.row.household_id for h in hs]
            try:
                for h, rs in zip(hs, await c.rows_many(PS, residents, "household_id", ids, where, name, columns)):
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
            ordered[id(h)] = sorted(rs, key=lambda r: (r.relation_code, r.id_number))
            c.subjects.update(r.id_number for r in ordered[id(h)])
        every = [r for h in found if id(h) in ordered for r in ordered[id(h)]]
        try:
            people = await people_from_rows(c, k.info, every)  # type: ignore[arg-type]
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


class _Assembler:
    def __init__(self, loaded: _Loaded) -> None:
        self.loaded = loaded
        self.errors: list[GraphQLError] = []
        self.units: set[Any] = set()

    def error(self, exc: Exception, k: Key, path: list[Any], unit: Any) -> GraphQLError:
        if isinstance(exc, _Null):
            return exc.error
        if not isinstance(exc, Exception):  # pragma: no cover
            raise Fallback("not an exception")
        self.units.add(unit)
        return located_error(exc, k.nodes, [*path, k.key])

    def nullable(self, exc: Exception, k: Key, path: list[Any], unit: Any) -> None:
        """A field failed: null here if the field may be null (the error recorded), else its parent's problem."""
        err = self.error(exc, k, path, unit)
        if k.non_null:
            raise _Null(err)
        self.units.add(unit)
        self.errors.append(err)

    def obj(self, sel: Selection, o: Any, path: list[Any], unit: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k in sel.keys:
            kind = k.kind
            if kind is Kind.VALUE:
                v = getattr(o, k.attr)
                if v is None:
                    if k.non_null:
                        raise Fallback("null for a non-null field")
                    out[k.key] = None
                elif type(v) is k.plain:
                    out[k.key] = v
                else:
                    assert k.coerce is not None
                    out[k.key] = k.coerce(v)
            elif kind is Kind.TYPENAME:
                out[k.key] = sel.type_name
            elif kind is Kind.PREDICATE:
                v = o.answers[k.name]
                if isinstance(v, Exception):
                    self.nullable(v, k, path, unit)
                    out[k.key] = None
                else:
                    out[k.key] = bool(v)
            elif kind is Kind.RECORD:
                out[k.key] = self.child(k, getattr(o, k.attr), path, unit)
            elif kind is Kind.ITEMS:
                items = getattr(o, k.attr)
                if items is None:
                    out[k.key] = None
                else:
                    assert k.sub is not None
                    out[k.key] = [self.obj(k.sub, item, [*path, k.key, i], unit) for i, item in enumerate(items)]
            elif kind is Kind.HOUSEHOLD:
                out[k.key] = self.child(k, self.loaded.values[(id(o), k.key)], path, ("household", id(o), k.key))
            elif kind is Kind.SIZE:
                v = self.loaded.values[(id(o), k.key)]
                if isinstance(v, Exception):
                    self.nullable(v, k, path, ("size", id(o), k.key))
                    out[k.key] = None
                else:
                    assert k.coerce is not None
                    out[k.key] = k.coerce(v)
            elif kind is Kind.MEMBERS:
                unit_here = ("members", id(o), k.key)
                v = self.loaded.values[(id(o), k.key)]
                if isinstance(v, Exception):
                    self.nullable(v, k, path, unit_here)
                    out[k.key] = None
                else:
                    assert k.sub is not None
                    here = [*path, k.key]
                    out[k.key] = [self.obj(k.sub, p, [*here, i], unit_here) for i, p in enumerate(v)]
            else:  # pragma: no cover
                raise Fallback(f"kind {kind}")
        return out

    def child(self, k: Key, v: Any, path: list[Any], unit: Any) -> Any:
        """An object-valued field (nullable in the supported part): its object, or null with its error."""
        if isinstance(v, Exception):
            self.nullable(v, k, path, unit)
            return None
        if v is None:
            return None
        assert k.sub is not None
        try:
            return self.obj(k.sub, v, [*path, k.key], unit)
        except _Null as null:
            self.nullable(null, k, path, unit)
            return None

    def root(self, tree: Selection) -> dict[str, Any] | None:
        data: dict[str, Any] = {}
        for k in tree.keys:
            if k.kind is Kind.TYPENAME:
                data[k.key] = "Query"
                continue
            v = self.loaded.values[(0, k.key)]
            unit = ("root", k.key)
            try:
                if k.kind is Kind.PEOPLE:
                    if isinstance(v, Exception):
                        self.nullable(v, k, [], unit)
                        data[k.key] = None
                        continue
                    assert k.sub is not None
                    data[k.key] = [
                        None if p is None else self.obj(k.sub, p, [k.key, i], unit) for i, p in enumerate(v)
                    ]
                else:
                    data[k.key] = self.child(k, v, [], unit)
            except _Null:  # a non-null root field failed: no data at all, and graphql-core cancels the other
                raise Fallback("a non-null root field failed") from None  # root fields' loads (timing decides)
        return data


async def run_tree(
    tree: Selection,
    schema: GraphQLSchema,
    operation: OperationDefinitionNode,
    values: VariableValues,
    context: HubContext,
) -> ExecutionResult:
    """The answer graphql-core would give, or ``Fallback`` (nothing returned; the context's loads are kept)."""
    loaded = _Loaded()
    await load(tree, schema, values, context, loaded)
    assembler = _Assembler(loaded)
    data = assembler.root(tree)
    if len(assembler.units) > 1:
        raise Fallback("errors from more than one awaited unit")
    return ExecutionResult(data, assembler.errors or None)
