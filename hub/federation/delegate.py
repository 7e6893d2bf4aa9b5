"""What is asked of the remote regions and how their answers join this hub's: the sub-operation of each root
field that came back null here, asked of every region concurrently; each answer completed from the operation's
own selection and typed by this hub's schema (anything not asked is dropped, any value that does not fit fails
that region); the first non-null answer merged in. Returns what was found (``Delegation``); the gateway folds
it into the response and the audit entry."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
from graphql import (
    ArgumentNode,
    DocumentNode,
    ExecutionResult,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLEnumType,
    GraphQLError,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLScalarType,
    GraphQLSchema,
    ListValueNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    StringValueNode,
    VariableNode,
    print_ast,
    value_from_ast_untyped,
)

from hub.errors import HubError
from hub.federation.consumer import Asker
from hub.federation.remote import RemoteAnswer, RemoteHub, RemoteHubs
from hub.graphql_walk import Walker, fragments_of, with_defaults

log = logging.getLogger("hub.sources")

# root field -> its key argument
ROOT_FIELDS = {"person": "idNumber", "people": "idNumbers", "household": "householdId"}
_CODE_RE = re.compile(r"^[A-Z][A-Z0-9_]{0,39}$")
_NAME_RE = re.compile(r"^[_A-Za-z][_0-9A-Za-z]{0,63}$")


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
    values: list[Any] = field(default_factory=list)  # per answer: its checked value for this key (None: none)


@dataclass
class Delegation:
    """What the remote regions found for one request (the gateway folds it into the response and the entry)."""

    result: ExecutionResult
    remote: list[dict[str, Any]] = field(default_factory=list)  # one line per region asked, for the audit entry
    failures: set[str] = field(default_factory=set)  # "hub:<name>" of the regions that failed
    found: set[str] = field(default_factory=set)  # ID numbers answered by a region
    out_of_area: int = 0  # residents a region holds outside the consumer's jurisdiction


def _error(message: str, code: str, path: Sequence[str | int]) -> GraphQLError:
    return GraphQLError(message, path=list(path), original_error=HubError(message, code=code))


def _unavailable(hub: str, path: Sequence[str | int]) -> GraphQLError:
    """A remote region's error, as the consumer sees it: short, fixed, never the remote's own text."""
    return _error(f"{hub}: the region's hub did not answer this field", "UPSTREAM_UNAVAILABLE", path)


def _safe_path(raw: Any) -> list[str | int] | None:
    if not isinstance(raw, list) or not 1 <= len(raw) <= 16:
        return None
    out: list[str | int] = []
    for p in raw:
        if isinstance(p, int) and not isinstance(p, bool) and 0 <= p <= 100_000:
            out.append(p)
        elif isinstance(p, str) and _NAME_RE.match(p):
            out.append(p)
        else:
            return None
    return out


def _remote_errors(answer: RemoteAnswer, job: _Job, position: int | None = None) -> list[GraphQLError]:
    """The remote's errors for ``job`` (for ``people``, those of one position, or those with no position), each
    as a short ``UPSTREAM_UNAVAILABLE``; the remote's codes go to the audit entry."""
    out = []
    errors = (answer.body or {}).get("errors")
    for err in (errors if isinstance(errors, list) else [])[:50]:
        if not isinstance(err, dict):
            continue
        ext = err.get("extensions")
        code = ext.get("code") if isinstance(ext, dict) else None
        if isinstance(code, str) and _CODE_RE.match(code):
            answer.error_codes.add(code)
        path = _safe_path(err.get("path"))
        if job.positions is None:
            out.append(_unavailable(answer.hub, [job.key, *(path or [job.key])[1:]]))
            continue
        has_position = path is not None and len(path) >= 2 and isinstance(path[1], int)
        if position is None and not has_position:
            out.append(_unavailable(answer.hub, [job.key]))
        elif position is not None and has_position and path is not None and path[1] == position:
            out.append(_unavailable(answer.hub, [job.key, job.positions[position], *path[2:]]))
    return out


class _Bad(ValueError):
    """A remote value that does not fit the schema or the question."""


_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1


def _scalar(value: Any, t: GraphQLScalarType | GraphQLEnumType, path: str) -> Any:
    ok: bool
    if isinstance(t, GraphQLEnumType):
        ok = isinstance(value, str) and value in t.values
    elif t.name in ("String", "ID"):
        ok = isinstance(value, str)
    elif t.name == "Int":
        ok = isinstance(value, int) and not isinstance(value, bool) and _INT_MIN <= value <= _INT_MAX
    elif t.name == "Float":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    elif t.name == "Boolean":
        ok = isinstance(value, bool)
    else:  # a custom scalar (Date, DateTime): it must parse as one
        try:
            ok = isinstance(value, str) and t.parse_value(value) is not None
        except (GraphQLError, ValueError, TypeError):
            ok = False
    if not ok:
        raise _Bad(f"{path}: not a valid {t.name}")
    return value


class _Checker:
    """Completes a remote answer from the operation's own selection, typed by this hub's schema: only the
    fields selected are kept (anything else is dropped and its path recorded), every value must have the
    field's type, and a selected ``idNumber`` must be the one asked for."""

    def __init__(
        self, schema: GraphQLSchema, fragments: Mapping[str, FragmentDefinitionNode], variables: dict[str, Any]
    ) -> None:
        self.schema = schema
        self.walker = Walker(fragments, variables, schema, possible_only=True)
        self.dropped: list[str] = []

    def complete(
        self, value: Any, t: GraphQLOutputType, nodes: Sequence[FieldNode], path: str, ident: str | None
    ) -> Any:
        if isinstance(t, GraphQLNonNull):
            if value is None:
                raise _Bad(f"{path}: null in a non-null field")
            return self.complete(value, t.of_type, nodes, path, ident)
        if value is None:
            return None
        if isinstance(t, GraphQLList):
            if not isinstance(value, list) or len(value) > 100_000:
                raise _Bad(f"{path}: not a list")
            return [self.complete(v, t.of_type, nodes, f"{path}.{i}", ident) for i, v in enumerate(value)]
        if isinstance(t, GraphQLScalarType | GraphQLEnumType):
            return _scalar(value, t, path)
        if not isinstance(t, GraphQLObjectType) or not isinstance(value, dict):
            raise _Bad(f"{path}: not an object of type {t}")
        selection = [s for n in nodes if n.selection_set for s in n.selection_set.selections]
        fields = self.walker.response_keys(SelectionSetNode(selections=tuple(selection)), t)
        out: dict[str, Any] = {}
        for key, field_nodes in fields.items():
            name = field_nodes[0].name.value
            if key not in value:
                raise _Bad(f"{path}.{key}: missing")
            if name == "__typename":
                if value[key] != t.name:
                    raise _Bad(f"{path}.{key}: not {t.name}")
                out[key] = t.name
                continue
            definition = t.fields.get(name)
            if definition is None:
                raise _Bad(f"{path}.{key}: no field {t.name}.{name}")
            out[key] = self.complete(value[key], definition.type, field_nodes, f"{path}.{key}", None)
            if name == "idNumber" and ident is not None and out[key] != ident:
                raise _Bad(f"{path}.{key}: another resident than the one asked for")
        self.dropped += [f"{path}.{k}" for k in value if k not in fields and isinstance(k, str)]
        return out


def _checked(schema: GraphQLSchema, checker: _Checker, job: _Job, answer: RemoteAnswer) -> Any:
    """The answer's value for ``job``, completed by ``checker``; None (and a failure) if it does not fit."""
    data = (answer.body or {}).get("data")
    if answer.failure or not isinstance(data, dict):
        return None
    value = data.get(job.key)
    root = schema.query_type
    definition = root.fields.get(job.name) if root is not None else None
    if definition is None:
        return None
    checker.dropped = []
    try:
        if job.positions is None:
            out = checker.complete(value, definition.type, job.nodes, job.key, job.ids[0] if job.ids else None)
        else:
            if value is not None and (not isinstance(value, list) or len(value) != len(job.ids)):
                raise _Bad(f"{job.key}: not one item per ID number asked")
            items = value or []
            t = definition.type.of_type if isinstance(definition.type, GraphQLNonNull) else definition.type
            inner = t.of_type if isinstance(t, GraphQLList) else t
            out = [
                checker.complete(v, inner, job.nodes, f"{job.key}.{i}", job.ids[i]) for i, v in enumerate(items)
            ] or None
    except _Bad as exc:
        log.warning("remote hub %s: answer refused: %s", answer.hub, exc)
        answer.failure = f"{answer.hub}: the region's hub gave an answer that does not fit the question"
        return None
    answer.dropped += checker.dropped
    for extra in (k for k in data if k != job.key and isinstance(k, str)):
        answer.dropped.append(extra)
    return out


async def delegate_unresolved(
    remotes: RemoteHubs,
    asker: Asker,
    schema: GraphQLSchema,
    document: DocumentNode,
    operation: OperationDefinitionNode,
    variables: Mapping[str, Any] | None,
    result: ExecutionResult,
) -> Delegation:
    """Ask the remote regions, on behalf of ``asker``, for the root fields that came back null here; return
    the result with what they found merged in, checked, and what the audit entry needs."""
    if not remotes or result.data is None or operation.operation is not OperationType.QUERY or asker.origin_request_id:
        return Delegation(result)
    values = with_defaults(operation, variables)
    fragments = fragments_of(document)
    local_errors = {tuple(e.path[:2]) for e in result.errors or [] if e.path}
    jobs: list[_Job] = []
    for key, nodes in Walker(fragments, values).response_keys(operation.selection_set).items():
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
        return Delegation(result)

    async def run(job: _Job, hub: RemoteHub, slot: int) -> None:
        query, sub_vars = sub_operation(operation, fragments, job.nodes, values)
        op_name = operation.name.value if operation.name else None
        job.answers[slot] = await hub.ask(query, sub_vars, op_name, asker)

    async with anyio.create_task_group() as tg:
        for job in jobs:
            job.answers = [RemoteAnswer(h.name) for h in remotes.hubs]
            for slot, hub in enumerate(remotes.hubs):
                tg.start_soon(run, job, hub, slot)

    out = Delegation(result)
    checker = _Checker(schema, fragments, values)
    data = dict(result.data)
    errors = list(result.errors or [])
    for job in jobs:
        job.values = [_checked(schema, checker, job, a) for a in job.answers]
        for a in job.answers:
            out.out_of_area += a.out_of_area
            if a.failure:
                out.failures.add(f"hub:{a.hub}")
        if job.positions is None:
            winner = next((i for i, v in enumerate(job.values) if v is not None), None)
            if winner is not None:
                data[job.key] = job.values[winner]
                errors += _remote_errors(job.answers[winner], job)
                out.found.update(job.ids)
            else:
                for a in job.answers:
                    errors += _remote_errors(a, job) or ([_unavailable(a.hub, [job.key])] if a.failure else [])
        else:
            merged = list(data[job.key])
            filled = False
            for j, pos in enumerate(job.positions):
                for a, items in zip(job.answers, job.values, strict=True):
                    if isinstance(items, list) and items[j] is not None:
                        merged[pos] = items[j]
                        errors += _remote_errors(a, job, j)
                        out.found.add(job.ids[j])
                        filled = True
                        break
            data[job.key] = merged
            if not filled:
                for a in job.answers:
                    errors += _remote_errors(a, job) or ([_unavailable(a.hub, [job.key])] if a.failure else [])
        out.remote += [a.record() for a in job.answers]
    out.result = ExecutionResult(data=data, errors=errors or None)
    return out
