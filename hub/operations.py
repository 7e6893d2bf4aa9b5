"""Approved operations (persisted documents, docs/operations.md).

A consumer submits the operations it needs, a privacy officer approves them, and the hub runs only approved
operations for clients switched to ``require``:

* ``OperationDesk``: submitting, approving, retiring and switching a client's mode, each an audit entry. At
  approval the document is planned against the policies for that consumer and purpose (with the variables'
  defaults); one that would be denied cannot be approved. The plan still runs on every request, since policies
  change and the variables differ.
* ``document_for_request``: the gateway's step. It resolves ``documentId: "sha256:<hex>"`` (GraphQL over HTTP,
  persisted documents) and Apollo's ``extensions.persistedQuery.sha256Hash`` to an approved text, and applies the
  client's mode to a query sent as text: ``off`` runs it, ``log`` runs it and logs that it is not approved,
  ``require`` refuses it with ``OPERATION_NOT_APPROVED``. A document is never stored because a client sent it:
  submitting is a deliberate act (``hub operations submit``)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

import anyio
from graphql import DocumentNode, GraphQLError, GraphQLSchema, OperationDefinitionNode, parse, specified_rules, validate
from graphql.validation import NoSchemaIntrospectionCustomRule

from hub.auth.actor import Actor
from hub.errors import ForbiddenError, RequestError
from hub.policy.loader import CatalogEntry
from hub.policy.model import PolicySet
from hub.policy.plan import plan_operation
from hub.store.clients import ClientStore
from hub.store.operations import DOCUMENT_ID, Operation, OperationStore, document_id

if TYPE_CHECKING:
    from hub.metrics import Metrics

Catalog = Mapping[str, CatalogEntry]

log = logging.getLogger("hub.operations")

MAX_TOKENS = 10_000  # a submitted document is parsed with this token cap (requests still have HUB_MAX_TOKENS)


@dataclass(frozen=True)
class DocumentRef:
    """How a request named a stored document: ``documentId`` (``sha256:<hex>``) or Apollo's ``sha256Hash``."""

    document_id: str
    apollo: bool = False


def document_ref(payload: dict[str, Any]) -> DocumentRef | None:
    """The stored document a request body names, if any (``BAD_DOCUMENT_ID`` if it names one badly)."""
    if "documentId" in payload:
        ref = payload["documentId"]
        if not isinstance(ref, str) or not DOCUMENT_ID.match(ref):
            raise RequestError("'documentId' must be \"sha256:\" and 64 lowercase hex digits", code="BAD_DOCUMENT_ID")
        return DocumentRef(ref)
    extensions = payload.get("extensions")
    persisted = extensions.get("persistedQuery") if isinstance(extensions, dict) else None
    if persisted is None:
        return None
    digest = persisted.get("sha256Hash") if isinstance(persisted, dict) else None
    if not isinstance(digest, str) or not DOCUMENT_ID.match("sha256:" + digest):
        raise RequestError(
            "'extensions.persistedQuery.sha256Hash' must be 64 lowercase hex digits", code="BAD_DOCUMENT_ID"
        )
    return DocumentRef("sha256:" + digest, apollo=True)


async def document_for_request(
    store: OperationStore, metrics: Metrics, actor: Actor, purpose: str, query: str | None, ref: DocumentRef | None
) -> str:
    """The query text to run for this request (see the module's docstring); ``metrics`` counts the unapproved
    documents run."""
    if ref is not None:
        if query is not None and document_id(query) != ref.document_id:
            raise RequestError("the query sent is not the document its identifier names", code="BAD_DOCUMENT_ID")
        text = await anyio.to_thread.run_sync(store.approved_text, actor.client_id, purpose, ref.document_id)
        if text is None:
            raise RequestError(
                f"no approved document {ref.document_id} for this client and purpose {purpose}",
                code="PERSISTED_QUERY_NOT_FOUND",
            )
        return text
    assert query is not None
    mode = await store.amode(actor.client_id)
    if mode == "off":
        return query
    doc = document_id(query)
    if await anyio.to_thread.run_sync(store.approved_text, actor.client_id, purpose, doc) is not None:
        return query
    metrics.unapproved.labels(actor.department, purpose, mode).inc()
    if mode == "log":
        log.warning("client %s ran a document not approved for purpose %s: %s", actor.client_id, purpose, doc)
        return query
    raise ForbiddenError(
        f"client {actor.client_id} runs only approved documents; {doc} is not approved for purpose {purpose}",
        code="OPERATION_NOT_APPROVED",
        details={"documentId": doc},
    )


def document_problems(graphql_schema: GraphQLSchema, text: str) -> tuple[DocumentNode | None, list[str]]:
    """The parsed document and why it is not a valid document for the hub's schema (empty when it is)."""
    try:
        document = parse(text, max_tokens=MAX_TOKENS)
    except GraphQLError as exc:
        return None, [f"syntax error: {exc.message}"]
    errors = validate(graphql_schema, document, [*specified_rules, NoSchemaIntrospectionCustomRule], max_errors=10)
    return document, [e.message for e in errors]


def plan_refusals(
    graphql_schema: GraphQLSchema,
    catalog: Catalog,
    policy: PolicySet,
    actor: Actor,
    purpose: str,
    text: str,
    today: date,
) -> list[str]:
    """Why ``text`` cannot be approved for this consumer and purpose: syntax, validation, or each coordinate the
    policy plan denies (``"TaxRecord.incomeBand: no grant ..."``). Empty when it can be."""
    document, problems = document_problems(graphql_schema, text)
    if document is None or problems:
        return problems
    refusals: list[str] = []
    for operation in (d for d in document.definitions if isinstance(d, OperationDefinitionNode)):
        plan = plan_operation(graphql_schema, document, operation, catalog, policy, actor, purpose, today, {})
        refusals += [f"{d.coordinate}: {d.reason}" for d in plan.denials]
    return refusals


class OperationDesk:
    """Submit, approve, retire, switch modes: each an audit entry (``route: "operations"``)."""

    def __init__(
        self,
        store: OperationStore,
        clients: ClientStore,
        graphql_schema: GraphQLSchema,
        catalog: Catalog,
        policy: PolicySet,
        record: Callable[[dict[str, Any]], object],
        blank_entry: Callable[[], dict[str, Any]],
        today: Callable[[], date],
    ) -> None:
        self.store, self.clients = store, clients
        self.graphql_schema, self.catalog, self.policy = graphql_schema, catalog, policy
        self.record, self.blank_entry, self.today = record, blank_entry, today

    def _actor(self, client_id: str, purpose: str | None = None) -> Actor:
        client = self.clients.get(client_id)
        if client is None:
            raise RequestError(f"no client {client_id}", code="BAD_ARGUMENT")
        if purpose is not None and purpose not in client.purposes:
            raise RequestError(f"client {client_id} is not registered for purpose {purpose}", code="BAD_ARGUMENT")
        return Actor(client.client_id, client.department, client.area, client.purposes, client.roles, token_id="")

    def submit(self, client_id: str, purpose: str, text: str, by: str) -> Operation:
        actor = self._actor(client_id, purpose)
        _, problems = document_problems(self.graphql_schema, text)  # the policies are asked at approval
        if problems:
            raise RequestError("; ".join(problems[:5]), code="OPERATION_REFUSED")
        op = self.store.submit(client_id, purpose, text, by)
        self._audit("submit", op, actor, by)
        return op

    def approve(self, doc: str, client_id: str, purpose: str, by: str) -> Operation:
        actor = self._actor(client_id, purpose)
        op = self.store.get(doc, client_id, purpose)
        if op is not None and op.status == "pending":
            refusals = plan_refusals(
                self.graphql_schema, self.catalog, self.policy, actor, purpose, op.text, self.today()
            )
            if refusals:
                self._audit("approve", op, actor, by, decision="deny", reasons=refusals)
                raise ForbiddenError(
                    f"{doc} would be denied to {actor.department} for purpose {purpose}: " + "; ".join(refusals[:10]),
                    code="OPERATION_REFUSED",
                    details={"refusals": refusals},
                )
        op = self.store.approve(doc, client_id, purpose, by)  # OPERATION_STATE if unknown or not pending
        self._audit("approve", op, actor, by)
        return op

    def retire(self, doc: str, client_id: str, purpose: str, by: str) -> Operation:
        actor = self._actor(client_id)
        op = self.store.retire(doc, client_id, purpose, by)
        self._audit("retire", op, actor, by)
        return op

    def set_mode(self, client_id: str, mode: str, by: str) -> None:
        actor = self._actor(client_id)
        self.store.set_mode(client_id, mode)
        self.record(self._body(actor, by, "", "allow", [f"OPERATIONS_MODE_{mode.upper()}"], {"action": "mode"}))

    def _audit(
        self,
        action: str,
        op: Operation,
        actor: Actor,
        by: str,
        decision: str = "allow",
        reasons: list[str] | None = None,
    ) -> None:
        operation = {"action": action, "document_id": op.document_id, "status": op.status}
        self.record(self._body(actor, by, op.purpose, decision, reasons or [], operation))

    def _body(
        self, actor: Actor, by: str, purpose: str, decision: str, reasons: list[str], operation: dict[str, str]
    ) -> dict[str, Any]:
        body = self.blank_entry()  # an audit entry (format v2) with nothing in it yet
        body.update(officer=by, purpose=purpose, decision=decision, reasons=reasons, route="operations")
        body.update(client_id=actor.client_id, department=actor.department, area=actor.area, operation=operation)
        return body
