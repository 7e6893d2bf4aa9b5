"""``Person`` and ``Household`` (public security household registration) and their department records."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, TypeVar

import strawberry
from sqlalchemy import ColumnElement
from strawberry.types import Info

from hub.departments import households, residents
from hub.policy import forms
from hub.policy.model import Form
from hub.schema import departments as d
from hub.schema.context import HubContext, ctx
from hub.schema.directives import disclosed
from hub.schema.records import build, build_one, row_fields, selected_names, value

PS = "public_security"
R = TypeVar("R")


def resident_scope(c: HubContext) -> tuple[ColumnElement[bool] | None, str]:
    if c.area_prefix is None:
        return None, ""
    return residents.c.area_code.startswith(c.area_prefix, autoescape=True), c.area_prefix


def household_scope(c: HubContext) -> tuple[ColumnElement[bool] | None, str]:
    if c.area_prefix is None:
        return None, ""
    return households.c.area_code.startswith(c.area_prefix, autoescape=True), c.area_prefix


async def load_person(c: HubContext, id_number: str) -> Person | None:
    where, name = resident_scope(c)
    rows = await c.rows(PS, residents, "id_number", id_number, where, name)
    if not rows:
        c.not_found.add(id_number)
        return None
    c.subjects.add(id_number)
    return build_one(Person, rows[0])


async def load_household(c: HubContext, household_id: str) -> Household | None:
    where, name = household_scope(c)
    rows = await c.rows(PS, households, "household_id", household_id, where, name)
    return build_one(Household, rows[0]) if rows else None


def _structural(description: str) -> Any:
    return strawberry.field(description=description)


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

    async def _record(self, info: Info, cls: type[R]) -> R:
        """The department record: the household authorization checked, then the department's rows loaded
        (batched across residents) only if a field computed from them is selected."""
        provider, table = d.RECORD_TABLES[cls]
        c = ctx(info)
        await c.require_authorization(self.row.household_id, provider)
        rows = None
        if not row_fields(cls).isdisjoint(selected_names(info)):
            rows = await c.rows(provider, table, "id_number", self.row.id_number)
        return build(cls, rows, id_number=self.row.id_number)

    @_structural("Civil affairs (民政) assistance record.")
    async def civil_affairs(self, info: Info) -> d.CivilAffairsRecord | None:
        return await self._record(info, d.CivilAffairsRecord)

    @_structural("Disabled Persons' Federation (残联) certificate.")
    async def disability(self, info: Info) -> d.DisabilityRecord | None:
        return await self._record(info, d.DisabilityRecord)

    @_structural("Medical security (医保) record.")
    async def medical(self, info: Info) -> d.MedicalRecord | None:
        return await self._record(info, d.MedicalRecord)

    @_structural("Human resources and social security (人社) record.")
    async def employment(self, info: Info) -> d.EmploymentRecord | None:
        return await self._record(info, d.EmploymentRecord)

    @_structural("Tax (税务) record.")
    async def tax(self, info: Info) -> d.TaxRecord | None:
        return await self._record(info, d.TaxRecord)

    @_structural("Real estate registration (不动产登记) record.")
    async def real_estate(self, info: Info) -> d.RealEstateRecord | None:
        return await self._record(info, d.RealEstateRecord)

    @_structural("Vehicles (公安交管) record.")
    async def vehicles(self, info: Info) -> d.VehicleRecord | None:
        return await self._record(info, d.VehicleRecord)

    @_structural("Market regulation (市场监管) record.")
    async def business(self, info: Info) -> d.BusinessRecord | None:
        return await self._record(info, d.BusinessRecord)

    @_structural("Housing provident fund (住房公积金) record.")
    async def provident_fund(self, info: Info) -> d.ProvidentFundRecord | None:
        return await self._record(info, d.ProvidentFundRecord)

    @_structural("Education (教育) record.")
    async def education(self, info: Info) -> d.EducationRecord | None:
        return await self._record(info, d.EducationRecord)


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
        return [build_one(Person, r) for r in rows]


IdNumber = Annotated[str, strawberry.argument(description="18-digit resident ID number.")]
