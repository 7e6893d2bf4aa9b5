"""``Person`` and ``Household`` (public security household registration) and their department records."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

import strawberry
from sqlalchemy import ColumnElement
from strawberry.types import Info

from hub.departments import households, residents
from hub.policy import forms
from hub.policy.model import Form
from hub.schema import departments as d
from hub.schema.context import HubContext, ctx
from hub.schema.directives import disclosed

PS = "public_security"


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
    return Person(row=rows[0])


async def load_household(c: HubContext, household_id: str) -> Household | None:
    where, name = household_scope(c)
    rows = await c.rows(PS, households, "household_id", household_id, where, name)
    return Household(row=rows[0]) if rows else None


def _structural(description: str) -> Any:
    return strawberry.field(description=description)


@strawberry.type(
    description="A resident, keyed by 18-digit ID number. Identity fields come from public security household "
    "registration (公安户籍); each other department contributes a record object."
)
class Person:
    row: strawberry.Private[Any]

    @disclosed(Form.RAW, PS, "18-digit resident ID number.")
    def id_number(self) -> str:
        return str(self.row.id_number)

    @disclosed(Form.MASKED, PS, "ID number masked to the first 6 and last 4 characters.")
    def id_number_masked(self) -> str:
        return forms.mask_id(self.row.id_number)

    @disclosed(Form.RAW, PS, "Full name.")
    def name(self) -> str:
        return str(self.row.name)

    @disclosed(Form.MASKED, PS, "Name masked to the surname.")
    def name_masked(self) -> str:
        return forms.mask_name(self.row.name)

    @disclosed(Form.RAW, PS, "Sex: male or female.")
    def sex(self) -> str:
        return str(self.row.sex)

    @disclosed(Form.RAW, PS, "Date of birth.")
    def birth_date(self) -> date:
        return self.row.dob  # type: ignore[no-any-return]

    @disclosed(Form.RAW, PS, "Area code (GB/T 2260) of the household registration.")
    def area_code(self) -> str:
        return str(self.row.area_code)

    @disclosed(Form.RAW, PS, "Household-registration address.")
    def hukou_address(self) -> str:
        return str(self.row.hukou_addr)

    @disclosed(Form.RAW, PS, "Relation to the head: 01 head, 02 spouse, 03 child, 04 parent, 05 grandchild, 09 other.")
    def relation_to_head(self) -> str:
        return str(self.row.relation_code)

    @disclosed(Form.RAW, PS, "Registration status: normal, deceased or moved.")
    def status(self) -> str:
        return str(self.row.status)

    @disclosed(Form.PREDICATE, PS, "Whether the resident is registered as deceased.")
    def is_deceased(self) -> bool:
        return bool(self.row.status == "deceased")

    @_structural("The household (共同生活家庭) this resident is registered in.")
    async def household(self, info: Info) -> Household | None:
        return await load_household(ctx(info), self.row.household_id)

    async def _record(self, info: Info, cls: Any, provider: str) -> Any:
        await ctx(info).require_authorization(self.row.household_id, provider)
        return cls(id_number=self.row.id_number)

    @_structural("Civil affairs (民政) assistance record.")
    async def civil_affairs(self, info: Info) -> d.CivilAffairsRecord | None:
        return await self._record(info, d.CivilAffairsRecord, "civil_affairs")  # type: ignore[no-any-return]

    @_structural("Disabled Persons' Federation (残联) certificate.")
    async def disability(self, info: Info) -> d.DisabilityRecord | None:
        return await self._record(info, d.DisabilityRecord, "disability")  # type: ignore[no-any-return]

    @_structural("Medical security (医保) record.")
    async def medical(self, info: Info) -> d.MedicalRecord | None:
        return await self._record(info, d.MedicalRecord, "medical_security")  # type: ignore[no-any-return]

    @_structural("Human resources and social security (人社) record.")
    async def employment(self, info: Info) -> d.EmploymentRecord | None:
        return await self._record(info, d.EmploymentRecord, "hrss")  # type: ignore[no-any-return]

    @_structural("Tax (税务) record.")
    async def tax(self, info: Info) -> d.TaxRecord | None:
        return await self._record(info, d.TaxRecord, "tax")  # type: ignore[no-any-return]

    @_structural("Real estate registration (不动产登记) record.")
    async def real_estate(self, info: Info) -> d.RealEstateRecord | None:
        return await self._record(info, d.RealEstateRecord, "real_estate")  # type: ignore[no-any-return]

    @_structural("Vehicles (公安交管) record.")
    async def vehicles(self, info: Info) -> d.VehicleRecord | None:
        return await self._record(info, d.VehicleRecord, "traffic")  # type: ignore[no-any-return]

    @_structural("Market regulation (市场监管) record.")
    async def business(self, info: Info) -> d.BusinessRecord | None:
        return await self._record(info, d.BusinessRecord, "market_regulation")  # type: ignore[no-any-return]

    @_structural("Housing provident fund (住房公积金) record.")
    async def provident_fund(self, info: Info) -> d.ProvidentFundRecord | None:
        return await self._record(info, d.ProvidentFundRecord, "provident_fund")  # type: ignore[no-any-return]

    @_structural("Education (教育) record.")
    async def education(self, info: Info) -> d.EducationRecord | None:
        return await self._record(info, d.EducationRecord, "education")  # type: ignore[no-any-return]


@strawberry.type(description="A household (共同生活家庭) as registered by public security (公安户籍).")
class Household:
    row: strawberry.Private[Any]

    @disclosed(Form.RAW, PS, "Household identifier.")
    def household_id(self) -> str:
        return str(self.row.household_id)

    @disclosed(Form.RAW, PS, "Area code (GB/T 2260) of the household.")
    def area_code(self) -> str:
        return str(self.row.area_code)

    @disclosed(Form.RAW, PS, "Registered address.")
    def address(self) -> str:
        return str(self.row.address)

    @disclosed(Form.MASKED, PS, "Registered address masked after the street.")
    def address_masked(self) -> str:
        return forms.mask_address(self.row.address)

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
        return [Person(row=r) for r in rows]


IdNumber = Annotated[str, strawberry.argument(description="18-digit resident ID number.")]
