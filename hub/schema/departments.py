"""Record types contributed by each department to ``Person``.

Each object is a handle on one resident (``id_number``); its fields read the department's own table
through the request's batched loaders. Predicates are computed in the department's query.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import strawberry
from strawberry.types import Info

from hub.departments import (
    assistance,
    business_roles,
    certificates,
    employment,
    enrolment,
    hpf_accounts,
    income,
    medical,
    properties,
    vehicles,
)
from hub.errors import RequestError
from hub.policy import forms
from hub.policy.model import Form
from hub.schema.context import ctx
from hub.schema.directives import disclosed

RAW, MASKED, BAND, PRED, EXISTS = Form.RAW, Form.MASKED, Form.BAND, Form.PREDICATE, Form.EXISTS

for _band in (forms.IncomeBand, forms.CostBand, forms.AmountBand, forms.AreaBand, forms.BalanceBand):
    strawberry.enum(_band, description=_band.__doc__)


def _f(value: Any) -> float | None:
    return None if value is None else float(value)


@strawberry.type(description="Civil affairs (民政) assistance: tier, dates and amount.")
class CivilAffairsRecord:
    id_number: strawberry.Private[str]

    async def _row(self, info: Info) -> Any:
        return await ctx(info).first("civil_affairs", assistance, self.id_number)

    @disclosed(
        RAW, "civil_affairs", "Assistance tier: dibao, special_hardship, low_edge, rigid_expenditure, temporary."
    )
    async def tier(self, info: Info) -> str | None:
        row = await self._row(info)
        return row.tier if row else None

    @disclosed(RAW, "civil_affairs", "Date the current assistance started.")
    async def start_date(self, info: Info) -> date | None:
        row = await self._row(info)
        return row.start_date if row else None

    @disclosed(RAW, "civil_affairs", "Date the assistance ended; null while it continues.")
    async def end_date(self, info: Info) -> date | None:
        row = await self._row(info)
        return row.end_date if row else None

    @disclosed(RAW, "civil_affairs", "Monthly amount paid to this person, yuan.")
    async def monthly_amount(self, info: Info) -> float | None:
        row = await self._row(info)
        return _f(row.monthly_amount) if row else None

    @disclosed(PRED, "civil_affairs", "Whether the person currently receives any assistance tier.")
    async def is_recipient(self, info: Info) -> bool:
        c = ctx(info)
        cond = (assistance.c.end_date.is_(None)) | (assistance.c.end_date >= c.today)
        return await c.predicate("civil_affairs", assistance, "current", cond, self.id_number)


@strawberry.type(description="Disabled Persons' Federation (残联) disability certificate.")
class DisabilityRecord:
    id_number: strawberry.Private[str]

    async def _row(self, info: Info) -> Any:
        return await ctx(info).first("disability", certificates, self.id_number)

    @disclosed(MASKED, "disability", "Certificate number, masked to its last 4 characters.")
    async def cert_no_masked(self, info: Info) -> str | None:
        row = await self._row(info)
        return forms.mask_tail(row.cert_no) if row else None

    @disclosed(
        RAW, "disability", "Category: 1 vision, 2 hearing, 3 speech, 4 physical, 5 intellectual, 6 mental, 7 multiple."
    )
    async def category(self, info: Info) -> int | None:
        row = await self._row(info)
        return row.category if row else None

    @disclosed(RAW, "disability", "Grade 1 (most severe) to 4.")
    async def grade(self, info: Info) -> int | None:
        row = await self._row(info)
        return row.grade if row else None

    @disclosed(RAW, "disability", "Date the certificate was issued.")
    async def issue_date(self, info: Info) -> date | None:
        row = await self._row(info)
        return row.issue_date if row else None

    @disclosed(RAW, "disability", "Date of the last change of category or grade.")
    async def change_date(self, info: Info) -> date | None:
        row = await self._row(info)
        return row.change_date if row else None

    @disclosed(RAW, "disability", "Status of the two subsidies (两项补贴): none, living, care, both.")
    async def two_subsidies_status(self, info: Info) -> str | None:
        row = await self._row(info)
        return row.two_subsidies if row else None

    @disclosed(EXISTS, "disability", "Whether the person holds a disability certificate.")
    async def has_certificate(self, info: Info) -> bool:
        rows = await ctx(info).rows("disability", certificates, "id_number", self.id_number)
        return bool(rows)

    @disclosed(PRED, "disability", "Whether the person has a severe disability (grade 1 or 2).")
    async def is_severe(self, info: Info) -> bool:
        cond = certificates.c.grade <= 2
        return await ctx(info).predicate("disability", certificates, "severe", cond, self.id_number)

    @disclosed(PRED, "disability", "Whether the certificate was issued or upgraded within the last N days.")
    async def changed_within_days(self, info: Info, days: int) -> bool:
        c = ctx(info)
        if not 1 <= days <= 3660:
            raise RequestError("days must be between 1 and 3660", code="BAD_ARGUMENT")
        since = c.today - timedelta(days=days)
        cond = (certificates.c.issue_date >= since) | (certificates.c.change_date >= since)
        return await c.predicate("disability", certificates, f"changed{days}", cond, self.id_number)


@strawberry.type(description="Medical security (医保): insurance and 12-month costs. Never a diagnosis.")
class MedicalRecord:
    id_number: strawberry.Private[str]

    async def _row(self, info: Info) -> Any:
        return await ctx(info).first("medical_security", medical, self.id_number)

    @disclosed(RAW, "medical_security", "Whether the person is insured.")
    async def insured(self, info: Info) -> bool | None:
        row = await self._row(info)
        return row.insured if row else None

    @disclosed(RAW, "medical_security", "Scheme: employee or resident.")
    async def scheme(self, info: Info) -> str | None:
        row = await self._row(info)
        return row.scheme if row else None

    @disclosed(RAW, "medical_security", "Out-of-pocket medical cost over the last 12 months, yuan.")
    async def out_of_pocket_12m(self, info: Info) -> float | None:
        row = await self._row(info)
        return _f(row.oop_12m) if row else None

    @disclosed(BAND, "medical_security", "Out-of-pocket medical cost over 12 months, as a band.")
    async def out_of_pocket_12m_band(self, info: Info) -> forms.CostBand | None:
        row = await self._row(info)
        return forms.cost_band(float(row.oop_12m)) if row else None

    @disclosed(PRED, "medical_security", "Whether out-of-pocket cost over 12 months is at least `threshold` yuan.")
    async def out_of_pocket_12m_at_least(self, info: Info, threshold: int) -> bool:
        if not 0 <= threshold <= 10_000_000:
            raise RequestError("threshold must be between 0 and 10,000,000", code="BAD_ARGUMENT")
        cond = medical.c.oop_12m >= threshold
        return await ctx(info).predicate("medical_security", medical, f"oop>={threshold}", cond, self.id_number)

    @disclosed(RAW, "medical_security", "Number of inpatient stays over 12 months.")
    async def inpatient_count(self, info: Info) -> int | None:
        row = await self._row(info)
        return row.inpatient_count if row else None

    @disclosed(PRED, "medical_security", "Whether a chronic or serious disease is registered (never which one).")
    async def has_chronic_disease(self, info: Info) -> bool:
        cond = medical.c.chronic_flag.is_(True)
        return await ctx(info).predicate("medical_security", medical, "chronic", cond, self.id_number)


@strawberry.type(description="Human resources and social security (人社): pension and unemployment.")
class EmploymentRecord:
    id_number: strawberry.Private[str]

    async def _row(self, info: Info) -> Any:
        return await ctx(info).first("hrss", employment, self.id_number)

    @disclosed(RAW, "hrss", "Pension type: employee, resident or none.")
    async def pension_type(self, info: Info) -> str | None:
        row = await self._row(info)
        return row.pension_type if row else None

    @disclosed(RAW, "hrss", "Monthly pension, yuan.")
    async def pension_monthly(self, info: Info) -> float | None:
        row = await self._row(info)
        return _f(row.pension_monthly) if row else None

    @disclosed(BAND, "hrss", "Monthly pension as a band.")
    async def pension_monthly_band(self, info: Info) -> forms.AmountBand | None:
        row = await self._row(info)
        return forms.amount_band(float(row.pension_monthly)) if row else None

    @disclosed(RAW, "hrss", "Whether the person is registered unemployed.")
    async def unemployed_registered(self, info: Info) -> bool | None:
        row = await self._row(info)
        return row.unemployed_registered if row else None

    @disclosed(RAW, "hrss", "Unemployment-benefit end date, if any.")
    async def benefit_end(self, info: Info) -> date | None:
        row = await self._row(info)
        return row.ui_benefit_end if row else None

    @disclosed(PRED, "hrss", "Whether the person is registered unemployed.")
    async def is_unemployed(self, info: Info) -> bool:
        cond = employment.c.unemployed_registered.is_(True)
        return await ctx(info).predicate("hrss", employment, "unemployed", cond, self.id_number)


@strawberry.type(description="Tax (税务): annual income.")
class TaxRecord:
    id_number: strawberry.Private[str]

    async def _row(self, info: Info) -> Any:
        return await ctx(info).first("tax", income, self.id_number)

    @disclosed(RAW, "tax", "Tax year of the income figures.")
    async def year(self, info: Info) -> int | None:
        row = await self._row(info)
        return row.year if row else None

    @disclosed(RAW, "tax", "Annual wage income, yuan.")
    async def annual_wage_income(self, info: Info) -> float | None:
        row = await self._row(info)
        return _f(row.annual_wage_income) if row else None

    @disclosed(RAW, "tax", "Annual business income, yuan.")
    async def business_income(self, info: Info) -> float | None:
        row = await self._row(info)
        return _f(row.business_income) if row else None

    @disclosed(BAND, "tax", "Wage plus business income, per month, as a multiple of the minimum living standard.")
    async def income_band(self, info: Info) -> forms.IncomeBand | None:
        row = await self._row(info)
        if row is None:
            return None
        return forms.income_band(float(row.annual_wage_income) + float(row.business_income))

    @disclosed(PRED, "tax", "Whether annual wage plus business income is below `threshold` yuan.")
    async def annual_income_below(self, info: Info, threshold: int) -> bool:
        if not 0 <= threshold <= 100_000_000:
            raise RequestError("threshold must be between 0 and 100,000,000", code="BAD_ARGUMENT")
        cond = (income.c.annual_wage_income + income.c.business_income) < threshold
        return await ctx(info).predicate("tax", income, f"inc<{threshold}", cond, self.id_number)


@strawberry.type(description="One registered property (不动产).")
class Property:
    row: strawberry.Private[Any]

    @disclosed(MASKED, "real_estate", "Property address, masked after the street.")
    def address_masked(self) -> str:
        return forms.mask_address(self.row.address)

    @disclosed(RAW, "real_estate", "Floor area, square metres.")
    def area_m2(self) -> float:
        return float(self.row.area_m2)

    @disclosed(RAW, "real_estate", "Date acquired.")
    def acquired_date(self) -> date:
        return self.row.acquired_date  # type: ignore[no-any-return]


@strawberry.type(description="Real estate registration (不动产登记): properties held.")
class RealEstateRecord:
    id_number: strawberry.Private[str]

    async def _rows(self, info: Info) -> list[Any]:
        return await ctx(info).rows("real_estate", properties, "id_number", self.id_number)

    @disclosed(RAW, "real_estate", "Number of properties held.")
    async def property_count(self, info: Info) -> int:
        return len(await self._rows(info))

    @disclosed(RAW, "real_estate", "Total floor area held, square metres.")
    async def total_area_m2(self, info: Info) -> float:
        return float(sum(float(r.area_m2) for r in await self._rows(info)))

    @disclosed(BAND, "real_estate", "Total floor area held, as a band.")
    async def total_area_band(self, info: Info) -> forms.AreaBand:
        return forms.area_band(sum(float(r.area_m2) for r in await self._rows(info)))

    @strawberry.field(description="The properties, one by one. Provider: Real estate registration (不动产登记).")
    async def properties(self, info: Info) -> list[Property]:
        return [Property(row=r) for r in await self._rows(info)]

    @disclosed(PRED, "real_estate", "Whether a property was acquired in the last 12 months.")
    async def acquired_last_12_months(self, info: Info) -> bool:
        c = ctx(info)
        cond = properties.c.acquired_date >= c.today - timedelta(days=365)
        return await c.predicate("real_estate", properties, "recent", cond, self.id_number)


@strawberry.type(description="One registered vehicle (车辆).")
class Vehicle:
    row: strawberry.Private[Any]

    @disclosed(MASKED, "traffic", "Plate, masked: province, city letter and last character.")
    def plate_masked(self) -> str:
        return forms.mask_plate(self.row.plate)

    @disclosed(RAW, "traffic", "Vehicle type: small_car, motorcycle, mobility_vehicle, truck.")
    def vehicle_type(self) -> str:
        return str(self.row.vehicle_type)

    @disclosed(RAW, "traffic", "Use: operating or non_operating.")
    def use(self) -> str:
        return str(self.row.use)

    @disclosed(RAW, "traffic", "Registration date.")
    def reg_date(self) -> date:
        return self.row.reg_date  # type: ignore[no-any-return]


# Exempt from the asset test: a disabled person's mobility vehicle, or an operating vehicle that is a livelihood.
_NON_EXEMPT = ~((vehicles.c.vehicle_type == "mobility_vehicle") | (vehicles.c.use == "operating"))


@strawberry.type(description="Public security traffic administration (公安交管): vehicles held.")
class VehicleRecord:
    id_number: strawberry.Private[str]

    async def _rows(self, info: Info) -> list[Any]:
        return await ctx(info).rows("traffic", vehicles, "id_number", self.id_number)

    @disclosed(RAW, "traffic", "Number of vehicles registered to the person.")
    async def vehicle_count(self, info: Info) -> int:
        return len(await self._rows(info))

    @strawberry.field(description="The vehicles, one by one. Provider: Public security, traffic (公安交管).")
    async def vehicles(self, info: Info) -> list[Vehicle]:
        return [Vehicle(row=r) for r in await self._rows(info)]

    @disclosed(PRED, "traffic", "Whether the person owns a car that is not exempt from the asset test.")
    async def has_non_exempt_car(self, info: Info) -> bool:
        return await ctx(info).predicate("traffic", vehicles, "nonexempt", _NON_EXEMPT, self.id_number)


@strawberry.type(description="One business role (市场主体身份).")
class BusinessRole:
    row: strawberry.Private[Any]

    @disclosed(
        RAW, "market_regulation", "Role: legal_rep, director, supervisor, senior_manager, investor, sole_trader."
    )
    def role(self) -> str:
        return str(self.row.role)

    @disclosed(RAW, "market_regulation", "Unified social credit code of the business.")
    def uscc(self) -> str:
        return str(self.row.uscc)

    @disclosed(RAW, "market_regulation", "Subscribed capital, yuan.")
    def subscribed_capital(self) -> float:
        return float(self.row.subscribed_capital)


@strawberry.type(description="Market regulation (市场监管): business roles.")
class BusinessRecord:
    id_number: strawberry.Private[str]

    @strawberry.field(description="Business roles held. Provider: Market regulation (市场监管).")
    async def roles(self, info: Info) -> list[BusinessRole]:
        rows = await ctx(info).rows("market_regulation", business_roles, "id_number", self.id_number)
        return [BusinessRole(row=r) for r in rows]

    @disclosed(PRED, "market_regulation", "Whether the person holds any business role.")
    async def has_business_role(self, info: Info) -> bool:
        cond = business_roles.c.role.is_not(None)
        return await ctx(info).predicate("market_regulation", business_roles, "any", cond, self.id_number)


@strawberry.type(description="Housing provident fund (住房公积金).")
class ProvidentFundRecord:
    id_number: strawberry.Private[str]

    async def _row(self, info: Info) -> Any:
        return await ctx(info).first("provident_fund", hpf_accounts, self.id_number)

    @disclosed(RAW, "provident_fund", "Monthly contribution, yuan.")
    async def monthly_contribution(self, info: Info) -> float | None:
        row = await self._row(info)
        return _f(row.monthly_contrib) if row else None

    @disclosed(BAND, "provident_fund", "Account balance as a band.")
    async def balance_band(self, info: Info) -> forms.BalanceBand | None:
        row = await self._row(info)
        return forms.balance_band(float(row.balance)) if row else None

    @disclosed(PRED, "provident_fund", "Whether contributions have stopped.")
    async def contributions_stopped(self, info: Info) -> bool:
        cond = hpf_accounts.c.status == "stopped"
        return await ctx(info).predicate("provident_fund", hpf_accounts, "stopped", cond, self.id_number)


@strawberry.type(description="Education (教育): enrolment.")
class EducationRecord:
    id_number: strawberry.Private[str]

    async def _row(self, info: Info) -> Any:
        return await ctx(info).first("education", enrolment, self.id_number)

    @disclosed(RAW, "education", "Stage: preschool, primary, junior_high, senior_high, vocational, undergraduate.")
    async def stage(self, info: Info) -> str | None:
        row = await self._row(info)
        return row.stage if row else None

    @disclosed(RAW, "education", "School name.")
    async def school(self, info: Info) -> str | None:
        row = await self._row(info)
        return row.school if row else None

    @disclosed(RAW, "education", "Whether education aid was received.")
    async def aid_received(self, info: Info) -> bool | None:
        row = await self._row(info)
        return row.aid_received if row else None

    @disclosed(PRED, "education", "Whether the person is a full-time student (counts as a household member).")
    async def is_full_time_student(self, info: Info) -> bool:
        cond = enrolment.c.enrolled.is_(True)
        return await ctx(info).predicate("education", enrolment, "enrolled", cond, self.id_number)

    @disclosed(PRED, "education", "Whether the person has a dropout flag.")
    async def dropped_out(self, info: Info) -> bool:
        cond = enrolment.c.dropout_flag.is_(True)
        return await ctx(info).predicate("education", enrolment, "dropout", cond, self.id_number)
