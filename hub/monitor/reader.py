"""The monitor: reads each department's outbox after its cursor, evaluates the rules the events trigger, records
alerts, then moves the cursor.

Rule conditions are asked as ordinary GraphQL requests of this hub, through ``hub.gateway.handle`` itself, by a
registered client (``HUB_MONITOR_CLIENT``, department civil_affairs, purpose MON): the same authentication,
plan, grants, row scope and audit entries as any consumer. A batch of events makes one request per triggered rule
(``people(idNumbers:)``), with the event range as case reference. The cursor moves only after the batch's alerts
and outcomes are committed, in the same transaction; a department that is down, or a rule whose answer came back
incomplete, leaves the cursor where it was and is tried again later. A malformed event is recorded as rejected
with a reason and never stops the reader. See docs/monitoring.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

import anyio
from sqlalchemy import select
from starlette.requests import Request

from hub.auth.hop import HopIdentity
from hub.auth.tokens import issue_token
from hub.clock import china_date
from hub.departments import OUTBOXES, assistance
from hub.errors import HubError, RequestError, UpstreamUnavailable
from hub.gateway import Exchange, audit_body, handle
from hub.monitor.alerts import AlertStore, Claim, NewAlert, Verdict
from hub.monitor.events import Event, check
from hub.monitor.notify import Listener, is_postgres
from hub.monitor.rules import Match, Rule, evaluate
from hub.monitor.workdays import add_working_days
from hub.sources.contract import FEED_MAX
from hub.sources.sql import SqlSource
from hub.sources.subgraph import SubgraphSource

if TYPE_CHECKING:
    from hub.state import HubState

log = logging.getLogger("hub.monitor")
START_RETRY = 5.0  # seconds between attempts to register the monitoring client at start


class Retry(Exception):
    """A department (the outbox, or one asked by a rule) did not answer: the batch is tried again later."""


@dataclass
class Stats:
    events: int = 0
    rejected: int = 0
    alerts: int = 0
    again: int = 0
    requests: int = 0
    residents: int = 0
    seconds: float = 0.0
    statements: dict[str, int] = field(default_factory=dict)


class Monitor:
    def __init__(self, state: HubState) -> None:
        self.state = state
        s = state.settings
        self.rules = state.rules
        self.store: AlertStore = state.alerts
        self.client_id = s.monitor_client
        self.area = s.monitor_area
        self.batch = s.monitor_batch
        self.interval = s.monitor_interval
        self.locks = {d: asyncio.Lock() for d in OUTBOXES}
        self.seen = dict.fromkeys(OUTBOXES, 0)  # each outbox's cursor as last read (never ahead of the truth)
        self.wake = asyncio.Event()
        self.hints = 0  # NOTIFYs received (hub/monitor/notify.py)
        self.listeners_pg: dict[str, Listener] = {}
        self.listeners: list[Callable[[NewAlert], None]] = []  # told of each new alert (subscriptions, bench)
        self._token, self._token_until = "", 0.0
        self._client_ready = False

    # ---- asking the hub, as a client ---------------------------------------------------------------------
    def ensure_client(self) -> None:
        """Register the monitoring client once (civil_affairs, purpose MON). The registry stays the authority:
        an operator who disables it or withdraws MON stops the monitor's requests like any client's."""
        if self._client_ready:
            return
        if self.state.clients.get(self.client_id) is None:
            try:
                self.state.clients.add(self.client_id, "civil_affairs", self.area, ["MON"], [])
            except RequestError:  # another hub process on this database registered it first
                if self.state.clients.get(self.client_id) is None:
                    raise
        self._client_ready = True

    def _bearer(self) -> str:
        now = time.monotonic()
        if now >= self._token_until:
            s = self.state.settings
            client = self.state.clients.get(self.client_id)
            area = client.area if client else self.area
            self._token, _ = issue_token(
                self.state.keys,
                issuer=s.issuer,
                audience=s.audience,
                ttl=s.token_ttl,
                client_id=self.client_id,
                department="civil_affairs",
                area=area,
                purposes=["MON"],
                roles=[],
            )
            self._token_until = now + s.token_ttl / 2
        return self._token

    async def ask(self, query: str, variables: dict[str, Any], officer: str, case_ref: str) -> dict[str, Any]:
        """One GraphQL request through the gateway (``hub.gateway.handle``), exactly as a client's."""
        if not self._client_ready:
            await anyio.to_thread.run_sync(self.ensure_client)
        body = json.dumps({"query": query, "variables": variables}).encode()
        headers = {
            "authorization": f"Bearer {self._bearer()}",
            "content-type": "application/json",
            "content-length": str(len(body)),
            "x-hub-purpose": "MON",
            "x-hub-officer": officer,
            "x-hub-case": case_ref,
        }
        scope = {
            "type": "http",
            "method": "POST",
            "path": "/graphql",
            "raw_path": b"/graphql",
            "root_path": "",
            "scheme": "http",
            "http_version": "1.1",
            "query_string": b"",
            "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
            "client": ("127.0.0.1", 0),
            "server": ("hub.monitor", 0),
        }
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        response = await handle(self.state, Request(scope, receive))
        answer: dict[str, Any] = json.loads(bytes(response.body))
        return answer

    async def answers(self, rule: Rule, ids: Sequence[str], case_ref: str, stats: Stats) -> dict[str, Any]:
        """Each resident's answer to the rule's query (None: not found in the monitor's jurisdiction)."""
        out: dict[str, Any] = {}
        unique = list(dict.fromkeys(ids))
        step = self.state.settings.max_batch
        for i in range(0, len(unique), step):
            chunk = unique[i : i + step]
            answer = await self.ask(rule.query, {"ids": chunk}, f"monitor/{rule.id}", case_ref)
            stats.requests += 1
            codes = {str((e.get("extensions") or {}).get("code")) for e in answer.get("errors") or []}
            if "UPSTREAM_UNAVAILABLE" in codes:
                raise Retry(f"rule {rule.id}: a department did not answer")
            if answer.get("data") is None:
                raise HubError(f"rule {rule.id}: the hub refused the monitor's request ({', '.join(sorted(codes))})")
            for id_number, person in zip(chunk, answer["data"]["people"], strict=True):
                out[id_number] = person
        return out

    # ---- alerts -------------------------------------------------------------------------------------------
    async def _audit_created(self, alert: NewAlert, case_ref: str) -> None:
        """The alert's own audit entry (case reference: the alert id), naming the resident by pseudonym only."""
        ex = Exchange(request_id=uuid.uuid4().hex, started=time.perf_counter())
        ex.decision, ex.reasons = "allow", [f"rule {alert.rule_id}"]
        body = audit_body(ex)
        body.update(
            route="monitor",
            client_id=self.client_id,
            department="civil_affairs",
            area=self.area,
            officer="monitor",
            purpose="MON",
            case_ref=alert.id,
            operation_name=f"alert.created {alert.rule_id}",
            source=alert.source,
            evaluation=case_ref,
            subject_count=1,
        )
        await self.state.audit.append(body, [self.state.audit.pseudonym(alert.id_number)])

    def _match(self, rule: Rule, id_number: str, kept: Mapping[str, Any] | None) -> Match | None:
        if kept is None:
            return None
        return Match(rule=rule, id_number=id_number, **kept)

    async def _alerts(
        self, found: Sequence[tuple[str, str, date, Match]], today: date, planned: Mapping[int, str] | None = None
    ) -> tuple[list[NewAlert], list[tuple[str, str]]]:
        """New alerts for matches without an open alert of the same rule and resident; notes for the others."""
        keys = [f"{m.rule.id}:{m.id_number}" for _, _, _, m in found]
        open_ = await anyio.to_thread.run_sync(self.store.open_alerts, keys)
        created: list[NewAlert] = []
        again: list[tuple[str, str]] = []
        for i, ((source, kind, occurred, m), key) in enumerate(zip(found, keys, strict=True)):
            if key in open_:
                again.append((open_[key], f"{source} ({kind}) matched {m.rule.id} again"))
                continue
            due, basis = add_working_days(today, m.rule.due_working_days)
            alert = NewAlert(
                rule_id=m.rule.id,
                id_number=m.id_number,
                area_code=m.area_code,
                area_name=m.area_name,
                source=source,
                event_kind=kind,
                occurred_on=occurred,
                matched=m.matched,
                programmes=m.programmes,
                estimated_monthly=m.estimated_monthly,
                due_on=due,
                due_basis=basis,
                id=(planned or {}).get(i) or self.store.new_id(),  # the same id as an earlier attempt's
            )
            open_[key] = alert.id
            created.append(alert)
        return created, again

    def _announce(self, created: Sequence[NewAlert]) -> None:
        for alert in created:
            for listener in list(self.listeners):
                with contextlib.suppress(Exception):
                    listener(alert)

    # ---- events -------------------------------------------------------------------------------------------
    async def poll(self, department: str, stats: Stats | None = None) -> int:
        """Handle the next batch of ``department``'s events; return how many were handled (0: none, or later)."""
        stats = stats or Stats()
        source = self.state.sources.get(department)
        if not isinstance(source, SqlSource | SubgraphSource) or department not in OUTBOXES:
            return 0
        async with self.locks[department]:
            if isinstance(source, SqlSource):  # nothing after the last position seen (positions only grow): done
                try:
                    if not await self._read(source, department, self.seen[department], 1):
                        return 0
                except UpstreamUnavailable as exc:
                    log.info("events of %s delayed: %s", department, exc)
                    return 0
            claim: Claim | None = await anyio.to_thread.run_sync(self.store.claim, department)
            if claim is None:
                return 0  # another hub process is handling this department's events right now
            try:
                handled = await self._handle(claim, source, stats)
                claim = None  # finished (committed and closed)
                return handled
            except (Retry, UpstreamUnavailable) as exc:
                log.info("events of %s delayed: %s", department, exc)
                return 0
            finally:
                if claim is not None:
                    await anyio.to_thread.run_sync(self.store.release, claim)

    async def _read(
        self, source: SqlSource | SubgraphSource, dept: str, after: int, limit: int = 0
    ) -> list[tuple[Any, ...]]:
        """The next batch of the department's outbox after ``after``: its ``change_events`` table (SQL), or its
        ``changeEvents`` field (a subgraph, asked with a hop token naming the monitor), as the same rows."""
        if isinstance(source, SubgraphSource):
            hop = HopIdentity(
                request_id=uuid.uuid4().hex,
                client_id=self.client_id,
                department="civil_affairs",
                officer="monitor/feed",
                area=self.area,
                purpose="MON",
                case=f"FEED-{dept}-{after}",
            )
            return await source.change_events(after, min(self.batch, FEED_MAX), hop)
        table = OUTBOXES[dept]
        columns = (table.c.seq, table.c.id_number, table.c.kind, table.c.occurred_on, table.c.recorded_at)
        stmt = select(*columns).where(table.c.seq > after).order_by(table.c.seq).limit(limit or self.batch)
        return await source.aggregate(stmt)

    async def _handle(self, claim: Claim, source: SqlSource | SubgraphSource, stats: Stats) -> int:
        dept = claim.department
        self.seen[dept] = max(self.seen[dept], claim.position)
        rows = await self._read(source, dept, claim.position)
        if not rows:
            await anyio.to_thread.run_sync(self.store.release, claim)
            return 0
        today = china_date(self.state.clock())
        outcomes: list[dict[str, Any]] = []
        events: list[Event] = []
        for row in rows:
            checked = check(dept, row, today)
            if isinstance(checked, str):
                kind = str(row[2])[:40]
                outcomes.append(
                    dict(department=dept, seq=row[0], kind=kind, outcome="rejected", rules="[]", reason=checked)
                )
                stats.rejected += 1
            else:
                events.append(checked)
        case_ref = f"EVT-{dept}-{rows[0][0]}-{rows[-1][0]}"
        # verdicts kept from an earlier attempt at this batch (a crash before the cursor moved): not asked again
        before = await anyio.to_thread.run_sync(self.store.verdicts, dept, [e.seq for e in events])
        wanted: dict[str, list[str]] = defaultdict(list)
        for e in events:
            for rule in self.rules.triggered_by(e.kind):
                if (e.seq, rule.id) not in before:
                    wanted[rule.id].append(e.id_number)
        answers = {rid: await self.answers(self.rules.rules[rid], ids, case_ref, stats) for rid, ids in wanted.items()}
        found: list[tuple[str, str, date, Match]] = []
        fresh: dict[tuple[int, str], Match | None] = {}
        planned: dict[int, str] = {}  # index in found -> the alert id an earlier attempt gave it
        for e in events:
            rules = self.rules.triggered_by(e.kind)
            hits, seen = [], False
            for rule in rules:
                kept = before.get((e.seq, rule.id))
                if kept is not None:
                    seen = seen or kept.found
                    m = self._match(rule, e.id_number, kept.match)
                    if m is not None and kept.alert_id:
                        planned[len(found)] = kept.alert_id
                else:
                    person = answers[rule.id].get(e.id_number)
                    seen = seen or person is not None
                    m = evaluate(rule, person, today)
                    fresh[(e.seq, rule.id)] = m
                if m is not None:
                    found.append((f"{dept}:{e.seq}", e.kind, e.occurred_on, m))
                    hits.append(rule.id)
            if not rules:
                reason = "no rule is triggered by this kind"
            elif not seen:
                reason = "resident not found in the monitor's jurisdiction"
            else:
                reason = "matched " + ", ".join(hits) if hits else "no rule's conditions held"
            outcomes.append(
                dict(
                    department=dept,
                    seq=e.seq,
                    kind=e.kind,
                    outcome="alerted" if hits else "no_match",
                    rules=json.dumps([r.id for r in rules]),
                    reason=reason,
                )
            )
        created, again = await self._alerts(found, today, planned)
        # the new verdicts, with the alert each created, are kept before any alert entry is written
        by_source = {(a.source, a.rule_id): a.id for a in created}
        found_ids = {(e.seq, r.id) for e in events for r in self.rules.triggered_by(e.kind)
                     if answers.get(r.id, {}).get(e.id_number) is not None}  # fmt: skip
        verdicts = {
            (seq, rid): Verdict(
                found=(seq, rid) in found_ids,
                match=None if m is None else _disclosed(m),
                alert_id=by_source.get((f"{dept}:{seq}", rid), ""),
                entry_written=False,
            )
            for (seq, rid), m in fresh.items()
        }
        await anyio.to_thread.run_sync(self.store.record_verdicts, dept, verdicts)
        written = {v.alert_id for v in before.values() if v.entry_written}
        # before the commit: no alert without its entry; together, so they share one group commit of the log
        await asyncio.gather(*(self._audit_created(a, case_ref) for a in created if a.id not in written))
        await anyio.to_thread.run_sync(self.store.entries_written, dept, [a.id for a in created if a.id not in written])
        await anyio.to_thread.run_sync(self.store.finish, claim, int(rows[-1][0]), outcomes, created, again)
        stats.events += len(rows)
        stats.alerts += len(created)
        stats.again += len(again)
        self._announce(created)
        return len(rows)

    async def drain(self, stats: Stats | None = None) -> Stats:
        """Handle every department's events until none are left (or the rest must wait)."""
        stats = stats or Stats()
        started = time.perf_counter()
        for dept in OUTBOXES:
            while await self.poll(dept, stats):
                pass
        stats.seconds += time.perf_counter() - started
        return stats

    def hint(self, department: str, seq: int) -> None:
        """A department says its outbox has a new event (PostgreSQL NOTIFY): wake the reader. Only a hint; the
        cursor decides what is read."""
        self.hints += 1
        self.wake.set()

    def start_listeners(self) -> list[asyncio.Task[None]]:
        """One LISTEN connection per department whose outbox is on PostgreSQL (hub/monitor/notify.py)."""
        tasks = []
        for dept in OUTBOXES:
            source = self.state.sources.get(dept)
            if isinstance(source, SqlSource) and is_postgres(source.url):
                listener = self.listeners_pg[dept] = Listener(dept, source.url, self.hint)
                tasks.append(asyncio.create_task(listener.run()))
        return tasks

    async def run(self) -> None:
        """The background reader (``HUB_MONITOR=1``): poll every outbox, sleep ``HUB_MONITOR_INTERVAL`` when idle
        (a PostgreSQL NOTIFY or ``wake`` cuts the sleep short)."""
        while True:  # the reader must not end because the hub database was not ready at start
            try:
                await anyio.to_thread.run_sync(self.ensure_client)
                break
            except Exception:
                log.exception("monitor: could not register its client; trying again in %.0f s", START_RETRY)
                await asyncio.sleep(START_RETRY)
        listening = self.start_listeners()
        try:
            await self._loop()
        finally:
            for t in listening:
                t.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await t

    async def _loop(self) -> None:
        while True:
            busy = False
            for dept in OUTBOXES:
                try:
                    busy = bool(await self.poll(dept)) or busy
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("monitor: handling events of %s failed; tried again later", dept)
            if not busy:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), self.interval)
                self.wake.clear()

    # ---- the monthly sweep --------------------------------------------------------------------------------
    async def sweep(
        self,
        *,
        batch: int | None = None,
        progress: Callable[[int], object] | None = None,
        only: Sequence[str] = (),
        total: Callable[[int], object] | None = None,
    ) -> Stats:
        """Re-evaluate every sweep rule over the whole low-income population (everyone civil affairs holds an
        assistance record for; only their ID numbers are read), in batches; alerts as for events."""
        stats = Stats()
        started = time.perf_counter()
        source = self.state.sources.get("civil_affairs")
        if not isinstance(source, SqlSource):
            raise HubError("the sweep needs civil affairs' database (the low-income population)")
        before = {code: getattr(s, "statements", 0) for code, s in self.state.sources.items()}
        rows = await source.aggregate(select(assistance.c.id_number).distinct().order_by(assistance.c.id_number))
        population = [r[0] for r in rows]
        stats.residents = len(population)
        if total is not None:
            total(len(population))  # the progress bar's total
        rules = [r for r in self.rules.rules.values() if r.sweep and (not only or r.id in only)]
        today = china_date(self.state.clock())
        step = batch or self.state.settings.max_batch
        for i in range(0, len(population), step):
            chunk = population[i : i + step]
            found: list[tuple[str, str, date, Match]] = []
            case_ref = f"SWEEP-{today:%Y%m%d}-{i // step + 1}"
            for rule in rules:
                answers = await self.answers(rule, chunk, case_ref, stats)
                for id_number in chunk:
                    m = evaluate(rule, answers.get(id_number), today)
                    if m is not None:
                        found.append(("sweep", "sweep", today, m))
            created, again = await self._alerts(found, today)
            await asyncio.gather(*(self._audit_created(a, case_ref) for a in created))
            await anyio.to_thread.run_sync(self.store.finish, None, 0, [], created, again)
            stats.alerts += len(created)
            stats.again += len(again)
            self._announce(created)
            if progress is not None:
                progress(len(chunk))
        stats.seconds = time.perf_counter() - started
        stats.statements = {
            code: getattr(s, "statements", 0) - before.get(code, 0) for code, s in self.state.sources.items()
        }
        stats.statements = {k: v for k, v in stats.statements.items() if v}
        return stats


def _disclosed(m: Match) -> dict[str, Any]:
    """What a verdict keeps of a match: what an alert shows anyway, without the ID number (the event has it)."""
    return dict(
        area_code=m.area_code,
        area_name=m.area_name,
        matched=m.matched,
        programmes=m.programmes,
        estimated_monthly=m.estimated_monthly,
    )


def positions(store: AlertStore) -> Mapping[str, int]:
    return {d: store.position(d) for d in OUTBOXES}
