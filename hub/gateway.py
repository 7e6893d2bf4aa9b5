"""The GraphQL endpoint: authenticate, limit, plan against policy, execute, audit (fail closed), respond.

One function per step; ``handle`` runs them in order and turns any ``HubError`` into the one error
shape (``errors[].extensions.code`` plus the request id). Every request, allowed, denied or failed,
produces exactly one audit entry, and no response with data leaves before that entry is committed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from graphql import (
    DocumentNode,
    ExecutionResult,
    GraphQLError,
    OperationDefinitionNode,
    OperationType,
    StringValueNode,
    execute,
    parse,
    validate,
    visit,
)
from graphql.execution.values import get_variable_values
from graphql.language import Visitor
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from hub.audit.entry import ENTRY_VERSION
from hub.auth.actor import Actor
from hub.auth.hop import bind_hop
from hub.clock import china_date
from hub.compiled import execute_compiled
from hub.compiled.encode import AnswerResponse, canonical_answer
from hub.errors import (
    AuditUnavailable,
    AuthenticationError,
    BodyTimeout,
    BodyTooLarge,
    ForbiddenError,
    HubError,
    PolicyDenied,
    QueryLimitError,
    RequestError,
)
from hub.federation.consumer import Asker, narrow_plan, on_behalf_of, origin_request_id
from hub.federation.delegate import delegate_unresolved
from hub.graphql_http import content_type, negotiate, shaped, status_for
from hub.graphql_walk import with_defaults
from hub.ids import is_valid_id
from hub.limits import check_limits
from hub.logs import new_request_id
from hub.lookups import IdLookups
from hub.operations import DocumentRef, document_for_request, document_ref
from hub.policy.model import Purpose, Scope
from hub.policy.plan import Plan, plan_operation
from hub.schema.context import HubContext, count_out_of_area

if TYPE_CHECKING:
    from hub.state import HubState

log = logging.getLogger("hub.gateway")

PURPOSE_HEADER = "x-hub-purpose"
CASE_HEADER = "x-hub-case"
OFFICER_HEADER = "x-hub-officer"


@dataclass
class Exchange:
    """What one request accumulates on its way through; becomes the audit entry."""

    request_id: str
    started: float
    actor: Actor | None = None
    officer: str = ""
    purpose: str = ""
    case_ref: str = ""
    operation_name: str = ""
    raw: bytes | None = None  # the request body as received (only its keyed digest is kept)
    request_digest: str = ""
    plan: Plan | None = None
    subjects: set[str] = field(default_factory=set)
    upstream_failures: set[str] = field(default_factory=set)
    out_of_area: int = 0
    decision: str = "deny"
    reasons: list[str] = field(default_factory=list)
    status: int = 200
    result_digest: str = ""
    named: set[str] = field(default_factory=set)  # valid ID numbers named in the operation or its variables
    refused: set[str] = field(default_factory=set)  # of those, the residents asked about and not disclosed
    refused_pseudonyms: list[str] = field(default_factory=list)
    digest_key_id: str = ""
    # federation (docs/federation.md): the calling hub's request id; the remote hubs asked and their request ids
    origin_request_id: str = ""
    remote: list[dict[str, Any]] = field(default_factory=list)
    predicates_in_hub: list[str] = field(default_factory=list)  # subgraph departments whose predicates the hub ran
    well_formed: bool = False  # past the headers and the JSON body: a well-formed GraphQL-over-HTTP request
    retry_after: int = 0  # seconds, for a 429 (hub/ratelimit.py)
    marks: list[tuple[str, int]] = field(default_factory=lambda: [("start", time.time_ns())])  # step, its end (ns)

    def mark(self, step: str) -> None:
        self.marks.append((step, time.time_ns()))


async def read_body(request: Request, limit: int, timeout: float) -> bytes:
    """The request body, at most ``limit`` bytes, arriving within ``timeout`` seconds (a slow sender holds a
    connection and a task; it gets 408 instead of holding them)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(f"request body is larger than {limit} bytes")
    chunks, size = [], 0
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise BodyTooLarge(f"request body is larger than {limit} bytes")
                chunks.append(chunk)
    except TimeoutError:
        raise BodyTimeout(f"the request body did not arrive within {timeout:g} s") from None
    return b"".join(chunks)


async def authenticate(state: HubState, request: Request) -> Actor:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if not header:
        raise AuthenticationError("a Bearer access token is required", code="TOKEN_MISSING")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationError("the Authorization header must be 'Bearer <token>'", code="TOKEN_MALFORMED")
    return await state.authenticate(token.strip())


# Control characters (C0, DEL, C1) and the Unicode bidirectional controls, refused in the audited headers.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_ID_LIKE = re.compile(r"\d{17}[\dX]")
HEADER_CHARS = 80  # X-Hub-Officer and X-Hub-Case, in characters (the audit columns' size)
HEADER_BYTES = 4 * HEADER_CHARS  # ... and in UTF-8 bytes, checked before the value is decoded or kept


def audited_header(request: Request, name: str) -> str:
    """A header that goes into the audit entry, checked before anything of it is kept: one value, at most
    80 characters of UTF-8, no control or bidirectional-override characters, no resident ID number."""
    raw = [v for k, v in request.headers.raw if k == name.encode("latin-1")]
    if not raw:
        return ""
    label = "-".join(p.capitalize() for p in name.split("-"))
    if len(raw) > 1:
        raise RequestError(f"{label} was sent more than once", code="BAD_HEADER")
    if len(raw[0]) > HEADER_BYTES:
        raise RequestError(f"{label} is limited to {HEADER_CHARS} characters", code="BAD_HEADER")
    try:
        value = raw[0].decode("utf-8").strip(" \t")  # str.strip() would also drop NEL (U+0085) unseen
    except UnicodeDecodeError:
        raise RequestError(f"{label} must be UTF-8", code="BAD_HEADER") from None
    if len(value) > HEADER_CHARS:
        raise RequestError(f"{label} is limited to {HEADER_CHARS} characters", code="BAD_HEADER")
    if _UNSAFE.search(value):
        raise RequestError(f"{label} must not contain control or bidirectional-override characters", code="BAD_HEADER")
    if any(is_valid_id(m) for m in _ID_LIKE.findall(value)):
        raise RequestError(f"{label} must not contain a resident's ID number", code="BAD_HEADER")
    return value


def request_context(state: HubState, request: Request, actor: Actor, ex: Exchange) -> Purpose:
    officer = audited_header(request, OFFICER_HEADER)
    case_ref = audited_header(request, CASE_HEADER)
    claimed = request.headers.get(PURPOSE_HEADER, "").strip()
    if not officer:
        raise RequestError("the X-Hub-Officer header must name the officer acting", code="OFFICER_REQUIRED")
    ex.officer, ex.case_ref = officer, case_ref  # kept only once checked
    if not claimed:
        raise RequestError("the X-Hub-Purpose header must declare the purpose", code="PURPOSE_REQUIRED")
    purpose = state.policy.purposes.get(claimed)
    if purpose is None:
        known = ", ".join(sorted(state.policy.purposes))
        shown = claimed if len(claimed) <= 20 and claimed.isascii() and claimed.isalnum() else "(not shown)"
        raise RequestError(f"unknown purpose {shown!r} (known: {known})", code="UNKNOWN_PURPOSE")
    ex.purpose = purpose.id  # an unknown purpose is not kept: the entry says UNKNOWN_PURPOSE
    if purpose.id in actor.outside_scope:  # registered, but the token was asked for with a narrower scope
        raise ForbiddenError(
            f"the token's scope ({' '.join(actor.purposes) or 'none'}) does not include purpose {purpose.id}, "
            f"for which client {actor.client_id} is registered: request a token with scope {purpose.id}, "
            "or without scope",
            code="PURPOSE_NOT_REGISTERED",
        )
    if purpose.id not in actor.purposes:
        raise ForbiddenError(
            f"client {actor.client_id} is not registered for purpose {purpose.id}", code="PURPOSE_NOT_REGISTERED"
        )
    if purpose.requires_case and not ex.case_ref:
        raise ForbiddenError(f"purpose {purpose.id} requires a case reference (X-Hub-Case)", code="CASE_REQUIRED")
    return purpose


def coerce_variables(
    state: HubState, operation: OperationDefinitionNode, variables: dict[str, Any] | None
) -> tuple[dict[str, Any], str | None]:
    """The operation's variable values with their defaults, coerced once (graphql-core's own coercion), so
    that limits, the policy plan and the audit entry count a default exactly as a value sent. When they do not
    coerce: the values sent plus the defaults read untyped, and the coercion error (raised after validation)."""
    definitions = operation.variable_definitions or ()
    try:
        coerced = get_variable_values(state.graphql_schema, definitions, variables or {}, max_errors=5)
    except Exception:  # an invalid document: validation names the problem
        coerced = [GraphQLError("the variables could not be read")]
    if not isinstance(coerced, list):
        return dict(coerced.coerced), None
    return with_defaults(operation, variables), "; ".join(e.message for e in coerced)


def recordable_name(operation: OperationDefinitionNode) -> str:
    """The operation's name for the entry: not kept when it is long or holds a resident's ID number."""
    name = operation.name.value if operation.name else ""
    if len(name) > 100 or any(is_valid_id(m) for m in _ID_LIKE.findall(name)):
        return ""
    return name


MAX_NAMED = 10_000  # strings looked at for ID numbers (the body and token limits bound them anyway)


def named_ids(document: DocumentNode | None, variables: Any) -> set[str]:
    """Valid ID numbers named anywhere in the document's string literals (arguments and variable defaults)
    or in the variables: the residents a request asks about, whether or not it is allowed."""
    strings: list[str] = []
    if document is not None:

        class Strings(Visitor):
            def enter_string_value(self, node: StringValueNode, *_: Any) -> None:
                if len(strings) < MAX_NAMED:
                    strings.append(node.value)

        visit(document, Strings())
    stack, seen = [variables], 0
    while stack and seen < MAX_NAMED:  # iterative: a deeply nested variable cannot exhaust the stack
        v = stack.pop()
        seen += 1
        if isinstance(v, str):
            strings.append(v)
        elif isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return {s for s in strings if len(s) == 18 and is_valid_id(s)}


def named_in_body(raw: bytes, max_tokens: int) -> set[str]:
    """The ID numbers a request body names, for a request refused before its body was parsed (an authenticated
    client only, so nobody unknown can put entries on a resident's report). Best effort: nothing on failure."""
    try:
        query, variables, _, _ = parse_payload(raw)
        named = named_ids(None, variables)
        return named | (named_ids(parse(query, max_tokens=max_tokens, no_location=True), None) if query else set())
    except Exception:  # noqa: BLE001 (whatever the body holds, the entry is still written)
        return set()


def parse_payload(body: bytes) -> tuple[str | None, dict[str, Any] | None, str | None, DocumentRef | None]:
    """``query``, ``variables``, ``operationName``, and the stored document named instead of (or as well as) the
    query: ``documentId`` or Apollo's ``extensions.persistedQuery`` (hub/operations.py)."""
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise RequestError("the request body is not valid JSON", code="BAD_JSON") from None
    except RecursionError:  # e.g. 100,000 nested '[': refused as JSON, never a 500
        raise RequestError("the request body is nested too deeply", code="BAD_JSON") from None
    if isinstance(payload, list):
        raise RequestError(
            "batched operations are not accepted; send one operation per request", code="BATCHING_REFUSED"
        )
    if not isinstance(payload, dict):
        raise RequestError("the request body must be a JSON object", code="BAD_JSON")
    query = payload.get("query")
    variables = payload.get("variables")
    operation_name = payload.get("operationName")
    ref = document_ref(payload)
    if ref is not None and query is None:
        pass  # the stored document is the query
    elif not isinstance(query, str) or not query.strip():
        raise RequestError("'query' must be a non-empty string", code="BAD_REQUEST")
    if variables is not None and not isinstance(variables, dict):
        raise RequestError("'variables' must be an object", code="BAD_REQUEST")
    if operation_name is not None and not isinstance(operation_name, str):
        raise RequestError("'operationName' must be a string", code="BAD_REQUEST")
    return query, variables, operation_name, ref


def parse_document(query: str, max_tokens: int) -> DocumentNode:
    try:
        return parse(query, max_tokens=max_tokens, no_location=False)
    except GraphQLError as exc:
        if "tokens" in exc.message and "Parsing aborted" in exc.message:
            raise QueryLimitError(f"the document has more than {max_tokens} tokens", code="MAX_TOKENS_LIMIT") from None
        raise RequestError(f"syntax error: {exc.message}", code="GRAPHQL_PARSE_FAILED") from None


class ValidDocuments:
    """Documents that parsed and validated, by query text (LRU). Partner systems send the same few query texts
    again and again; parsing and validating one costs 2-3 ms, a lookup microseconds. Only valid documents are
    kept, and only small ones, so the cache cannot be used to hold memory. Limits and the policy plan still run
    on every request (they depend on the variables and the caller)."""

    def __init__(self, size: int = 512, max_text: int = 32_768) -> None:
        self.size, self.max_text = size, max_text
        self.hits = self.misses = 0
        self._docs: OrderedDict[str, DocumentNode] = OrderedDict()
        self._named: dict[str, frozenset[str]] = {}  # the ID numbers each document's literals name (named_ids)

    def named(self, query: str) -> frozenset[str] | None:
        return self._named.get(query)

    def get(self, query: str) -> DocumentNode | None:
        doc = self._docs.get(query)
        if doc is None:
            self.misses += 1
            return None
        self._docs.move_to_end(query)
        self.hits += 1
        return doc

    def put(self, query: str, document: DocumentNode, named: frozenset[str] | None = None) -> None:
        if self.size <= 0 or len(query) > self.max_text:
            return
        self._docs[query] = document
        self._docs.move_to_end(query)
        self._named[query] = frozenset(named_ids(document, None)) if named is None else named
        while len(self._docs) > self.size:
            self._named.pop(self._docs.popitem(last=False)[0], None)

    def __len__(self) -> int:
        return len(self._docs)


def validate_document(state: HubState, document: DocumentNode) -> None:
    """The document against the schema and the process's validation rules (introspection refused outside
    development mode); the first five problems as one ``GRAPHQL_VALIDATION_FAILED``."""
    errors = validate(
        state.graphql_schema,
        document,
        state.validation_rules,
        max_errors=20,
        hide_suggestions=not state.settings.dev_mode,
    )
    if errors:
        raise RequestError("; ".join(e.message for e in errors[:5]), code="GRAPHQL_VALIDATION_FAILED")


def pick_operation(document: DocumentNode, name: str | None) -> OperationDefinitionNode:
    ops = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if name:
        for op in ops:
            if op.name and op.name.value == name:
                return op
        raise RequestError(f"no operation named {name!r}", code="BAD_REQUEST")
    if len(ops) != 1:
        raise RequestError("the document must contain exactly one operation, or name one", code="BAD_REQUEST")
    return ops[0]


def error_body(exc: HubError, request_id: str) -> dict[str, Any]:
    ext: dict[str, Any] = {"code": exc.code, "requestId": request_id}
    ext.update(exc.details)
    return {"data": None, "errors": [{"message": exc.message, "extensions": ext}]}


def format_error(err: GraphQLError, request_id: str) -> dict[str, Any]:
    original = err.original_error
    if original is None:
        out: dict[str, Any] = err.formatted  # type: ignore[assignment]
        out.setdefault("extensions", {})["code"] = out.get("extensions", {}).get("code", "GRAPHQL_ERROR")
        out["extensions"]["requestId"] = request_id
        return out
    if isinstance(original, HubError):
        code, message = original.code, original.message
    elif isinstance(original, GraphQLError):  # graphql-core wraps variable coercion errors once more
        code, message = "BAD_VARIABLES", original.message
    else:
        log.error("unexpected error in %s (request %s)", err.path, request_id, exc_info=original)
        code, message = "INTERNAL_ERROR", "Unexpected error."
    out = {"message": message, "path": err.path, "extensions": {"code": code, "requestId": request_id}}
    if err.locations:
        out["locations"] = [{"line": loc.line, "column": loc.column} for loc in err.locations]
    return out


async def handle(state: HubState, request: Request) -> Response:
    settings = state.settings
    ex = Exchange(request_id=new_request_id(), started=time.perf_counter())  # bound to the logs (hub/logs.py)
    body: dict[str, Any]
    try:
        raw = ex.raw = await read_body(request, settings.max_body_bytes, settings.body_timeout)
        ex.mark("read_body")  # each step's end, for its trace span (hub/tracing.py)
        ex.actor = await authenticate(state, request)
        ex.mark("authenticate")
        await state.graphql_limit.check(f"graphql:{ex.actor.client_id}", f"client {ex.actor.client_id}")
        ex.origin_request_id = origin_request_id(request.headers, ex.actor)  # federation: kept for role "hub" only
        consumer = on_behalf_of(request.headers, ex.origin_request_id)  # federation: the calling hub's consumer
        if consumer is not None:
            ex.actor = consumer.narrowed(ex.actor)
        purpose = request_context(state, request, ex.actor, ex)
        ex.mark("headers")
        sent, variables, op_name, ref = parse_payload(raw)
        ex.well_formed = True  # a GraphQL-over-HTTP request from here on (hub/graphql_http.py)
        # approved operations (hub/operations.py)
        query = await document_for_request(state.operations, state.metrics, ex.actor, purpose.id, sent, ref)
        ex.mark("payload")
        ex.named = named_ids(None, variables)
        document = state.documents.get(query)
        validated = document is not None
        if document is None:
            document = parse_document(query, settings.max_tokens)
        in_document = state.documents.named(query) if validated else None  # a document's literals never change
        if in_document is None:
            in_document = frozenset(named_ids(document, None))
        ex.named |= in_document
        operation = pick_operation(document, op_name)
        ex.operation_name = recordable_name(operation)
        if operation.operation is OperationType.SUBSCRIPTION:  # hub/monitor/ws.py
            raise RequestError("subscriptions are served over WebSocket (graphql-transport-ws) at /graphql")
        coerced, variables_problem = coerce_variables(state, operation, variables)
        ex.mark("parse")
        check_limits(document, operation, state.limits, coerced)
        ex.mark("limits")
        if not validated:
            validate_document(state, document)
            state.documents.put(query, document, in_document)
        if variables_problem is not None:
            raise RequestError(variables_problem, code="BAD_VARIABLES")
        today = china_date(state.clock())
        ex.plan = plan_operation(
            state.graphql_schema,
            document,
            operation,
            state.catalog,
            state.policy,
            ex.actor,
            purpose.id,
            today,
            coerced,
        )
        if consumer is not None:  # federation: the narrower of the hub client's and its consumer's grants
            other = consumer.as_actor(ex.actor)
            replan = other.department != ex.actor.department
            args = (state.catalog, state.policy, other, purpose.id, today, coerced)
            ex.plan = narrow_plan(
                ex.plan, plan_operation(state.graphql_schema, document, operation, *args) if replan else None, consumer
            )
        ex.mark("validate_and_plan")
        if not ex.plan.allowed:
            denied = [{"coordinate": d.coordinate, "reason": d.reason} for d in ex.plan.denials]
            ex.reasons = [f"{d['coordinate']}: {d['reason']}" for d in denied]
            raise PolicyDenied(
                f"{len(denied)} field(s) not granted to {ex.actor.department} for purpose {purpose.id}: "
                + ", ".join(d["coordinate"] for d in denied),
                details={"denied": denied},
            )
        # person/people: not an existence oracle. A hop from another region's hub is exempt: that hub asks only
        # for the residents it does not hold, and applies both rules to its consumer on the whole answer.
        lookups = None if ex.origin_request_id else IdLookups.of(document, operation, coerced)
        spent = await state.misses.before(ex.actor.client_id) if lookups else 0
        context = HubContext(
            actor=ex.actor,
            purpose=purpose,
            case_ref=ex.case_ref,
            officer=ex.officer,
            area_prefix=ex.actor.area if ex.plan.scope is Scope.JURISDICTION else None,
            sources=state.sources,
            today=today,
            authorizations=state.authorizations,
            max_batch=settings.max_batch,
            catalog=state.catalog,
            audit=state.audit,
            data_dir=settings.data_dir,
            perturbation_key=state.perturbation_key,
            alerts=state.alerts,  # monitoring: the alert store (docs/monitoring.md)
        )
        hop = bind_hop(ex.request_id, ex.actor, ex.officer, purpose.id, ex.case_ref)  # federation: who asks subgraphs
        result: ExecutionResult | Awaitable[ExecutionResult] | None = None
        if settings.compiled:  # the compiled path (hub/compiled/, docs/performance.md) when it runs this operation
            result = await execute_compiled(state.graphql_schema, document, operation, variables, context)
        if result is None:
            result = execute(
                state.graphql_schema, document, context_value=context, variable_values=variables, operation_name=op_name
            )
        if not isinstance(result, ExecutionResult):
            result = await result
        # federation: root fields null here are asked of the remote regions' hubs (their policies and audit apply)
        asker = Asker(
            ex.request_id, ex.actor, ex.officer, ex.purpose, ex.case_ref, context.area_prefix, ex.origin_request_id
        )
        found = await delegate_unresolved(
            state.remotes, asker, state.graphql_schema, document, operation, variables, result
        )
        result, ex.remote, ex.predicates_in_hub = found.result, found.remote, sorted(hop.predicates_in_hub)
        context.subjects |= found.found
        context.not_found -= found.found
        ex.subjects = context.subjects
        ex.out_of_area = await count_out_of_area(context) + found.out_of_area
        ex.refused = set(context.out_of_area_ids)
        ex.upstream_failures = context.upstream_failures | found.failures
        ex.mark("execute")
        if lookups:
            await state.misses.after(ex.actor.client_id, spent, *lookups.outcome(result))
        body = {"data": result.data}
        if ex.origin_request_id:  # federation: tells the calling hub how many residents were out of area here
            body["extensions"] = {"hub": {"outOfArea": ex.out_of_area}}
        if result.errors:
            body["errors"] = [format_error(e, ex.request_id) for e in result.errors]
            ex.reasons = sorted({e["extensions"]["code"] for e in body["errors"]})
        ex.decision = "allow" if result.data is not None else "error"
        if result.data is None:
            client_errors = ("GRAPHQL_ERROR", "BAD_VARIABLES")
            ex.status = 400 if any(e["extensions"]["code"] in client_errors for e in body.get("errors", [])) else 200
    except HubError as exc:
        ex.status, ex.retry_after = exc.status, getattr(exc, "retry_after", 0)
        if not ex.reasons:
            ex.reasons = [exc.code]
        ex.decision = "deny" if isinstance(exc, AuthenticationError | ForbiddenError | RequestError) else "error"
        body = error_body(exc, ex.request_id)
    except Exception:  # a bug, never a reason to skip the audit entry or leak detail
        log.exception("unexpected error (request %s)", ex.request_id)
        ex.status, ex.decision, ex.reasons = 500, "error", ["INTERNAL_ERROR"]
        body = error_body(HubError("Unexpected error.", code="INTERNAL_ERROR"), ex.request_id)
    media = negotiate(request.headers.get("accept"))  # the status and shape the client asked for
    ex.status = status_for(media, ex.status, ex.well_formed)  # the entry records the status sent
    # Fail closed: the audit entry is committed before any byte of the response is sent.
    if ex.decision != "allow":
        if not ex.named and ex.actor is not None and ex.raw is not None:  # refused before the body was read
            ex.named = named_in_body(ex.raw, settings.max_tokens)
        ex.refused |= ex.named - ex.subjects  # residents asked about in a refused request: on their report
    appending = time.perf_counter()
    try:
        digests = audit_digests(state, ex, body)
        seq, leaf = await state.audit.append(audit_body(ex), sorted(state.audit.pseudonym(s) for s in ex.subjects))
    except AuditUnavailable as exc:
        counted(state, ex, "failed", appending, exc.status)
        return JSONResponse(
            shaped(media, exc.status, error_body(exc, ex.request_id)),
            status_code=exc.status,
            headers={"x-request-id": ex.request_id},
            media_type=content_type(media),
        )
    counted(state, ex, "committed", appending, ex.status)
    # the receipt: which entry records this request (its inclusion proof: GET /audit/receipt?seq=N), and the
    # keyed digests of the request and the answer that the entry holds
    extensions = body.setdefault("extensions", {})
    extensions["receipt"] = {"seq": seq, "leafHash": leaf.hex(), "origin": state.audit.origin}
    extensions["digests"] = digests
    headers = {"x-request-id": ex.request_id}
    if ex.status == 401:
        headers["www-authenticate"] = 'Bearer error="invalid_token"'
    if ex.retry_after:
        headers["retry-after"] = str(ex.retry_after)
    return AnswerResponse(  # JSONResponse's bytes, with orjson where they are the same (hub/compiled/encode.py)
        shaped(media, ex.status, body), status_code=ex.status, headers=headers, media_type=content_type(media)
    )


def counted(state: HubState, ex: Exchange, append_outcome: str, appending: float, status: int) -> None:
    """The request in the metrics (hub/metrics.py): the audit append's time, and the request by purpose,
    consumer department, decision and status, with the coordinates the policy denied."""
    now = time.perf_counter()
    metrics = state.metrics
    metrics.audit_append.labels(append_outcome).observe(now - appending)
    denied = [d.coordinate for d in ex.plan.denials] if ex.plan is not None and not ex.plan.allowed else []
    department = ex.actor.department if ex.actor is not None else ""
    decision = ex.decision if append_outcome == "committed" else "error"
    metrics.graphql_answered(ex.purpose, department, decision, status, now - ex.started, denied)
    ex.mark("audit")
    attributes = {"hub.purpose": ex.purpose, "hub.department": department, "hub.decision": decision}
    state.tracing.record(ex.marks, {**attributes, "hub.status": status})


def audit_digests(state: HubState, ex: Exchange, body: dict[str, Any]) -> dict[str, str]:
    """The entry's keyed digests of the request body and the answer's data (also given to the client, in
    ``extensions.digests``, so it can later show which request and answer the entry records)."""
    audit = state.audit
    ex.request_digest = audit.digest("request", ex.request_id, ex.raw) if ex.raw is not None else ""
    try:
        data = canonical_answer(body.get("data"))  # = canonical(...), with orjson where the bytes are the same
    except (TypeError, ValueError):
        data = b""
    ex.result_digest = audit.digest("result", ex.request_id, data)
    ex.refused_pseudonyms = sorted(audit.pseudonym(s) for s in ex.refused)
    ex.digest_key_id = audit.digest_key_id
    return {"key": audit.digest_key_id, "request": ex.request_digest, "result": ex.result_digest}


def audit_body(ex: Exchange) -> dict[str, Any]:
    """The entry (format v2, docs/audit.md): plain, bounded values that were already checked. Digests are
    keyed; nothing in it lets someone without the hub's keys confirm a guess about a resident or an answer."""
    a = ex.actor
    fields = sorted(ex.plan.disclosures.items()) if ex.plan is not None and ex.decision != "deny" else []
    return {
        "v": ENTRY_VERSION,
        "request_id": ex.request_id,
        "client_id": a.client_id if a else "",
        "department": a.department if a else "",
        "area": a.area if a else "",
        "token_id": a.token_id if a else "",
        "officer": ex.officer,
        "purpose": ex.purpose,
        "case_ref": ex.case_ref,
        "operation_name": ex.operation_name,
        "digest_key": ex.digest_key_id,
        "request_digest": ex.request_digest,
        "fields": [{"coordinate": c, "form": f.value} for c, f in fields],
        "requested_denied": [d.coordinate for d in ex.plan.denials] if ex.plan is not None else [],
        "predicate_args": ex.plan.predicate_args if ex.plan is not None else {},
        "subject_count": len(ex.subjects),
        "refused_subjects": ex.refused_pseudonyms,
        "out_of_area": ex.out_of_area,
        "decision": ex.decision,
        "reasons": ex.reasons,
        "status": ex.status,
        "upstream_failures": sorted(ex.upstream_failures),
        "result_digest": ex.result_digest,
        "latency_ms": round((time.perf_counter() - ex.started) * 1000),
        # federation: present only when this request came from, or was forwarded to, another region's hub
        **({"origin_request_id": ex.origin_request_id} if ex.origin_request_id else {}),
        **({"remote": ex.remote} if ex.remote else {}),
        **({"predicates_in_hub": ex.predicates_in_hub} if ex.predicates_in_hub else {}),
    }
