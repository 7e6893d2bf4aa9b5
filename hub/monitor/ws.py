"""The alert subscription over WebSocket: the graphql-transport-ws protocol at ``/graphql``, nothing else.

The legacy ``graphql-ws`` protocol is refused (a socket that does not offer ``graphql-transport-ws`` is closed
before it is accepted; strawberry's legacy handler once skipped the connect check, GHSA-vpwc-v33q-mq89).

- **At connect** (``connection_init``, within ``HUB_BODY_TIMEOUT`` seconds): the payload carries what an HTTP
  request carries in headers (``Authorization: Bearer``, ``X-Hub-Purpose``, ``X-Hub-Officer``, optional
  ``X-Hub-Case``), checked by the gateway's own functions; the purpose must be MON and the client must hold the
  caseworker role. A refusal is audited like a refused request and closes the socket with 4403.
- **At subscribe**: the document is parsed, limited, validated and planned against the policies exactly as a
  request (``Subscription.alertCreated`` needs the caseworker role); one audit entry records the subscription
  (allowed or denied).
- **On every alert**: the caller's token is verified again and the client looked up in the registry (a disabled
  client, an expired token or a withdrawn MON ends the subscription with an error), and the alert must lie in the
  caller's area as the registry has it now. Each alert delivered gets its own audit entry (case reference: the
  alert id; the resident named as a pseudonym), appended before the message is sent (fail closed).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from graphql import ExecutionResult, GraphQLError, OperationType, subscribe
from starlette.requests import Request
from starlette.websockets import WebSocket, WebSocketDisconnect

from hub.auth.actor import Actor
from hub.clock import china_date
from hub.errors import AuditUnavailable, ForbiddenError, HubError, PolicyDenied, RequestError
from hub.gateway import (
    Exchange,
    audit_body,
    audit_digests,
    authenticate,
    coerce_variables,
    format_error,
    parse_document,
    parse_payload,
    pick_operation,
    recordable_name,
    request_context,
    validate_document,
)
from hub.limits import check_limits
from hub.monitor.alerts import Alert
from hub.operations import document_for_request
from hub.policy.model import Purpose
from hub.policy.plan import plan_operation
from hub.schema.alerts import ROLE
from hub.schema.context import HubContext

if TYPE_CHECKING:
    from hub.state import HubState

PROTOCOL = "graphql-transport-ws"
HEADERS = ("authorization", "x-hub-purpose", "x-hub-officer", "x-hub-case")
MAX_SUBSCRIPTIONS = 16  # per connection
MAX_MESSAGE = 65_536  # bytes of one client message


class AlertFollower:
    """What the ``alertCreated`` resolver reads: the feed of new alerts, with the caller re-checked before each."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.area = conn.actor.area
        self.current: Alert | None = None

    async def alerts(self, after: str | None) -> AsyncIterator[Alert]:
        async for alert in self.conn.state.alert_feed.follow(self.area, after):
            actor = await self.conn.recheck()  # raises: the subscription ends with the error
            self.area = actor.area
            self.current = alert
            yield alert


class Connection:
    def __init__(self, state: HubState, ws: WebSocket) -> None:
        self.state, self.ws = state, ws
        self.token = ""
        self.headers: list[tuple[bytes, bytes]] = []
        self.actor: Actor
        self.purpose: Purpose
        self.officer = self.case_ref = ""
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.sending = asyncio.Lock()

    # ---- the socket -----------------------------------------------------------------------------------------
    async def send(self, message: dict[str, Any]) -> None:
        async with self.sending:
            await self.ws.send_text(json.dumps(message, ensure_ascii=False))

    async def receive(self) -> dict[str, Any] | None:
        """The next client message (None: the client went away); closes with 4400 on a malformed one."""
        message = await self.ws.receive()
        if message["type"] == "websocket.disconnect":
            return None
        text = message.get("text")
        if text is None and message.get("bytes") is not None:
            text = message["bytes"].decode("utf-8", "replace")
        try:
            if text is None or len(text) > MAX_MESSAGE:
                raise ValueError
            parsed = json.loads(text)
            if not isinstance(parsed, dict) or not isinstance(parsed.get("type"), str):
                raise ValueError
        except (ValueError, RecursionError):
            await self.ws.close(4400, "Invalid message")
            return None
        return parsed

    async def run(self) -> None:
        offered = self.ws.scope.get("subprotocols") or []
        if PROTOCOL not in offered:  # the legacy graphql-ws protocol (or none) is not served
            await self.ws.close(4406, "Subprotocol not acceptable")
            return
        await self.ws.accept(subprotocol=PROTOCOL)
        try:
            try:
                async with asyncio.timeout(self.state.settings.body_timeout):
                    first = await self.receive()
            except TimeoutError:
                await self.ws.close(4408, "Connection initialisation timeout")
                return
            if first is None:
                return
            if first["type"] != "connection_init":
                await self.ws.close(4401, "Unauthorized")
                return
            if not await self.connect(first.get("payload")):
                return
            await self.send({"type": "connection_ack"})
            while (message := await self.receive()) is not None:
                if not await self.dispatch(message):
                    return
        except WebSocketDisconnect:
            pass
        finally:
            for task in self.tasks.values():
                task.cancel()
            for task in list(self.tasks.values()):
                with contextlib.suppress(BaseException):
                    await task

    async def dispatch(self, message: dict[str, Any]) -> bool:
        kind, op_id = message["type"], message.get("id")
        if kind == "ping":
            await self.send({"type": "pong"})
        elif kind == "pong":
            pass
        elif kind == "connection_init":
            await self.ws.close(4429, "Too many initialisation requests")
            return False
        elif kind == "subscribe":
            if not isinstance(op_id, str) or not 1 <= len(op_id) <= 100 or not isinstance(message.get("payload"), dict):
                await self.ws.close(4400, "Invalid message")
                return False
            if op_id in self.tasks:
                await self.ws.close(4409, f"Subscriber for {op_id[:60]} already exists")
                return False
            if len(self.tasks) >= MAX_SUBSCRIPTIONS:
                error = RequestError(f"at most {MAX_SUBSCRIPTIONS} subscriptions per connection", code="BAD_REQUEST")
                await self.send({"type": "error", "id": op_id, "payload": [_error(error, "")]})
                return True
            task = asyncio.create_task(self.subscription(op_id, message["payload"]))
            self.tasks[op_id] = task
            task.add_done_callback(lambda _t, i=op_id: self.tasks.pop(i, None))  # type: ignore[misc]
        elif kind == "complete":
            ended = self.tasks.pop(op_id, None) if isinstance(op_id, str) else None
            if ended is not None:
                ended.cancel()
        else:
            await self.ws.close(4400, "Invalid message")
            return False
        return True

    # ---- connect: token, purpose MON, officer -------------------------------------------------------------
    async def connect(self, payload: Any) -> bool:
        ex = Exchange(request_id=uuid.uuid4().hex, started=time.perf_counter())
        ex.operation_name = "connection_init"
        try:
            if payload is not None and not isinstance(payload, dict):
                raise RequestError("connection_init: the payload must be an object", code="BAD_REQUEST")
            given = {str(k).lower(): v for k, v in (payload or {}).items()}
            for name in HEADERS:
                value = given.get(name)
                if value is None:
                    continue
                if not isinstance(value, str):
                    raise RequestError(f"connection_init: {name} must be a string", code="BAD_HEADER")
                self.headers.append((name.encode("latin-1"), value.encode("utf-8")))
            request = Request({"type": "http", "headers": self.headers})
            ex.actor = self.actor = await authenticate(self.state, request)
            self.token = request.headers["authorization"].partition(" ")[2].strip()
            self.purpose = request_context(self.state, request, self.actor, ex)
            self.officer, self.case_ref = ex.officer, ex.case_ref
            if self.purpose.id != "MON":
                raise ForbiddenError("alert subscriptions are made under purpose MON", code="FORBIDDEN")
            if not self.actor.has_role(ROLE):
                raise ForbiddenError("only caseworkers may subscribe to alerts", code="ROLE_REQUIRED")
            return True
        except HubError as exc:
            ex.status, ex.reasons = exc.status, [exc.code]
            ex.decision = "deny" if not isinstance(exc, AuditUnavailable) else "error"
            with contextlib.suppress(AuditUnavailable):
                await self.audit(ex, {"data": None}, [])
            await self.ws.close(4403, f"Forbidden: {exc.code}")
            return False

    async def recheck(self) -> Actor:
        """Before each alert: the token still verifies, the client is registered and active, MON still held."""
        actor = await self.state.authenticate(self.token)
        if "MON" not in actor.purposes:
            raise ForbiddenError(
                f"client {actor.client_id} is no longer registered for MON", code="PURPOSE_NOT_REGISTERED"
            )
        if not actor.has_role(ROLE):
            raise ForbiddenError("only caseworkers may subscribe to alerts", code="ROLE_REQUIRED")
        return actor

    # ---- one subscription -----------------------------------------------------------------------------------
    async def audit(self, ex: Exchange, body: dict[str, Any], subjects: list[str], **extra: Any) -> dict[str, Any]:
        digests = audit_digests(self.state, ex, body)
        entry = audit_body(ex)
        entry.update(route="subscription", **extra)
        pseudonyms = sorted(self.state.audit.pseudonym(s) for s in subjects)
        seq, leaf = await self.state.audit.append(entry, pseudonyms)
        return {"receipt": {"seq": seq, "leafHash": leaf.hex(), "origin": self.state.audit.origin}, "digests": digests}

    def exchange(self, raw: bytes | None) -> Exchange:
        ex = Exchange(request_id=uuid.uuid4().hex, started=time.perf_counter(), raw=raw)
        ex.actor, ex.officer, ex.purpose, ex.case_ref = self.actor, self.officer, self.purpose.id, self.case_ref
        return ex

    async def subscription(self, op_id: str, payload: dict[str, Any]) -> None:
        state, settings = self.state, self.state.settings
        ex = self.exchange(json.dumps(payload, ensure_ascii=False).encode())
        try:
            sent, variables, op_name, ref = parse_payload(ex.raw or b"")
            # approved operations (hub/operations.py) apply here as on POST /graphql
            query = await document_for_request(state.operations, state.metrics, self.actor, self.purpose.id, sent, ref)
            document = parse_document(query, settings.max_tokens)
            operation = pick_operation(document, op_name)
            ex.operation_name = recordable_name(operation)
            if operation.operation is not OperationType.SUBSCRIPTION:
                raise RequestError("only subscriptions are served here; POST queries to /graphql", code="BAD_REQUEST")
            coerced, variables_problem = coerce_variables(state, operation, variables)
            check_limits(document, operation, state.limits, coerced)
            validate_document(state, document)
            if variables_problem is not None:
                raise RequestError(variables_problem, code="BAD_VARIABLES")
            today = china_date(state.clock())
            args = (state.catalog, state.policy, self.actor, "MON", today, coerced)
            ex.plan = plan_operation(state.graphql_schema, document, operation, *args)
            if not ex.plan.allowed:
                ex.reasons = [f"{d.coordinate}: {d.reason}" for d in ex.plan.denials]
                raise PolicyDenied(
                    "not granted: " + ", ".join(d.coordinate for d in ex.plan.denials),
                    details={"denied": [{"coordinate": d.coordinate, "reason": d.reason} for d in ex.plan.denials]},
                )
            ex.decision = "allow"
        except HubError as exc:
            ex.status, ex.decision = exc.status, "deny"
            ex.reasons = ex.reasons or [exc.code]
            with contextlib.suppress(AuditUnavailable):
                await self.audit(ex, {"data": None}, [])
            await self.send({"type": "error", "id": op_id, "payload": [_error(exc, ex.request_id)]})
            return
        try:
            await self.audit(ex, {"data": None}, [], subscription="started")
        except AuditUnavailable as exc:
            await self.send({"type": "error", "id": op_id, "payload": [_error(exc, ex.request_id)]})
            return
        follower = AlertFollower(self)
        context = HubContext(
            actor=self.actor,
            purpose=self.purpose,
            case_ref=self.case_ref,
            officer=self.officer,
            area_prefix=self.actor.area,
            sources=state.sources,
            today=today,
            catalog=state.catalog,
            alerts=state.alerts,
            alert_feed=follower,
        )
        started = ex.request_id
        try:
            stream = subscribe(
                state.graphql_schema, document, context_value=context, variable_values=variables, operation_name=op_name
            )
            if not isinstance(stream, ExecutionResult | AsyncIterator):
                stream = await stream
            if isinstance(stream, ExecutionResult):
                await self.send({"type": "error", "id": op_id, "payload": _errors(stream, started)})
                return
            async for result in stream:
                alert = follower.current
                delivery = self.exchange(None)
                delivery.operation_name, delivery.plan = ex.operation_name, ex.plan
                delivery.case_ref = alert.id if alert is not None else ""
                delivery.subjects = set(context.subjects)
                body: dict[str, Any] = {"data": result.data}
                if result.errors:
                    failed = _failure(result)
                    if failed is not None:  # the caller no longer passes the check: the subscription ends
                        raise failed
                    body["errors"] = [format_error(e, delivery.request_id) for e in result.errors]
                delivery.decision = "allow" if result.data is not None else "error"
                body["extensions"] = await self.audit(
                    delivery, body, sorted(delivery.subjects), subscription=started
                )  # before a byte of it is sent
                await self.send({"type": "next", "id": op_id, "payload": body})
        except HubError as exc:
            refused = self.exchange(None)
            refused.operation_name, refused.status, refused.reasons = ex.operation_name, exc.status, [exc.code]
            refused.decision = "deny" if isinstance(exc, ForbiddenError) or exc.status in (401, 403) else "error"
            with contextlib.suppress(AuditUnavailable):
                await self.audit(refused, {"data": None}, [], subscription=started)
            await self.send({"type": "error", "id": op_id, "payload": [_error(exc, refused.request_id)]})
            return
        await self.send({"type": "complete", "id": op_id})


def _error(exc: HubError, request_id: str) -> dict[str, Any]:
    ext: dict[str, Any] = {"code": exc.code, "requestId": request_id}
    ext.update(exc.details)
    return {"message": exc.message, "extensions": ext}


def _errors(result: ExecutionResult, request_id: str) -> list[dict[str, Any]]:
    return [format_error(e, request_id) for e in result.errors or []]


def _failure(result: ExecutionResult) -> HubError | None:
    """A HubError raised by the feed (the per-alert re-check), if the result carries one."""
    for err in result.errors or []:
        original = err.original_error
        if isinstance(original, HubError):
            return original
        if isinstance(original, GraphQLError) and isinstance(original.original_error, HubError):
            return original.original_error
    return None


async def alert_socket(websocket: WebSocket) -> None:
    """``/graphql`` over WebSocket (starlette ``WebSocketRoute``)."""
    state: HubState = websocket.app.state.hub
    await Connection(state, websocket).run()
