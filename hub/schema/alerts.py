"""Alerts in GraphQL: the street office's list and the caseworker's follow-up (docs/monitoring.md).

Open to clients with the ``caseworker`` role (checked by the planner, and again here). An office sees only alerts
whose area code lies inside its jurisdiction; another office's alert is "not found", exactly like one that does not
exist. The alert id is the case reference: recording a visit or closing an alert needs purpose CASE with
``X-Hub-Case`` set to that id, so the resident's access report shows the whole chain under one reference.
Every alert returned or changed names its resident in the request's audit entry (as a pseudonym).
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from datetime import date, datetime
from typing import Annotated

import strawberry
from strawberry.types import Info

from hub.errors import ForbiddenError, HubError, RequestError
from hub.monitor.alerts import Alert, AlertStore, facts
from hub.schema.context import HubContext, ctx

ROLE = "caseworker"


@strawberry.type(description="A condition of the rule that held, with the answer in the form it was disclosed.")
class MatchedCondition:
    coordinate: str
    form: str
    condition: str
    value: str = strawberry.field(description="The answer, JSON-encoded (true, a band, a count).")


@strawberry.type(description="An assistance programme the alert suggests, why, and an estimated monthly amount.")
class SuggestedProgramme:
    id: str
    name_zh: str
    name_en: str
    legal_basis: str
    reason: str
    monthly_amount: int | None = strawberry.field(description="Estimated yuan per month; null for services.")
    amount_basis: str


@strawberry.type(description="One step in an alert's history.")
class AlertStep:
    at: str
    actor: str
    action: str
    detail: str


@strawberry.type(name="Alert", description="A monitoring alert (预警): who may need help, why, and what may apply.")
class AlertNode:
    id: str = strawberry.field(description="Also the case reference (X-Hub-Case) for follow-up queries.")
    rule_id: str = strawberry.field(description="The monitoring rule (policies/monitoring/<rule>.toml).")
    id_number: str
    area_code: str
    area_name: str = strawberry.field(description="The street office (街道) the alert goes to.")
    source: str = strawberry.field(description="department:seq of the change event, or sweep.")
    event_kind: str
    occurred_on: date
    matched: list[MatchedCondition]
    programmes: list[SuggestedProgramme]
    estimated_monthly: int = strawberry.field(description="Sum of the suggested programmes' estimates, yuan.")
    created_at: datetime
    due_on: date = strawberry.field(description="Visit due by this date (working days, Chinese calendar).")
    status: str = strawberry.field(description="new, assigned, visited or closed.")
    assigned_to: str
    disposition: str = strawberry.field(description="enrolled, referred, no_need or false_positive once closed.")
    history: list[AlertStep]


@strawberry.input(description="Filters; all optional and combined with AND.")
class AlertFilter:
    status: str | None = None
    rule_id: str | None = None
    id_number: str | None = None


@strawberry.type
class AlertPage:
    alerts: list[AlertNode]
    has_more: bool
    end_cursor: str | None = strawberry.field(description="Pass as `after` for the next page.")


def _node(c: HubContext, a: Alert) -> AlertNode:
    c.subjects.add(a.id_number)  # the request's audit entry names the resident (as a pseudonym)
    return AlertNode(
        **facts(a),
        matched=[
            MatchedCondition(
                coordinate=m["coordinate"],
                form=m["form"],
                condition=m["condition"],
                value=json.dumps(m["value"], ensure_ascii=False),
            )
            for m in a.matched
        ],
        programmes=[
            SuggestedProgramme(
                id=p["id"],
                name_zh=p["name_zh"],
                name_en=p["name_en"],
                legal_basis=p["legal_basis"],
                reason=p["reason"],
                monthly_amount=p["monthly_amount"],
                amount_basis=p["amount_basis"],
            )
            for p in a.programmes
        ],
        estimated_monthly=a.estimated_monthly,
        created_at=a.created_at,
        due_on=a.due_on,
        status=a.status,
        assigned_to=a.assigned_to,
        disposition=a.disposition,
        history=[AlertStep(**h) for h in a.history],
    )


def _store(info: Info) -> tuple[HubContext, AlertStore]:
    c = ctx(info)
    if not c.actor.has_role(ROLE):
        raise ForbiddenError("only caseworkers may read or change alerts", code="ROLE_REQUIRED")
    if c.alerts is None:
        raise HubError("no alert store is configured", code="INTERNAL_ERROR")
    store: AlertStore = c.alerts
    return c, store


def _mine(c: HubContext, store: AlertStore, alert_id: str) -> Alert:
    a = store.get(alert_id)
    if a is None or not a.area_code.startswith(c.actor.area):
        raise HubError(f"no alert {alert_id} in your area", code="NOT_FOUND")
    return a


def _follow_up(c: HubContext, alert_id: str) -> None:
    if c.purpose.id != "CASE" or c.case_ref != alert_id:
        raise ForbiddenError(
            "a visit or a disposition is recorded under purpose CASE with the alert id as X-Hub-Case",
            code="CASE_REQUIRED",
        )


async def alerts(
    info: Info,
    filter: AlertFilter | None = None,
    first: int = 50,
    after: Annotated[str | None, strawberry.argument(description="endCursor of the previous page.")] = None,
) -> AlertPage:
    c, store = _store(info)
    if not 1 <= first <= 500:
        raise RequestError("first: from 1 to 500", code="BAD_ARGUMENT")
    f = filter or AlertFilter()
    found, more = store.page(
        c.actor.area, after=after, first=first, status=f.status, rule_id=f.rule_id, id_number=f.id_number
    )
    nodes = [_node(c, a) for a in found]
    return AlertPage(alerts=nodes, has_more=more, end_cursor=nodes[-1].id if nodes else after)


def _actor(c: HubContext) -> str:
    return f"{c.actor.client_id}/{c.officer}"


@strawberry.type
class AlertMutations:
    @strawberry.mutation(description="Caseworkers: assign an alert in your area to a caseworker.")
    async def assign_alert(self, info: Info, id: str, assignee: str) -> AlertNode:
        c, store = _store(info)
        _mine(c, store, id)
        return _node(c, store.transition(id, "assign", _actor(c), assignee=assignee))

    @strawberry.mutation(description="Caseworkers: record the home visit (purpose CASE, X-Hub-Case = the alert id).")
    async def record_visit(self, info: Info, id: str, note: str = "") -> AlertNode:
        c, store = _store(info)
        _mine(c, store, id)
        _follow_up(c, id)
        return _node(c, store.transition(id, "visit", _actor(c), note=note))

    @strawberry.mutation(
        description="Caseworkers: close an alert with a disposition: enrolled, referred, no_need, false_positive."
    )
    async def close_alert(self, info: Info, id: str, disposition: str, note: str = "") -> AlertNode:
        c, store = _store(info)
        _mine(c, store, id)
        _follow_up(c, id)
        return _node(c, store.transition(id, "close", _actor(c), disposition=disposition, note=note))


@strawberry.type(name="Subscription")
class AlertSubscription:
    @strawberry.subscription(description="Caseworkers: each new alert in your area (docs/monitoring.md).")
    async def alert_created(
        self,
        info: Info,
        after: Annotated[
            str | None,
            strawberry.argument(description="Resume after this alert id (at least once); default: from now."),
        ] = None,
    ) -> AsyncGenerator[AlertNode, None]:
        """New alerts in the caller's area, as they are created (graphql-transport-ws at /graphql, purpose MON)."""
        c, _ = _store(info)
        if c.alert_feed is None:
            raise RequestError(
                "subscriptions are served over WebSocket at /graphql (graphql-transport-ws)", code="BAD_REQUEST"
            )
        async for a in c.alert_feed.alerts(after):  # re-authenticates the caller before each alert
            if not a.area_code.startswith(c.alert_feed.area):  # the caller's area, checked on every alert
                continue
            c.subjects.clear()
            yield _node(c, a)
