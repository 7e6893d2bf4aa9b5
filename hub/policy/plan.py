"""Plan a whole operation against policy before anything executes.

Every field coordinate the document can reach (through aliases, fragments, inline fragments and
``@skip``/``@include`` alike) is looked up; one denied coordinate refuses the whole operation, and
the refusal lists every denied coordinate with its reason. Pure: document and policy in, ``Plan`` out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLObjectType,
    GraphQLSchema,
    OperationDefinitionNode,
    SelectionSetNode,
    Undefined,
    get_named_type,
    value_from_ast_untyped,
)

from hub.auth.actor import Actor
from hub.graphql_walk import Walker, with_defaults
from hub.policy.engine import allowed_thresholds, evaluate
from hub.policy.loader import CatalogEntry
from hub.policy.model import Decision, Form, PolicySet, Scope

# Metadata that is open to every authenticated client: it describes the schema, never a resident.
META_COORDINATES = frozenset({"Query.catalog"})
# Operations on the hub's own records, open only to clients holding the role; their results are metadata.
ROLE_COORDINATES = {
    "Mutation.recordAuthorization": "authorization_clerk",
    "Mutation.revokeAuthorization": "authorization_clerk",
    "Query.auditEntries": "officer",
    "Query.residentAccessReport": "officer",
    "Query.auditTreeHead": "officer",
    "Query.auditInclusionProof": "officer",
    "Query.auditConsistencyProof": "officer",
    # monitoring: alerts and the caseworker's follow-up (docs/monitoring.md); area checked in the resolvers
    "Query.alerts": "caseworker",
    "Mutation.assignAlert": "caseworker",
    "Mutation.recordVisit": "caseworker",
    "Mutation.closeAlert": "caseworker",
    "Subscription.alertCreated": "caseworker",  # over WebSocket only (hub/monitor/ws.py); area checked per alert
}
# ... and only under this purpose: an officer reads the log for oversight (AUDIT), a clerk records a household's
# authorization for a verification (VER); under any other purpose the same client is refused.
ROLE_PURPOSES = {"officer": "AUDIT", "authorization_clerk": "VER"}


@dataclass
class Plan:
    denials: list[Decision] = field(default_factory=list)
    disclosures: dict[str, Form] = field(default_factory=dict)  # coordinate -> form
    grants: set[str] = field(default_factory=set)
    scope: Scope = Scope.ALL
    # arguments of threshold predicates, e.g. {"MedicalRecord.outOfPocket12mAtLeast": {"threshold": 20000}}
    predicate_args: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def allowed(self) -> bool:
        return not self.denials


class _Planner:
    def __init__(
        self,
        schema: GraphQLSchema,
        walker: Walker,
        catalog: Mapping[str, CatalogEntry],
        policy: PolicySet,
        actor: Actor,
        purpose: str,
        today: date,
        variables: Mapping[str, Any],
    ) -> None:
        self.schema, self.walker, self.catalog = schema, walker, catalog
        self.policy, self.actor, self.purpose, self.today = policy, actor, purpose, today
        self.consumer = actor.department
        self.plan = Plan()
        self.seen: set[str] = set()
        self.restricted = False
        self.variables = variables
        self.thresholds: dict[str, set[str]] = {}

    def deny(self, coordinate: str, reason: str) -> None:
        if coordinate not in self.seen:
            self.seen.add(coordinate)
            self.plan.denials.append(Decision(False, coordinate, reason))

    def threshold_refusal(self, coordinate: str, form: Form, args: Mapping[str, Any]) -> str | None:
        """Why the thresholds asked are refused, or None. A grant lists the thresholds a predicate may be asked
        with (the law's fixed figures), so a consumer learns at most log2(len(list) + 1) bits of the value,
        never the value itself by bisection."""
        allowed = allowed_thresholds(self.policy, self.consumer, self.purpose, coordinate, form, self.today)
        shown = ", ".join(f"{t:,}" for t in allowed) or "none"
        for name, asked in sorted(args.items()):
            if not isinstance(asked, int) or isinstance(asked, bool) or asked not in allowed:
                value = f"{asked:,}" if isinstance(asked, int) and not isinstance(asked, bool) else "(not a number)"
                return f"{name} {value} is not one the grant allows for {coordinate} (allowed: {shown})"
        return None

    def walk(self, selection_set: SelectionSetNode, parent: GraphQLObjectType, stack: frozenset[str]) -> int:
        """Check every field under ``selection_set``; return how many data fields it selects."""
        data_fields = 0
        for reached in self.walker.fields(selection_set, parent, stack):
            assert isinstance(reached.node, FieldNode) and reached.parent is not None
            data_fields += self.field(reached.node, reached.parent, reached.stack)
        return data_fields

    def field(self, node: FieldNode, parent: GraphQLObjectType, stack: frozenset[str]) -> int:
        name = node.name.value
        if name == "__typename":
            return 0
        coordinate = f"{parent.name}.{name}"
        if name.startswith("__"):
            return 0  # introspection: allowed or refused as a whole by the introspection setting
        gfield = parent.fields.get(name)
        if gfield is None:
            self.deny(coordinate, "no such field")
            return 0
        role = ROLE_COORDINATES.get(coordinate)
        if role is not None and not self.actor.has_role(role):
            self.deny(coordinate, f"requires the {role} role")
            return 0
        if role is not None and self.purpose != ROLE_PURPOSES.get(role, self.purpose):
            self.deny(coordinate, f"requires purpose {ROLE_PURPOSES[role]}")
            return 0
        if coordinate in META_COORDINATES or role is not None:
            return 0  # metadata or the hub's own records: nothing beneath describes a resident
        entry = self.catalog.get(coordinate)
        if entry is not None:
            decision = evaluate(self.policy, self.consumer, self.purpose, coordinate, entry.form, self.today)
            if entry.form is Form.PREDICATE and node.arguments:
                # One threshold per predicate and request: many aliased thresholds would bisect the raw value.
                args = {a.name.value: value_from_ast_untyped(a.value, dict(self.variables)) for a in node.arguments}
                args = {k: None if v is Undefined else v for k, v in args.items()}  # a variable given no value
                asked = self.thresholds.setdefault(coordinate, set())
                asked.add(repr(sorted(args.items())))
                self.plan.predicate_args[coordinate] = args
                if len(asked) > 1:
                    self.deny(coordinate, f"a predicate may be asked with one threshold per request, not {len(asked)}")
                    return 1
            if decision.allowed and decision.rule is not None and entry.arguments:
                refused = self.threshold_refusal(coordinate, entry.form, self.plan.predicate_args.get(coordinate, {}))
                if refused:
                    self.deny(coordinate, refused)
                    return 1
            if decision.allowed and decision.rule is not None:
                self.plan.disclosures[coordinate] = entry.form
                self.plan.grants.add(decision.rule.grant_id)
                if decision.rule.scope is Scope.JURISDICTION:
                    self.restricted = True
            else:
                self.deny(coordinate, decision.reason)
            return 1
        target = get_named_type(gfield.type)
        if node.selection_set is None or not isinstance(target, GraphQLObjectType):
            self.deny(coordinate, "field declares no disclosure form")
            return 0
        inner = self.walk(node.selection_set, target, stack)
        if inner == 0:
            self.deny(coordinate, "selects no data field; add at least one granted field beneath it")
        return inner


def plan_operation(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation: OperationDefinitionNode,
    catalog: Mapping[str, CatalogEntry],
    policy: PolicySet,
    actor: Actor,
    purpose: str,
    today: date,
    variables: Mapping[str, Any] | None = None,
) -> Plan:
    given = with_defaults(operation, variables)  # a default counts where the variable is not given
    # every branch, whatever @skip/@include say: a coordinate the document can reach is checked
    planner = _Planner(schema, Walker.of(document, schema=schema), catalog, policy, actor, purpose, today, given)
    root = schema.get_root_type(operation.operation)
    if root is None:
        planner.deny(operation.operation.value, "operation type not supported")
    else:
        planner.walk(operation.selection_set, root, frozenset())
    planner.plan.scope = Scope.JURISDICTION if planner.restricted else Scope.ALL
    return planner.plan
