"""Hub-to-hub: another region's hub as a source for residents this hub does not hold.

When a root ``person``, ``people`` or ``household`` field resolves to null here (not in this region's data, or
outside the caller's jurisdiction), the gateway forwards that root field's sub-operation to each configured
remote hub (``HUB_REMOTE_HUBS``), concurrently and within the source timeout, and merges the first non-null
answer into the response. The remote hub is asked as an ordinary client (client credentials registered there,
with role ``hub``): it authenticates, applies its own policies and row scope to that client, audits the request
and answers; its errors come back with their codes, prefixed by the region's name.

This hub's policy plan has already approved every coordinate of the operation before anything ran, so a
field comes back only if both hubs grant it. Both audit logs record the exchange under the same ids: this
hub's entry lists ``remote: [{"hub": name, "request_id": <the remote's request id>}]`` and the remote's entry
carries ``origin_request_id`` (this hub's request id, sent as ``X-Hub-Origin-Request-Id``). A request that
itself came from a hub is never forwarded again (one hop, no loops).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
import httpx
from graphql import (
    ArgumentNode,
    DocumentNode,
    ExecutionResult,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    ListValueNode,
    OperationDefinitionNode,
    OperationType,
    SelectionNode,
    SelectionSetNode,
    StringValueNode,
    VariableNode,
    print_ast,
    value_from_ast_untyped,
)
from starlette.datastructures import Headers

from hub.errors import ConfigError, HubError, UpstreamUnavailable
from hub.sources.breaker import CircuitBreaker

if TYPE_CHECKING:
    from hub.auth.actor import Actor
    from hub.gateway import Exchange
    from hub.schema.context import HubContext
    from hub.settings import Settings

log = logging.getLogger("hub.sources")

HUB_ROLE = "hub"
ORIGIN_HEADER = "x-hub-origin-request-id"
# root field -> its key argument
ROOT_FIELDS = {"person": "idNumber", "people": "idNumbers", "household": "householdId"}


def origin_request_id(headers: Headers, actor: Actor | None) -> str:
    """The calling hub's request id, kept only for clients registered with role ``hub`` (for anyone else the
    header would be an unverified claim to be a cross-region request, so it is ignored)."""
    value = headers.get(ORIGIN_HEADER, "").strip()
    if not value or actor is None or not actor.has_role(HUB_ROLE):
        return ""
    if len(value) > 64 or not all(ch.isascii() and (ch.isalnum() or ch in "-_") for ch in value):
        return ""
    return value


@dataclass
class RemoteAnswer:
    hub: str
    body: dict[str, Any] | None = None  # the remote's JSON response
    request_id: str = ""
    failure: str = ""


class RemoteHub:
    """One remote region's hub, reached over HTTP with this hub's client credentials there."""

    def __init__(
        self,
        name: str,
        url: str,
        client_id: str,
        secret: str,
        *,
        timeout: float = 5.0,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self.name = name
        self.url = url.rstrip("/")
        self.client_id = client_id
        self.secret = secret
        self.timeout = timeout
        self.breaker = breaker or CircuitBreaker()
        self.requests = 0
        self._token: tuple[str, float] | None = None
        self._lock = asyncio.Lock()

    async def _access_token(self, client: httpx.AsyncClient) -> str:
        async with self._lock:
            if self._token is not None and self._token[1] > time.monotonic():
                return self._token[0]
            r = await client.post(
                f"{self.url}/oauth/token",
                data={"grant_type": "client_credentials"},
                auth=(self.client_id, self.secret),
            )
            if r.status_code != 200:
                raise UpstreamUnavailable(f"{self.name}: token request refused ({r.status_code})")
            body = r.json()
            ttl = float(body.get("expires_in", 60))
            self._token = (str(body["access_token"]), time.monotonic() + max(ttl - 30, ttl / 2))
            return self._token[0]

    async def ask(
        self, query: str, variables: dict[str, Any], operation_name: str | None, ex: Exchange
    ) -> RemoteAnswer:
        """Send one sub-operation on behalf of ``ex``'s officer, purpose and case; never raises."""
        answer = RemoteAnswer(self.name)
        if not await self.breaker.admit(self.timeout):
            answer.failure = f"{self.name}: the region's hub is unavailable (circuit open)"
            return answer
        payload: dict[str, Any] = {"query": query, "variables": variables}
        if operation_name:
            payload["operationName"] = operation_name
        headers = {"x-hub-purpose": ex.purpose, "x-hub-officer": ex.officer, ORIGIN_HEADER: ex.request_id}
        if ex.case_ref:
            headers["x-hub-case"] = ex.case_ref
        try:
            with anyio.fail_after(self.timeout):
                async with httpx.AsyncClient(timeout=self.timeout) as client:
                    for attempt in (1, 2):
                        headers["authorization"] = f"Bearer {await self._access_token(client)}"
                        self.requests += 1
                        r = await client.post(f"{self.url}/graphql", json=payload, headers=headers)
                        if r.status_code == 401 and attempt == 1:
                            self._token = None  # expired or rotated there: one fresh token, one retry
                            continue
                        break
                    answer.request_id = r.headers.get("x-request-id", "")
                    body = r.json()
                    if not isinstance(body, dict):
                        raise ValueError("not a JSON object")
                    answer.body = body
        except TimeoutError:
            self.breaker.failure()
            answer.failure = f"{self.name}: the region's hub did not answer within {self.timeout}s"
        except (httpx.HTTPError, ValueError, KeyError, TypeError, UpstreamUnavailable) as exc:
            self.breaker.failure()
            log.warning("remote hub %s failed: %s: %s", self.name, exc.__class__.__name__, exc)
            answer.failure = f"{self.name}: the region's hub is unavailable"
        else:
            self.breaker.success()
        return answer


class RemoteHubs:
    """The configured remote regions, asked in configuration order (the first non-null answer wins)."""

    def __init__(self, hubs: Sequence[RemoteHub] = ()) -> None:
        self.hubs = list(hubs)

    def __bool__(self) -> bool:
        return bool(self.hubs)

    @classmethod
    def from_settings(cls, settings: Settings) -> RemoteHubs:
        hubs = []
        for name, url in settings.remote_hubs.items():
            if not url.startswith(("http://", "https://")):
                raise ConfigError(f"remote hub {name}: {url!r} is not an http(s) URL", code="BAD_SETTING")
            creds = settings.remote_credentials.get(name)
            if not creds or not creds[0] or not creds[1]:
                env = "HUB_REMOTE_" + name.upper().replace("-", "_")
                raise ConfigError(
                    f"remote hub {name} has no credentials: set {env}_CLIENT_ID and {env}_CLIENT_SECRET",
                    code="BAD_SETTING",
                )
            hubs.append(
                RemoteHub(
                    name,
                    url,
                    creds[0],
                    creds[1],
                    timeout=settings.source_timeout,
                    breaker=CircuitBreaker(settings.breaker_threshold, settings.breaker_reset),
                )
            )
        return cls(hubs)


# -- the sub-operation of one root field ---------------------------------------------------------------------


def _included(node: SelectionNode, variables: dict[str, Any]) -> bool:
    for d in node.directives or ():
        if d.name.value not in ("skip", "include"):
            continue
        arg = next((a for a in d.arguments or () if a.name.value == "if"), None)
        value = value_from_ast_untyped(arg.value, variables) if arg is not None else None
        if d.name.value == "skip" and value is True:
            return False
        if d.name.value == "include" and value is False:
            return False
    return True


def root_fields(
    selection_set: SelectionSetNode,
    fragments: Mapping[str, FragmentDefinitionNode],
    variables: dict[str, Any],
    out: dict[str, list[FieldNode]] | None = None,
) -> dict[str, list[FieldNode]]:
    """Response key -> the field nodes that produce it, through fragments and ``@skip``/``@include``."""
    out = {} if out is None else out
    for sel in selection_set.selections:
        if not _included(sel, variables):
            continue
        if isinstance(sel, FieldNode):
            out.setdefault((sel.alias or sel.name).value, []).append(sel)
        elif isinstance(sel, InlineFragmentNode):
            root_fields(sel.selection_set, fragments, variables, out)
        elif isinstance(sel, FragmentSpreadNode) and sel.name.value in fragments:
            root_fields(fragments[sel.name.value].selection_set, fragments, variables, out)
    return out


def _usage(
    nodes: Sequence[Any], fragments: Mapping[str, FragmentDefinitionNode]
) -> tuple[set[str], list[FragmentDefinitionNode]]:
    """Variables and fragments (transitively) used by ``nodes``."""
    variables: set[str] = set()
    used: dict[str, FragmentDefinitionNode] = {}
    stack: list[Any] = list(nodes)
    while stack:
        node = stack.pop()
        if isinstance(node, VariableNode):
            variables.add(node.name.value)
        elif isinstance(node, FragmentSpreadNode) and node.name.value in fragments and node.name.value not in used:
            used[node.name.value] = fragments[node.name.value]
            stack.append(fragments[node.name.value])
        for key in getattr(node, "keys", ()):
            if key == "loc":
                continue
            child = getattr(node, key, None)
            if isinstance(child, tuple | list):
                stack.extend(c for c in child if hasattr(c, "keys"))
            elif hasattr(child, "keys") and not isinstance(child, dict):
                stack.append(child)
    return variables, [used[n] for n in sorted(used)]


def sub_operation(
    operation: OperationDefinitionNode,
    fragments: Mapping[str, FragmentDefinitionNode],
    nodes: Sequence[FieldNode],
    variables: dict[str, Any],
) -> tuple[str, dict[str, Any]]:
    """The printed document asking only for ``nodes`` (with the fragments and variables they use)."""
    names, used_fragments = _usage(nodes, fragments)
    op = OperationDefinitionNode(
        operation=OperationType.QUERY,
        name=operation.name,
        variable_definitions=tuple(d for d in operation.variable_definitions or () if d.variable.name.value in names),
        directives=(),
        selection_set=SelectionSetNode(selections=tuple(nodes)),
    )
    doc = DocumentNode(definitions=(op, *used_fragments))
    return print_ast(doc), {k: v for k, v in variables.items() if k in names}


def _with_ids(node: FieldNode, argument: str, ids: Sequence[str]) -> FieldNode:
    value = ListValueNode(values=tuple(StringValueNode(value=i) for i in ids))
    return FieldNode(
        alias=node.alias,
        name=node.name,
        arguments=tuple(
            ArgumentNode(name=a.name, value=value) if a.name.value == argument else a for a in node.arguments or ()
        ),
        directives=node.directives,
        selection_set=node.selection_set,
    )


# -- delegation -----------------------------------------------------------------------------------------------


@dataclass
class _Job:
    key: str  # response key
    name: str  # root field name
    nodes: list[FieldNode]
    positions: list[int] | None = None  # people: the indexes that were null here
    ids: list[str] = field(default_factory=list)  # resident ID numbers asked for (audit subjects)
    answers: list[RemoteAnswer] = field(default_factory=list)


def _error(message: str, code: str, path: Sequence[str | int]) -> GraphQLError:
    return GraphQLError(message, path=list(path), original_error=HubError(message, code=code))


def _remote_errors(answer: RemoteAnswer, job: _Job, position: int | None = None) -> list[GraphQLError]:
    """The remote's errors for ``job`` (for ``people``, those of one position, or those with no position)."""
    out = []
    for err in (answer.body or {}).get("errors") or []:
        if not isinstance(err, dict):
            continue
        ext = err.get("extensions")
        code = str(ext.get("code", "HUB_ERROR")) if isinstance(ext, dict) else "HUB_ERROR"
        path = err.get("path") if isinstance(err.get("path"), list) else None
        message = f"{answer.hub}: {err.get('message', '')}"
        if job.positions is None:
            out.append(_error(message, code, [job.key, *(path or [job.key])[1:]]))
            continue
        has_position = path is not None and len(path) >= 2 and isinstance(path[1], int)
        if position is None and not has_position:
            out.append(_error(message, code, [job.key]))
        elif position is not None and has_position and path is not None and path[1] == position:
            out.append(_error(message, code, [job.key, job.positions[position], *path[2:]]))
    return out


async def delegate_unresolved(
    remotes: RemoteHubs,
    ex: Exchange,
    context: HubContext,
    document: DocumentNode,
    operation: OperationDefinitionNode,
    variables: Mapping[str, Any] | None,
    result: ExecutionResult,
) -> ExecutionResult:
    """Ask the remote regions for the root fields that came back null here; merge what they find."""
    if not remotes or result.data is None or operation.operation is not OperationType.QUERY or ex.origin_request_id:
        return result
    values: dict[str, Any] = dict(variables or {})
    for var in operation.variable_definitions or ():
        if var.variable.name.value not in values and var.default_value is not None:
            values[var.variable.name.value] = value_from_ast_untyped(var.default_value)
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    local_errors = {tuple(e.path[:2]) for e in result.errors or [] if e.path}
    jobs: list[_Job] = []
    for key, nodes in root_fields(operation.selection_set, fragments, values).items():
        name = nodes[0].name.value
        if name not in ROOT_FIELDS or (key,) in local_errors:
            continue
        args = {a.name.value: value_from_ast_untyped(a.value, values) for a in nodes[0].arguments or ()}
        local = result.data.get(key)
        if name == "people":
            ids = args.get("idNumbers")
            if not isinstance(local, list) or not isinstance(ids, list) or len(ids) != len(local):
                continue
            positions = [i for i, v in enumerate(local) if v is None and (key, i) not in local_errors]
            if positions:
                missing = [str(ids[i]) for i in positions]
                nodes = [_with_ids(n, "idNumbers", missing) for n in nodes]
                jobs.append(_Job(key, name, nodes, positions, missing))
        elif local is None:
            ids = [str(args["idNumber"])] if name == "person" and "idNumber" in args else []
            jobs.append(_Job(key, name, list(nodes), None, ids))
    if not jobs:
        return result

    async def run(job: _Job, hub: RemoteHub, slot: int) -> None:
        query, sub_vars = sub_operation(operation, fragments, job.nodes, values)
        job.answers[slot] = await hub.ask(query, sub_vars, operation.name.value if operation.name else None, ex)

    async with anyio.create_task_group() as tg:
        for job in jobs:
            job.answers = [RemoteAnswer(h.name) for h in remotes.hubs]
            for slot, hub in enumerate(remotes.hubs):
                tg.start_soon(run, job, hub, slot)

    data = dict(result.data)
    errors = list(result.errors or [])
    for job in jobs:
        for a in job.answers:
            ex.remote.append({"hub": a.hub, "request_id": a.request_id})
            if a.failure:
                context.upstream_failures.add(f"hub:{a.hub}")
        remote_data = [(a, (a.body or {}).get("data") or {}) for a in job.answers]
        if job.positions is None:
            winner = next((a for a, d in remote_data if d.get(job.key) is not None), None)
            if winner is not None:
                data[job.key] = (winner.body or {})["data"][job.key]
                errors += _remote_errors(winner, job)
                _found(context, job.ids)
            else:
                for a in job.answers:
                    errors += _remote_errors(a, job) or (
                        [_error(a.failure, "UPSTREAM_UNAVAILABLE", [job.key])] if a.failure else []
                    )
            continue
        merged = list(data[job.key])
        filled = False
        for j, pos in enumerate(job.positions):
            for a, d in remote_data:
                items = d.get(job.key)
                if isinstance(items, list) and j < len(items) and items[j] is not None:
                    merged[pos] = items[j]
                    errors += _remote_errors(a, job, j)
                    _found(context, [job.ids[j]])
                    filled = True
                    break
        data[job.key] = merged
        if not filled:
            for a in job.answers:
                errors += _remote_errors(a, job) or (
                    [_error(a.failure, "UPSTREAM_UNAVAILABLE", [job.key])] if a.failure else []
                )
    return ExecutionResult(data=data, errors=errors or None)


def _found(context: HubContext, ids: Sequence[str]) -> None:
    for i in ids:
        context.subjects.add(i)
        context.not_found.discard(i)
