"""Assemble the strawberry schema and derive the field catalog from its ``@disclosure`` directives."""

from __future__ import annotations

import strawberry
from graphql import GraphQLObjectType, GraphQLSchema
from strawberry.schema.config import StrawberryConfig
from strawberry.types import Info

from hub.errors import RequestError
from hub.ids import id_problem
from hub.policy.loader import CatalogEntry
from hub.policy.model import Form
from hub.schema.alerts import AlertPage, AlertSubscription, alerts
from hub.schema.context import ctx
from hub.schema.directives import Disclosure
from hub.schema.oversight import (
    AccessRecord,
    AuditPage,
    ConsistencyProof,
    InclusionProof,
    SignedTreeHead,
    audit_consistency_proof,
    audit_entries,
    audit_inclusion_proof,
    audit_tree_head,
    resident_access_report,
)
from hub.schema.people import Household, IdNumber, Person, load_household, load_people
from hub.schema.statistics import Statistics, statistics


def check_id(value: str, where: str) -> None:
    problem = id_problem(value)
    if problem:
        raise RequestError(f"{where}: {problem}", code="BAD_ID_NUMBER")


@strawberry.type(description="One disclosed field coordinate: who provides it and in which form.")
class CatalogField:
    coordinate: str = strawberry.field(description="Type.field, as named in policies.")
    provider: str = strawberry.field(description="Provider department code.")
    form: Form = strawberry.field(description="The form in which this field discloses its value.")
    description: str


@strawberry.type(description="Entry points. Every field below a root is checked against policy before execution.")
class Query:
    @strawberry.field(description="One resident by ID number; null when not found or outside your jurisdiction.")
    async def person(self, info: Info, id_number: IdNumber) -> Person | None:
        check_id(id_number, "idNumber")
        return (await load_people(ctx(info), info, [id_number]))[0]

    @strawberry.field(description="Several residents by ID number (at most the configured batch size), in order.")
    async def people(self, info: Info, id_numbers: list[str]) -> list[Person | None]:
        c = ctx(info)
        if len(id_numbers) > c.max_batch:
            raise RequestError(
                f"idNumbers: at most {c.max_batch} per request, got {len(id_numbers)}", code="BATCH_TOO_LARGE"
            )
        for i, v in enumerate(id_numbers):
            check_id(v, f"idNumbers[{i}]")
        return await load_people(c, info, id_numbers)

    @strawberry.field(description="One household by household id; null when not found or outside your jurisdiction.")
    async def household(self, info: Info, household_id: str) -> Household | None:
        if not 1 <= len(household_id) <= 20 or not household_id.isalnum():
            raise RequestError("householdId: 1 to 20 letters or digits", code="BAD_ARGUMENT")
        return await load_household(ctx(info), info, household_id)

    statistics: Statistics | None = strawberry.field(
        resolver=statistics, description="Aggregates for one area within your jurisdiction (cells < 10 suppressed)."
    )
    audit_entries: AuditPage = strawberry.field(
        resolver=audit_entries, description="Privacy officers only: search the audit log."
    )
    resident_access_report: list[AccessRecord] = strawberry.field(
        resolver=resident_access_report,
        description="Privacy officers only: every access to one resident's data (when, who, why, which fields).",
    )

    audit_tree_head: SignedTreeHead | None = strawberry.field(
        resolver=audit_tree_head,
        description="Privacy officers only: the latest signed tree head (signNow: sign one over the log first).",
    )
    audit_inclusion_proof: InclusionProof = strawberry.field(
        resolver=audit_inclusion_proof, description="Privacy officers only: RFC 9162 inclusion proof of an entry."
    )
    audit_consistency_proof: ConsistencyProof = strawberry.field(
        resolver=audit_consistency_proof,
        description="Privacy officers only: RFC 9162 consistency proof between two signed tree sizes.",
    )

    alerts: AlertPage = strawberry.field(
        resolver=alerts, description="Caseworkers: monitoring alerts in your area, oldest first (docs/monitoring.md)."
    )

    @strawberry.field(description="The catalog of disclosed fields (metadata only; no resident data).")
    def catalog(self, info: Info) -> list[CatalogField]:
        cat: dict[str, CatalogEntry] = info.context.catalog
        return [
            CatalogField(coordinate=e.coordinate, provider=e.provider, form=e.form, description=e.description)
            for e in cat.values()
        ]


def build_schema() -> strawberry.Schema:
    from hub.schema.mutations import Mutation

    return strawberry.Schema(
        query=Query,
        mutation=Mutation,
        subscription=AlertSubscription,
        config=StrawberryConfig(disable_field_suggestions=True),
    )


def graphql_schema(schema: strawberry.Schema) -> GraphQLSchema:
    """graphql-core's schema under the strawberry one (strawberry keeps it as ``_schema``, with no public name:
    this is the one place that reads it)."""
    return schema._schema


def catalog_of(schema: strawberry.Schema) -> dict[str, CatalogEntry]:
    """Every field carrying ``@disclosure``, keyed by coordinate ``Type.field``."""
    out: dict[str, CatalogEntry] = {}
    for type_name, gtype in sorted(graphql_schema(schema).type_map.items()):
        if not isinstance(gtype, GraphQLObjectType) or type_name.startswith("__"):
            continue
        for field_name, gfield in gtype.fields.items():
            definition = (gfield.extensions or {}).get("strawberry-definition")
            for directive in getattr(definition, "directives", None) or ():
                if isinstance(directive, Disclosure):
                    form = directive.form if isinstance(directive.form, Form) else Form(directive.form)
                    coordinate = f"{type_name}.{field_name}"
                    out[coordinate] = CatalogEntry(
                        coordinate, directive.provider, form, gfield.description or "", tuple(gfield.args)
                    )
    return out
