"""``SubgraphSource``: a department served by its own GraphQL service (the Apollo Federation subgraph protocol).

What the hub expects of the service (entity keys, names, column types, the expected SDL, the predicate
grammar) is the contract in ``hub.sources.contract``. At start-up the hub fetches ``_service { sdl }`` and
compares it with the contract (graphql-core's ``find_breaking_changes``): a mismatch refuses to start with a
message naming the department, type and field.

Every call is one ``_entities(representations:)`` POST per department per resolver level: the per-request
loaders batch keys, and calls for the same department made in the same event-loop turn (two predicates and a
row fetch, say) are coalesced into the same POST. Each POST carries a short-lived hop token signed with
the hub's token key naming the original client, department, officer, purpose, case and request id.

What crosses the wire differs from SQL sources: a SQL department evaluates predicates and row-scope filters
in its own query, so only matching keys come back. A subgraph department answers predicates itself
(``<table>Matches``) or, with ``HUB_PREDICATES_IN_HUB``, sends the rows and the hub evaluates the condition
(``hub.sources.values``). Only the columns the condition reads are requested, and nothing is kept after the
request.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import time
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import ColumnElement, Table

from hub.auth.hop import HopIdentity, HopSigner, current_hop
from hub.errors import ConfigError, UpstreamUnavailable
from hub.sources import Source
from hub.sources.contract import (
    ENTITY_KEYS,
    FEED_FIELD,
    FEED_QUERY,
    SDL_QUERY,
    camel,
    condition_json,
    entity_tables,
    feed_rows,
    matches_field,
    row_type_name,
    schema_problems,
)
from hub.sources.values import columns_read, row_type, select_matching, value_from_json
from hub.tracing import traced_post
from hub.upstream.bounded import DEFAULT_MAX_BYTES, AnswerTooLarge
from hub.upstream.breaker import CircuitBreaker
from hub.upstream.guard import HTTP_FAILURES, guarded
from hub.upstream.http1 import JsonPoster

log = logging.getLogger("hub.sources")


def check_subgraphs(sources: Iterable[Source]) -> None:
    """Start-up check of every subgraph department; ``ConfigError`` naming department, type and field."""
    every = list(sources)
    for source in every:
        if not isinstance(source, SubgraphSource):
            continue
        try:
            source.check_schema()
        except ConfigError:
            for s in every:
                s.close()
            raise


# -- the source -------------------------------------------------------------------------------------------------


@dataclass
class _Want:
    table: Table
    key: str
    where: str | None = None  # a predicate: its condition as JSON text, answered yes/no by the department
    keys: set[str] = field(default_factory=set)
    columns: set[str] = field(default_factory=set)


# (table, key column) -> key -> records; for a predicate (table?where, key column) -> key -> bool
_Found = dict[tuple[str, str], dict[str, Any]]


@dataclass(frozen=True)
class _Seen:
    """What one earlier batch of the same request fetched for one (table, key): later loaders of the request
    (a record's predicates, resolved a level below its rows) reuse it instead of posting again."""

    keys: frozenset[str]
    columns: frozenset[str]
    found: dict[str, Any]


@dataclass(eq=False)
class _Batch:
    hop: HopIdentity | None
    done: asyncio.Future[_Found]
    wants: dict[tuple[str, str], _Want] = field(default_factory=dict)


class SubgraphSource:
    """One department reached through its GraphQL subgraph.

    It is a ``hub.sources.Source`` like ``SqlSource`` (``statements`` counts HTTP requests); no SQL engine
    is opened. ``predicates_in_hub`` selects the fallback that asks for the compared columns and evaluates
    predicates in the hub (``HUB_PREDICATES_IN_HUB``); by default the department answers them.
    """

    BATCH_TURNS = 2  # event-loop turns a batch stays open for other loaders of the same request to join

    def __init__(
        self,
        code: str,
        url: str,
        *,
        signer: HopSigner,
        timeout: float = 5.0,
        breaker: CircuitBreaker | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
        predicates_in_hub: bool = False,
    ) -> None:
        entity_tables(code)  # refuses departments without tables
        self.code = code
        self.url = url
        self.signer = signer
        self.timeout = timeout
        self.breaker = breaker or CircuitBreaker()
        self.max_bytes = max_bytes
        self.predicates_in_hub = predicates_in_hub
        self.statements = 0
        self.schema_checked = False
        self._pending: dict[HopIdentity | None, _Batch] = {}
        # per request (its hop identity), what was already fetched; dropped with the request
        self._seen: weakref.WeakKeyDictionary[HopIdentity, dict[tuple[str, str], list[_Seen]]] = (
            weakref.WeakKeyDictionary()
        )
        self._tasks: set[asyncio.Task[None]] = set()
        self._ssl = ssl.create_default_context() if url.startswith("https://") else None
        # one connection pool per event loop (asyncio streams belong to their loop); a lean HTTP/1.1 client, not
        # httpx: its pool and models were half the gateway's CPU per federated request (docs/federation.md)
        self._posters: dict[asyncio.AbstractEventLoop, JsonPoster] = {}
        # an OpenTelemetry tracer when the hub traces (hub/tracing.py): a client span per POST, since httpx's
        # instrumentation does not see this client
        self.tracer: Any = None

    def _client(self) -> JsonPoster:
        loop = asyncio.get_running_loop()
        poster = self._posters.get(loop)
        if poster is None:
            for old in [lp for lp in self._posters if lp.is_closed()]:
                del self._posters[old]
            poster = self._posters[loop] = JsonPoster(self.url, self._ssl)
        return poster

    def close(self) -> None:
        self._pending.clear()
        for poster in self._posters.values():
            poster.close()
        self._posters.clear()

    # -- schema check ------------------------------------------------------------------------------------------
    def _check(self, payload: Any) -> None:
        sdl = _data(payload, self.code)["_service"]["sdl"]
        if not isinstance(sdl, str):
            raise ValueError("_service.sdl is not a string")
        problems = schema_problems(self.code, sdl, predicates=not self.predicates_in_hub)
        if problems:
            raise ConfigError(
                f"department {self.code}: subgraph schema at {self.url} does not match what the hub expects: "
                + "; ".join(problems),
                details={"department": self.code, "problems": problems},
            )
        self.schema_checked = True

    def check_schema(self) -> bool:
        """Fetch ``_service { sdl }`` now (blocking). ``ConfigError`` on mismatch; ``False`` if unreachable."""
        body: dict[str, Any] = {"query": SDL_QUERY, "variables": {}}
        token = self.signer.token(self.code, None, body)
        deadline = time.monotonic() + self.timeout
        try:
            self.statements += 1
            with httpx.stream(
                "POST",
                self.url,
                json=body,
                headers={"authorization": f"Bearer {token}"},
                timeout=self.timeout,
                verify=self._ssl or True,
            ) as r:
                r.raise_for_status()
                chunks, size = [], 0
                for chunk in r.iter_bytes():
                    size += len(chunk)
                    if size > self.max_bytes or time.monotonic() > deadline:
                        raise AnswerTooLarge("the SDL answer is too large or too slow")
                    chunks.append(chunk)
            self._check(json.loads(b"".join(chunks)))
        except HTTP_FAILURES as exc:
            log.warning(
                "department %s: subgraph %s unreachable at start-up (%s); its schema is checked before first use",
                self.code,
                self.url,
                exc.__class__.__name__,
            )
            return False
        return True

    # -- the HubContext interface --------------------------------------------------------------------------------
    async def rows_by(
        self,
        table: Table,
        key: str,
        keys: Sequence[str],
        where: ColumnElement[bool] | None = None,
        columns: Sequence[str] | None = None,
    ) -> list[list[Any]]:
        """Rows of ``table`` whose ``key`` is in ``keys``, grouped in the order of ``keys`` (one POST per batch).
        Only ``columns`` (all by default), ``key`` and the columns ``where`` reads are requested."""
        wanted = list(dict.fromkeys(keys))
        asked = {c.name for c in table.columns} if columns is None else {key, *columns}
        if where is not None:
            asked |= columns_read(where, table)
        found = await self._fetch(table, key, wanted, asked)
        row = row_type(table)
        if where is None:
            return [[row(**{c.name: r.get(c.name) for c in table.columns}) for r in found.get(k, [])] for k in keys]
        records = [r for k in wanted for r in found.get(k, [])]
        keep = await select_matching(table, records, where)
        kept: dict[str, list[Any]] = {}
        for i, r in enumerate(records):
            if i in keep:
                kept.setdefault(r[key], []).append(row(**{c.name: r.get(c.name) for c in table.columns}))
        return [kept.get(k, []) for k in keys]

    async def predicate(
        self, table: Table, key: str, keys: Sequence[str], condition: ColumnElement[bool]
    ) -> list[bool]:
        """Whether any row of each key satisfies ``condition``. The department answers it (``<table>Matches``,
        the condition and its threshold sent as JSON) and only yes/no comes back; with ``predicates_in_hub``,
        the columns it reads are requested and the hub evaluates it (the request's hop records that)."""
        wanted = list(dict.fromkeys(keys))
        if not self.predicates_in_hub:
            try:
                where = json.dumps(condition_json(table, condition), sort_keys=True, separators=(",", ":"))
            except ValueError as exc:
                log.error("department %s: a predicate cannot be sent to the subgraph: %s", self.code, exc)
                raise UpstreamUnavailable(f"department {self.code} cannot answer this predicate") from None
            answers = await self._fetch(table, key, wanted, set(), where)
            return [answers.get(k) is True for k in keys]
        hop = current_hop()
        if hop is not None:
            hop.predicates_in_hub.add(self.code)
        found = await self._fetch(table, key, wanted, {key} | columns_read(condition, table))
        records: list[dict[str, Any]] = []
        owners: list[str] = []
        for k in wanted:
            for r in found.get(k, []):
                records.append(r)
                owners.append(k)
        hits = await select_matching(table, records, condition)
        hit_keys = {owners[i] for i in hits}
        return [k in hit_keys for k in keys]

    async def aggregate(self, stmt: Any) -> list[tuple[Any, ...]]:
        raise UpstreamUnavailable(
            f"department {self.code} is served by a GraphQL subgraph; aggregates are computed only by SQL sources"
        )

    async def change_events(self, after: int, first: int, hop: HopIdentity | None = None) -> list[tuple[Any, ...]]:
        """The department's change events after sequence number ``after`` (at most ``first``), as outbox rows:
        one POST of ``changeEvents`` through the guarded upstream call, with a hop token naming ``hop`` (the
        monitor). ``UpstreamUnavailable`` when the department is down or answers outside the contract."""
        async with guarded(self.breaker, self.timeout, f"department {self.code}", failures=HTTP_FAILURES):
            payload = await self._post(self._client(), FEED_QUERY, {"after": after, "first": first}, hop)
            return list(feed_rows(_data(payload, self.code).get(FEED_FIELD), after, first))

    # -- batching ------------------------------------------------------------------------------------------------
    async def _fetch(
        self, table: Table, key: str, keys: Sequence[str], columns: set[str], where: str | None = None
    ) -> dict[str, Any]:
        if key not in ENTITY_KEYS:
            raise UpstreamUnavailable(f"department {self.code}: no subgraph entity is keyed by {key}")
        if where is None:
            columns = columns | {key}  # every row is checked against the entity it answers
        slot = (table.name if where is None else f"{table.name}?{where}", key)
        loop = asyncio.get_running_loop()
        hop = current_hop()
        if hop is not None:
            for seen in self._seen.get(hop, {}).get(slot, ()):
                if seen.keys.issuperset(keys) and seen.columns.issuperset(columns):
                    return seen.found
        batch = self._pending.get(hop)
        if batch is None:
            batch = _Batch(hop, loop.create_future())
            self._pending[hop] = batch
            self._launch_later(batch, self.BATCH_TURNS)
        want = batch.wants.setdefault(slot, _Want(table, key, where))
        want.keys.update(keys)
        want.columns.update(columns)
        found = await asyncio.shield(batch.done)
        return found.get(slot, {})

    def _launch_later(self, batch: _Batch, turns: int) -> None:
        loop = asyncio.get_running_loop()
        if turns > 0:
            loop.call_soon(self._launch_later, batch, turns - 1)
            return
        if self._pending.get(batch.hop) is batch:
            del self._pending[batch.hop]
        task = loop.create_task(self._send(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, batch: _Batch) -> None:
        try:
            found = await self._run(batch)
        except UpstreamUnavailable as exc:
            batch.done.set_exception(exc)
        except BaseException as exc:  # never leave the waiters hanging
            batch.done.set_exception(UpstreamUnavailable(f"department {self.code} is unavailable"))
            if not isinstance(exc, Exception):
                raise
            log.exception("department %s: unexpected failure", self.code)
        else:
            if batch.hop is not None:
                memo = self._seen.setdefault(batch.hop, {})
                for slot, want in batch.wants.items():
                    memo.setdefault(slot, []).append(
                        _Seen(frozenset(want.keys), frozenset(want.columns), found.get(slot, {}))
                    )
            batch.done.set_result(found)

    async def _run(self, batch: _Batch) -> _Found:
        async with guarded(self.breaker, self.timeout, f"department {self.code}", failures=HTTP_FAILURES):
            return await self._entities(batch)

    async def _post(self, client: JsonPoster, query: str, variables: dict[str, Any], hop: Any) -> Any:
        body = {"query": query, "variables": variables}
        token = self.signer.token(self.code, hop, body)  # bound to this body, used once
        self.statements += 1
        headers = {"authorization": f"Bearer {token}"}
        if self.tracer is None:
            status, payload = await client.post(body, headers, self.max_bytes)
        else:
            status, payload = await traced_post(self.tracer, self.code, client, body, headers, self.max_bytes)
        if status >= 400 and not (isinstance(payload, dict) and payload.get("errors")):
            raise ValueError(f"HTTP {status}")
        return payload

    async def _entities(self, batch: _Batch) -> _Found:
        client = self._client()
        if not self.schema_checked:  # unreachable at start-up: check before the first use
            try:
                self._check(await self._post(client, SDL_QUERY, {}, None))
            except ConfigError as exc:
                log.error("%s", exc.message)
                raise UpstreamUnavailable(f"department {self.code}: subgraph schema does not match") from None
        by_entity: dict[str, list[_Want]] = {}
        for want in batch.wants.values():
            by_entity.setdefault(ENTITY_KEYS[want.key][0], []).append(want)
        representations: list[dict[str, str]] = []
        index: list[tuple[str, str]] = []
        selections: list[str] = []
        variables: dict[str, Any] = {}
        aliases: dict[int, str] = {}  # id(want) -> alias of its predicate field
        for entity, wants in by_entity.items():
            key_field = ENTITY_KEYS[wants[0].key][1]
            values = sorted({k for w in wants for k in w.keys})
            representations += [{"__typename": entity, key_field: v} for v in values]
            index += [(entity, v) for v in values]
            parts = []
            for w in wants:
                if w.where is None:
                    parts.append(f"{camel(w.table.name)} {{ {' '.join(camel(c) for c in sorted(w.columns))} }}")
                else:
                    n = len(aliases)
                    aliases[id(w)] = f"p{n}"
                    variables[f"w{n}"] = w.where
                    parts.append(f"p{n}: {matches_field(w.table)}(where: $w{n})")
            selections.append(f"... on {entity} {{ {' '.join(parts)} }}")
        params = "".join(f", $w{n}: String!" for n in range(len(aliases)))
        inner = " ".join(selections)
        query = f"query HubEntities($r: [_Any!]!{params}) {{ _entities(representations: $r) {{ {inner} }} }}"
        payload = await self._post(client, query, {"r": representations, **variables}, batch.hop)
        entities = _data(payload, self.code)["_entities"]
        if not isinstance(entities, list) or len(entities) != len(representations):
            raise ValueError("_entities did not answer one item per representation")
        # Every answer is checked against the representation it answers and the contract's types: any
        # violation fails the whole call (the department's fields come back UPSTREAM_UNAVAILABLE).
        found: _Found = {}
        for (entity, value), item in zip(index, entities, strict=True):
            if item is not None and not isinstance(item, dict):
                raise ValueError("an _entities item is not an object")
            for want in by_entity[entity]:
                if value not in want.keys:
                    continue
                slot = (want.table.name if want.where is None else f"{want.table.name}?{want.where}", want.key)
                out = found.setdefault(slot, {})
                if want.where is not None:
                    answer = False if item is None else item.get(aliases[id(want)])
                    if not isinstance(answer, bool):
                        raise ValueError(f"{matches_field(want.table)} is not a boolean")
                    out[value] = answer
                    continue
                rows = out.setdefault(value, [])
                if item is None:
                    continue
                records = item.get(camel(want.table.name))
                if not isinstance(records, list):
                    raise ValueError(f"{entity}.{camel(want.table.name)} is not a list")
                cols = [c for c in want.table.columns if c.name in want.columns]
                for rec in records:
                    if not isinstance(rec, dict) or any(camel(c.name) not in rec for c in cols):
                        raise ValueError(f"a {row_type_name(want.table)} lacks a column asked for")
                    row = {c.name: value_from_json(c, rec[camel(c.name)]) for c in cols}
                    if row[want.key] != value:
                        raise ValueError(f"a {row_type_name(want.table)} of another {entity} than the one asked")
                    rows.append(row)
        return found


def _data(payload: Any, code: str) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise ValueError("the subgraph's answer is not a JSON object")
    errors = payload.get("errors")
    if errors:
        first = errors[0] if isinstance(errors, list) and errors else {}
        message = first.get("message", "") if isinstance(first, dict) else ""
        ext = first.get("extensions", {}) if isinstance(first, dict) else {}
        code_ = ext.get("code", "") if isinstance(ext, dict) else ""
        log.warning("department %s (subgraph) answered with %d error(s): %s %s", code, len(errors), code_, message)
        raise UpstreamUnavailable(f"department {code} refused or failed the request")
    data = payload.get("data")
    if not isinstance(data, dict):
        raise ValueError("the subgraph's answer has no data")
    return data
