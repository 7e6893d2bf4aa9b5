"""Who asks across a hop between hubs: the calling hub's request id, its consumer (headers believed only from a
client holding role ``hub``), and the narrower plan of both (docs/federation.md)."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.datastructures import Headers

from hub.errors import RequestError
from hub.policy.model import Scope

if TYPE_CHECKING:
    from hub.auth.actor import Actor
    from hub.policy.plan import Plan

HUB_ROLE = "hub"
ORIGIN_HEADER = "x-hub-origin-request-id"


def origin_request_id(headers: Headers, actor: Actor | None) -> str:
    """The calling hub's request id, kept only for clients registered with role ``hub`` (for anyone else the
    header would be an unverified claim to be a cross-region request, so it is ignored)."""
    value = headers.get(ORIGIN_HEADER, "").strip()
    if not value or actor is None or not actor.has_role(HUB_ROLE):
        return ""
    if len(value) > 64 or not all(ch.isascii() and (ch.isalnum() or ch in "-_") for ch in value):
        return ""
    return value


# -- the original consumer, carried across the hop ------------------------------------------------------------

CONSUMER_CLIENT = "x-hub-consumer-client"
CONSUMER_DEPARTMENT = "x-hub-consumer-department"
CONSUMER_AREA = "x-hub-consumer-area"  # the consumer's effective row scope at the calling hub; "*": none
NO_AREA = "-"  # an area prefix no resident's area code starts with (disjoint jurisdictions)
_CLIENT_RE = re.compile(r"^[A-Za-z0-9._-]{1,80}$")
_DEPARTMENT_RE = re.compile(r"^[a-z][a-z_]{0,39}$")
_AREA_RE = re.compile(r"^(\*|[0-9]{2,12})$")


@dataclass(frozen=True)
class Consumer:
    """The consumer at the calling hub on whose behalf a hub client asks (headers sent by the calling hub,
    believed only from a client holding role ``hub``, as ``origin_request_id``)."""

    client_id: str
    department: str
    area: str  # "" when the calling hub applied no row scope to it

    def narrowed(self, actor: Actor) -> Actor:
        """The hub client with the narrower of both jurisdictions (``NO_AREA`` if they do not overlap)."""
        return dataclasses.replace(actor, area=narrower_area(actor.area, self.area))

    def as_actor(self, actor: Actor) -> Actor:
        """The consumer planned under this hub's policies (its department, the narrowed area)."""
        return dataclasses.replace(
            actor, client_id=self.client_id, department=self.department, area=narrower_area(actor.area, self.area)
        )


def narrower_area(hub_area: str, consumer_area: str) -> str:
    if not consumer_area or consumer_area.startswith(hub_area):
        return consumer_area or hub_area
    if hub_area.startswith(consumer_area):
        return hub_area
    return NO_AREA


def on_behalf_of(headers: Headers, origin: str) -> Consumer | None:
    """The original consumer of a request forwarded by another hub (``origin``: its request id, already
    checked to come from a ``hub`` client); None for any other request. Malformed headers are refused."""
    if not origin:
        return None
    client = headers.get(CONSUMER_CLIENT, "").strip()
    department = headers.get(CONSUMER_DEPARTMENT, "").strip()
    area = headers.get(CONSUMER_AREA, "").strip()
    if not (client or department or area):
        return None
    if not (_CLIENT_RE.match(client) and _DEPARTMENT_RE.match(department) and _AREA_RE.match(area)):
        raise RequestError(
            "X-Hub-Consumer-Client, -Department and -Area must name the calling hub's consumer", code="BAD_HEADER"
        )
    return Consumer(client, department, "" if area == "*" else area)


def narrow_plan(plan: Plan, consumer_plan: Plan | None, consumer: Consumer) -> Plan:
    """A field is disclosed only if both the hub client's and the consumer's department are granted it; the
    row scope is the consumer's jurisdiction narrowed by the hub client's whenever either is limited."""
    if consumer_plan is not None:
        seen = {d.coordinate for d in plan.denials}
        plan.denials = plan.denials + [d for d in consumer_plan.denials if d.coordinate not in seen]
        if consumer_plan.scope is Scope.JURISDICTION:
            plan.scope = Scope.JURISDICTION
    if consumer.area:
        plan.scope = Scope.JURISDICTION
    return plan


@dataclass(frozen=True)
class Asker:
    """On whose behalf this hub asks the remote regions: its request, the consumer (``actor``), officer, purpose
    and case, and the consumer's row scope here (``area``, None for none). ``origin_request_id`` is set when
    this request itself came from a hub: it is then never forwarded again (one hop, no loops)."""

    request_id: str
    actor: Actor | None
    officer: str
    purpose: str
    case_ref: str = ""
    area: str | None = None
    origin_request_id: str = ""

    def headers(self) -> dict[str, str]:
        out = {"x-hub-purpose": self.purpose, "x-hub-officer": self.officer, ORIGIN_HEADER: self.request_id}
        if self.case_ref:
            out["x-hub-case"] = self.case_ref
        if self.actor is not None:
            out[CONSUMER_CLIENT] = self.actor.client_id
            out[CONSUMER_DEPARTMENT] = self.actor.department
            out[CONSUMER_AREA] = self.area or "*"
        return out
