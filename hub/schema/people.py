"""``Person`` and ``Household`` (public security household registration) and their department records."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import date
from typing import Annotated, Any

import strawberry
from sqlalchemy import ColumnElement
from strawberry.types import Info
from strawberry.utils.str_converters import to_camel_case

from hub.departments import households, residents
from hub.errors import UpstreamUnavailable
from hub.policy import forms
from hub.policy.model import Form
from hub.schema import departments as d
from hub.schema.context import HubContext, ctx
from hub.schema.directives import disclosed
from hub.schema.records import build, build_one, record_selections, row_fields, value

PS = "public_security"


def resident_scope(c: HubContext) -> tuple[ColumnElement[bool] | None, str]:
    if c.area_prefix is None:
        return None, ""
    return residents.c.area_code.startswith(c.area_prefix, autoescape=True), c.area_prefix


def household_scope(c: HubContext) -> tuple[ColumnElement[bool] | None, str]:
    if c.area_prefix is None:
        return None, ""
    return households.c.area_code.startswith(c.area_prefix, autoescape=True), c.area_prefix


async def load_people(c: HubContext, info: Info, id_numbers: Sequence[str]) -> list[Person | None]:
    """Residents by ID number, in order (None where not found or outside the caller's area), each with the
    department records the query selects below it."""
    where, name = resident_scope(c)
    found = await c.rows_many(PS, residents, "id_number", id_numbers, where, name)
    rows = []
    for id_number, rs in zip(id_numbers, found, strict=True):
        if rs:
            c.subjects.add(id_number)
            rows.append(rs[0])
        else:
            c.not_found.add(id_number)
    people = iter(await people_from_rows(c, info, rows))
    return [next(people) if rs else None for rs in found]


async def load_household(c: HubContext, household_id: str) -> Household | None:
    where, name = household_scope(c)
    rows = await c.rows(PS, households, "household_id", household_id, where, name)
    return build_one(Household, rows[0]) if rows else None


def _structural(description: str) -> Any:
    return strawberry.field(description=description)


def _record(description: str) -> Any:
    """A department record below ``Person``: an attribute set by ``people_from_rows``."""
    return strawberry.field(description=description, default=None)


@strawberry.type(
    description="A resident, keyed by 18-digit ID number. Identity fields come from public security household "
    "registration (公安户籍); each other department contributes a record object."
)
class Person:
    row: strawberry.Private[Any]

    id_number: str = value(Form.RAW, PS, "18-digit resident ID number.", lambda r: str(r.id_number))
    id_number_masked: str = value(
        Form.MASKED, PS, "ID number masked to the first 6 and last 4 characters.", lambda r: forms.mask_id(r.id_number)
    )
    name: str = value(Form.RAW, PS, "Full name.", lambda r: str(r.name))
    name_masked: str = value(Form.MASKED, PS, "Name masked to the surname.", lambda r: forms.mask_name(r.name))
    sex: str = value(Form.RAW, PS, "Sex: male or female.", lambda r: str(r.sex))
    birth_date: date = value(Form.RAW, PS, "Date of birth.", lambda r: r.dob)
    area_code: str = value(
        Form.RAW, PS, "Area code (GB/T 2260) of the household registration.", lambda r: str(r.area_code)
    )
    hukou_address: str = value(Form.RAW, PS, "Household-registration address.", lambda r: str(r.hukou_addr))
    relation_to_head: str = value(
        Form.RAW,
        PS,
        "Relation to the head: 01 head, 02 spouse, 03 child, 04 parent, 05 grandchild, 09 other.",
        lambda r: str(r.relation_code),
    )
    status: str = value(Form.RAW, PS, "Registration status: normal, deceased or moved.", lambda r: str(r.status))
    is_deceased: bool = value(
        Form.PREDICATE, PS, "Whether the resident is registered as deceased.", lambda r: bool(r.status == "deceased")
    )

    @_structural("The household (共同生活家庭) this resident is registered in.")
    async def household(self, info: Info) -> Household | None:
        return await load_household(ctx(info), self.row.household_id)

    civil_affairs: d.CivilAffairsRecord | None = _record("Civil affairs (民政) assistance record.")
    disability: d.DisabilityRecord | None = _record("Disabled Persons' Federation (残联) certificate.")
    medical: d.MedicalRecord | None = _record("Medical security (医保) record.")
    employment: d.EmploymentRecord | None = _record("Human resources and social security (人社) record.")
    tax: d.TaxRecord | None = _record("Tax (税务) record.")
    real_estate: d.RealEstateRecord | None = _record("Real estate registration (不动产登记) record.")
    vehicles: d.VehicleRecord | None = _record("Vehicles (公安交管) record.")
    business: d.BusinessRecord | None = _record("Market regulation (市场监管) record.")
    provident_fund: d.ProvidentFundRecord | None = _record("Housing provident fund (住房公积金) record.")
    education: d.EducationRecord | None = _record("Education (教育) record.")


# Person's record fields: GraphQL name -> (attribute, record type)
RECORD_FIELDS: dict[str, tuple[str, type]] = {
    to_camel_case(attr): (attr, cls)
    for attr, cls in [
        ("civil_affairs", d.CivilAffairsRecord),
        ("disability", d.DisabilityRecord),
        ("medical", d.MedicalRecord),
        ("employment", d.EmploymentRecord),
        ("tax", d.TaxRecord),
        ("real_estate", d.RealEstateRecord),
        ("vehicles", d.VehicleRecord),
        ("business", d.BusinessRecord),
        ("provident_fund", d.ProvidentFundRecord),
        ("education", d.EducationRecord),
    ]
}


async def people_from_rows(c: HubContext, info: Info, rows: Sequence[Any]) -> list[Person]:
    """``Person`` objects for public-security rows, with the department records selected below ``info``'s
    field attached. Per department: one authorization lookup and (only if a field computed from its rows is
    selected) one batched load for all the residents at once. A record refused (no household authorization)
    or unavailable (the department is down) holds the error, which graphql-core reports at that record's path."""
    wanted = record_selections(c.selections, info, RECORD_FIELDS)

    async def records(gql_name: str, selected: frozenset[str]) -> tuple[str, list[Any]]:
        attr, cls = RECORD_FIELDS[gql_name]
        provider, table = d.RECORD_TABLES[cls]
        refused = await c.authorization_errors([r.household_id for r in rows], provider)
        allowed = [r.id_number for r, e in zip(rows, refused, strict=True) if e is None]
        loaded: dict[str, list[Any]] | None = None
        failure: UpstreamUnavailable | None = None
        if allowed and not row_fields(cls).isdisjoint(selected):
            try:
                loaded = dict(zip(allowed, await c.rows_many(provider, table, "id_number", allowed), strict=True))
            except UpstreamUnavailable as exc:
                failure = exc
        out: list[Any] = []
        for r, refusal in zip(rows, refused, strict=True):
            if refusal is not None or failure is not None:
                out.append(refusal or failure)
            else:
                out.append(build(cls, None if loaded is None else loaded[r.id_number], id_number=r.id_number))
        return attr, out

    done = await asyncio.gather(*(records(g, sel) for g, sel in wanted.items()))
    return [build(Person, [r], row=r, **{attr: recs[i] for attr, recs in done}) for i, r in enumerate(rows)]


@strawberry.type(description="A household (共同生活家庭) as registered by public security (公安户籍).")
class Household:
    row: strawberry.Private[Any]

    household_id: str = value(Form.RAW, PS, "Household identifier.", lambda r: str(r.household_id))
    area_code: str = value(Form.RAW, PS, "Area code (GB/T 2260) of the household.", lambda r: str(r.area_code))
    address: str = value(Form.RAW, PS, "Registered address.", lambda r: str(r.address))
    address_masked: str = value(
        Form.MASKED, PS, "Registered address masked after the street.", lambda r: forms.mask_address(r.address)
    )

    async def _member_rows(self, info: Info) -> list[Any]:
        c = ctx(info)
        where, name = resident_scope(c)
        return await c.rows(PS, residents, "household_id", self.row.household_id, where, name)

    @disclosed(Form.RAW, PS, "Number of registered members.")
    async def size(self, info: Info) -> int:
        return len(await self._member_rows(info))

    @_structural("Registered members, head first.")
    async def members(self, info: Info) -> list[Person]:
        c = ctx(info)
        rows = sorted(await self._member_rows(info), key=lambda r: (r.relation_code, r.id_number))
        c.subjects.update(r.id_number for r in rows)
        return await people_from_rows(c, info, rows)


IdNumber = Annotated[str, strawberry.argument(description="18-digit resident ID number.")]
